"""Element pools: dispatch to one replica, merge in order, survive losing replicas."""

from __future__ import annotations

import os
import signal

import pytest
from pool_elements import DieOn, SlowSquare, busy_replica

from actors.errors import ConfigError, PipelineError
from actors.testing import CollectSink, ListSource, MapTransform
from pipelines import Pipeline

pytestmark = pytest.mark.usefixtures("ray_session")

N = 60


def pool_pipeline(element, replicas, items=N, window=None) -> Pipeline:
    p = Pipeline("pool")
    p.add(ListSource(list(range(items))), name="src")
    p.add(element, name="work", replicas=replicas)
    p.add(CollectSink(), name="sink")
    p.link("src", "work", window=window)
    p.link("work", "sink")
    return p


def test_every_item_goes_to_exactly_one_replica_and_comes_out_in_order():
    p = pool_pipeline(SlowSquare(delay_s=0.02), replicas=3, window=2)
    stats = p.run(timeout=120)
    got = p.results("sink")["items"]
    assert [x for x, _, _ in got] == list(range(N))
    assert all(sq == x * x for x, sq, _ in got)
    pool = stats.pools["work"]
    assert pool.items == N and pool.lost == 0 and pool.requeued == 0
    assert len({pid for _, _, pid in got}) == 3  # all three did some of the work
    assert sorted(r["items"] for r in pool.replicas) == sorted(
        sum(1 for _, _, pid in got if pid == r["pid"]) for r in pool.replicas)
    # In flight on the dispatching edge: never more than replicas x window.
    edge = stats.edges["src->work"]
    assert edge.window == 6 and 1 <= edge.high_water_mark() <= 6


def test_pool_element_stats_sum_the_replicas():
    p = pool_pipeline(MapTransform(lambda x: x + 1), replicas=2)
    stats = p.run(timeout=120)
    assert stats.elements["work"].buffers_in == N == stats.elements["work"].buffers_out
    assert p.results("sink")["items"] == list(range(1, N + 1))


def test_killing_a_replica_loses_nothing():
    p = pool_pipeline(SlowSquare(delay_s=0.1), replicas=2, items=50)
    p.stats_interval = 0.1
    p.start()
    victim = busy_replica(p, "work", after_items=4)
    assert victim, "the pool did not start working"
    os.kill(victim, signal.SIGKILL)  # as a user (or the OOM killer) would
    stats = p.wait(timeout=120)
    got = p.results("sink")["items"]
    assert [x for x, _, _ in got] == list(range(50))
    pool = stats.pools["work"]
    assert pool.lost == 1 and pool.requeued >= 1
    assert victim not in {pid for _, _, pid in got[-10:]}  # the tail ran elsewhere
    states = [r["state"] for r in pool.replicas]
    assert states.count("dead") == 1 and states.count("live") == 2  # replaced


def test_an_item_that_kills_three_replicas_fails_the_run_naming_it():
    p = pool_pipeline(DieOn(poison=7), replicas=2, items=20)
    with pytest.raises(PipelineError) as err:
        p.run(timeout=180)
    msg = str(err.value)
    assert "work" in msg and "item 7" in msg and "3 replicas" in msg


@pytest.mark.parametrize("replicas", [0, -1, 1.5, "many", True])
def test_bad_replica_counts_are_refused(replicas):
    p = Pipeline("bad")
    with pytest.raises(ConfigError, match="replicas="):
        p.add(MapTransform(lambda x: x), name="work", replicas=replicas)


def test_sources_and_sinks_cannot_be_pools():
    p = Pipeline("bad")
    with pytest.raises(ConfigError, match="only a transform"):
        p.add(ListSource([1]), replicas=2)
    with pytest.raises(ConfigError, match="only a transform"):
        p.add(CollectSink(), replicas=2)
