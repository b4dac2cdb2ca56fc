"""The object store as arena: the seed's test_arena_not_exhausted_under_load, and the budget."""

from __future__ import annotations

import pytest

from actors.errors import BudgetError
from actors.media.test_pattern import TestPatternSource
from actors.testing import CollectSink, StallingPassThrough
from pipelines import Pipeline, State
from pipelines.runtime.arena import EdgeBudget, check_budget
from pipelines.runtime.defaults import LARGE_SLOT_COUNT

pytestmark = pytest.mark.usefixtures("ray_session")

FRAME_1080P_RGBA = 1920 * 1080 * 4


def test_arena_not_exhausted_under_load():
    p = Pipeline("arena")
    p.add(TestPatternSource(pattern="smpte", width=1920, height=1080, format="rgba",
                            num_frames=1000), name="src")
    p.add(StallingPassThrough(), name="pass")
    p.add(CollectSink(keep=False), name="sink")
    p.link("src", "pass")
    p.link("pass", "sink")
    stats = p.run(timeout=600)
    assert stats.frames == 1000
    assert p.results("sink")["items"] == list(range(1000))
    for name, edge in stats.edges.items():
        assert edge.window == LARGE_SLOT_COUNT and edge.slot_size == FRAME_1080P_RGBA
        assert 0 < edge.high_water_mark() <= edge.window, name
        assert 0.0 <= edge.utilization() <= 1.0
        print(f"{name}: high-water {edge.high_water_mark()}/{edge.window}")
    assert stats.memory_spilled == 0  # never fell back to disk
    assert stats.arena_reserved == 2 * LARGE_SLOT_COUNT * FRAME_1080P_RGBA
    assert 0 < stats.memory_peak <= stats.arena_reserved
    assert sum(s.drops for s in stats.elements.values()) == 0


def test_budget_refuses_an_oversized_configuration():
    p = Pipeline("huge")
    p.add(TestPatternSource(width=1920, height=1080, format="rgba", num_frames=10), name="src")
    p.add(CollectSink(keep=False), name="sink")
    p.link("src", "sink", window=500)  # 500 x 7.9 MiB = 3.9 GiB > the 2 GiB test store
    with pytest.raises(BudgetError) as err:
        p.prepare()
    msg = str(err.value)
    assert "src->sink 500 x 7.9 MiB" in msg and "Lower window=" in msg
    assert p.state is State.NULL and not p._hosts  # nothing left running


def test_budget_counts_an_edge_on_both_of_its_nodes():
    edges = [EdgeBudget("a->b", 10, 100, ("n1", "n2")), EdgeBudget("b->c", 10, 100, ("n2",))]
    assert check_budget(edges, {"n1": 2000, "n2": 2500}) == 2000
    with pytest.raises(BudgetError, match="node n2"):
        check_budget(edges, {"n1": 2000, "n2": 2400})  # n2 needs 2000 of 80% x 2400
