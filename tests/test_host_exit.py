"""How hosts end, and what their calls leave in the GCS.

A host asked to exit leaves by itself (Ray records an INTENDED_USER_EXIT as its death
cause; ray.kill() leaves "killed by ray.kill"); only a host stuck in element code past the
grace period is killed. Killing hosts mid-call made their workers abort with
bad_optional_access (issue 12, item 10). Push calls record no task events, which grew
the GCS by about 2.7 KB per item (item 8).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import ray

from actors.testing import CollectSink, ListSource, StallingPassThrough
from pipelines.runtime.pipeline import Pipeline
from pipelines.runtime.placement import EXIT_GRACE_S


@pytest.fixture(autouse=True)
def _ray(ray_session):
    yield


def deaths(pipeline: Pipeline) -> dict[str, str]:
    """Each host actor of ``pipeline`` (by element) and what Ray says ended it."""
    prefix = f"parallax:{pipeline._id}:"
    found = {}
    for info in ray._private.state.actors().values():
        if info.get("Name", "").startswith(prefix):
            cause = str(info.get("DeathCause") or "")
            found[info["Name"][len(prefix):]] = (
                "killed" if "ray.kill" in cause
                else "exit" if "INTENDED_USER_EXIT" in cause
                else f"{info['State']}: {cause[:200]}")
    return found


def test_hosts_exit_by_themselves_after_a_run():
    p = Pipeline("exits", fusion=False)
    p.add(ListSource(list(range(50))), name="src")
    p.add(StallingPassThrough(), name="mid")
    p.add(CollectSink(), name="sink")
    p.link("src", "mid")
    p.link("mid", "sink")
    p.run(timeout=120)
    assert deaths(p) == {"src": "exit", "mid": "exit", "sink": "exit"}


def test_an_aborted_run_ends_its_hosts_without_killing_them():
    p = Pipeline("aborts", fusion=False)
    p.add(ListSource(list(range(10**6)), interval_s=0.001), name="src")
    p.add(StallingPassThrough(delay_s=0.01), name="slow")
    p.add(CollectSink(keep=False), name="sink")
    p.link("src", "slow")
    p.link("slow", "sink")
    p.start()
    time.sleep(1.0)
    p.stop(drain=False)
    assert deaths(p) == {"src": "exit", "slow": "exit", "sink": "exit"}


def test_a_host_stuck_in_element_code_is_killed_after_the_grace_period():
    p = Pipeline("stuck", fusion=False)
    p.add(ListSource(list(range(100))), name="src")
    p.add(StallingPassThrough(delay_s=60), name="stuck")  # never returns in time
    p.add(CollectSink(), name="sink")
    p.link("src", "stuck")
    p.link("stuck", "sink")
    with p:
        p.start()
        time.sleep(1.0)
        t0 = time.monotonic()
    took = time.monotonic() - t0
    ended = deaths(p)
    assert ended["stuck"] == "killed"
    assert ended["sink"] == "exit"
    assert EXIT_GRACE_S <= took < 30


def task_event_names(actor_ids: set[bytes]) -> Counter:
    from ray._private.grpc_utils import init_grpc_channel
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    channel = init_grpc_channel(ray._private.worker.global_worker.gcs_client.address)
    stub = gcs_service_pb2_grpc.TaskInfoGcsServiceStub(channel)
    reply = stub.GetTaskEvents(gcs_service_pb2.GetTaskEventsRequest(limit=100_000), timeout=30)
    return Counter(e.task_info.name.rsplit(".", 1)[-1] for e in reply.events_by_task
                   if e.task_info.actor_id in actor_ids)


def test_push_and_stats_calls_record_no_task_events():
    p = Pipeline("events", fusion=False)
    p.add(ListSource(list(range(300))), name="src")
    p.add(CollectSink(), name="sink")
    p.link("src", "sink")
    p.run(timeout=120)
    prefix = f"parallax:{p._id}:"
    ids = {bytes.fromhex(aid) for aid, info in ray._private.state.actors().items()
           if info.get("Name", "").startswith(prefix)}
    assert len(ids) == 2
    deadline = time.monotonic() + 20
    names = task_event_names(ids)
    while names["negotiate"] < 2 and time.monotonic() < deadline:  # reported once a second
        time.sleep(0.5)
        names = task_event_names(ids)
    assert names["negotiate"] == 2, f"the GCS has no events of this run's control calls: {names}"
    assert names["push"] == 0, names
    assert names["stats"] == 0, names  # polled once a second, for as long as a run lasts
