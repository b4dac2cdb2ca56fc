"""Run by test_placement.py in its own process: a 3-node local cluster with fake hardware.

It needs its own Ray (a multi-node ray.cluster_utils.Cluster) and so cannot share the
session's instance. Prints one JSON object with what it observed.
"""

from __future__ import annotations

import json
import sys
import time

import ray
from ray.cluster_utils import Cluster

from actors.element import Placement
from actors.errors import PlacementError
from actors.testing import CollectSink, ListSource, StallingPassThrough
from pipelines import Pipeline

MB = 1024 * 1024
NVENC = {"parallax.encoder.nvenc": "true"}
VAAPI = {"parallax.encoder.vaapi": "true"}


def main() -> None:
    # Nodes are not pinned to 127.0.0.1: ray.cluster_utils advertises the host address for
    # the GCS, so a loopback-only head cannot be joined. This runs only for this test.
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": 200 * MB, "resources": {"head": 1},
        "include_dashboard": False})
    nvenc = cluster.add_node(num_cpus=0, object_store_memory=100 * MB, labels=NVENC,
                             resources={"nvenc": 1})
    vaapi = cluster.add_node(num_cpus=0, object_store_memory=100 * MB, labels=VAAPI,
                             resources={"vaapi": 1})
    out: dict = {"nodes": {"head": cluster.head_node.node_id, "nvenc": nvenc.node_id,
                           "vaapi": vaapi.node_id}}
    ray.init(address=cluster.address)
    try:
        cluster.wait_for_nodes()
        p = Pipeline("placed")
        p.add(ListSource(list(range(200))), name="src", placement=Placement(label_selector=VAAPI))
        p.add(StallingPassThrough(), name="enc",
              placement=Placement(label_selector=NVENC, resources={"nvenc": 1}))
        p.add(CollectSink(), name="sink", placement=Placement(resources={"head": 1}))
        p.link("src", "enc", window=4)
        p.link("enc", "sink", window=4)
        stats = p.run(timeout=120)
        out["placed"] = {n: s.node_id for n, s in stats.elements.items()}
        out["in_order"] = p.results("sink")["items"] == list(range(200))

        out["unsatisfiable"] = attempt({"parallax.encoder.qsv": "true"}, {})
        # Labels match but the only nvenc slot is taken by a running pipeline: bounded wait.
        busy = Pipeline("busy")
        busy.add(ListSource(list(range(10**6)), interval_s=0.01), name="src")
        busy.add(CollectSink(keep=False), name="sink",
                 placement=Placement(label_selector=NVENC, resources={"nvenc": 1}))
        busy.link("src", "sink")
        busy.start()
        out["occupied"] = attempt(NVENC, {"nvenc": 1}, timeout=3)
        busy.stop()
    finally:
        ray.shutdown()
        cluster.shutdown()
    json.dump(out, sys.stdout)


def attempt(selector: dict, resources: dict, timeout: float = 30) -> dict:
    p = Pipeline("nowhere", placement_timeout=timeout)
    p.add(ListSource([1, 2, 3]), name="src")
    p.add(CollectSink(), name="sink",
          placement=Placement(label_selector=selector, resources=resources))
    p.link("src", "sink")
    t0 = time.monotonic()
    try:
        p.run(timeout=60)
        return {"error": None}
    except PlacementError as exc:
        return {"error": str(exc), "seconds": time.monotonic() - t0}


if __name__ == "__main__":
    main()
