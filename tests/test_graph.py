"""Graph validation and fusion, without Ray."""

from __future__ import annotations

import pytest

from actors.element import Placement
from actors.errors import ConfigError
from actors.testing import CollectSink, ListSource, StallingPassThrough
from pipelines import Pipeline


def test_window_of_zero_is_refused_with_the_link_named():
    p = Pipeline()
    a, b = p.add(ListSource([1]), name="a"), p.add(CollectSink(), name="b")
    with pytest.raises(ConfigError, match=r"link a -> b: window=0 is invalid.*>= 1"):
        p.link(a, b, window=0)


def test_cycles_are_refused():
    p = Pipeline()
    p.add(ListSource([1]), name="src")
    for n in ("x", "y"):
        p.add(StallingPassThrough(), name=n)
    p.add(CollectSink(), name="sink")
    p.link("src", "x")
    p.link("x", "y")
    p.link("y", "x")
    p.link("y", "sink")
    with pytest.raises(ConfigError, match="cycle through x, y"):
        p.graph.validate()


@pytest.mark.parametrize("build, message", [
    (lambda p: p.add(ListSource([1]), name="s"), "'s' has an unlinked output"),
    (lambda p: (p.add(ListSource([1]), name="s"), p.add(StallingPassThrough(), name="t"),
                p.link("s", "t")), "'t' has an unlinked output"),
    (lambda p: p.add(CollectSink(), name="k"), "'k' has no input"),
])
def test_unlinked_pads_are_named(build, message):
    p = Pipeline()
    build(p)
    with pytest.raises(ConfigError, match=message):
        p.graph.validate()


def test_links_into_sources_and_out_of_sinks_are_refused():
    p = Pipeline()
    p.add(ListSource([1]), name="s")
    p.add(CollectSink(), name="k")
    with pytest.raises(ConfigError, match="is a source"):
        p.link("k", "s")
    p.add(StallingPassThrough(), name="t")
    with pytest.raises(ConfigError, match="'k' is a sink and has no output"):
        p.link("k", "t")
    with pytest.raises(ConfigError, match="cannot feed itself"):
        p.link("t", "t")


def test_names_are_unique_and_automatic():
    p = Pipeline()
    a, b = p.add(CollectSink()), p.add(CollectSink())
    assert (a.name, b.name) == ("collectsink0", "collectsink1")
    with pytest.raises(ConfigError, match="already exists"):
        p.add(CollectSink(), name="collectsink0")


def test_fusion_groups_only_one_to_one_edges_placed_alike():
    p = Pipeline(fusion=True)
    p.add(ListSource([1]), name="src")
    p.add(StallingPassThrough(), name="a")
    p.add(StallingPassThrough(), name="b", placement=Placement(resources={"nvenc": 1}))
    p.add(StallingPassThrough(), name="c", placement=Placement(resources={"nvenc": 1}))
    p.add(CollectSink(), name="k1")
    p.add(CollectSink(), name="k2")
    p.link("src", "a")
    p.link("a", "b")  # placed differently: a host boundary
    p.link("b", "c")
    p.link("c", "k1")  # c fans out: not 1:1
    p.link("c", "k2")
    assert p.describe() == "src | a\nb | c\nk1\nk2"
    p2 = Pipeline(fusion=True)
    p2.chain(ListSource([1]), StallingPassThrough(), CollectSink())
    p2.graph.links[1].fuse = False  # switched off for one link
    assert p2.describe() == "listsource0 | stallingpassthrough0\ncollectsink0"
