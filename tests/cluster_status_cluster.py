"""Run by test_cluster_status.py in its own process: a 3-node ray.cluster_utils.Cluster
with Parallax labels and a pipeline running, and `parallax cluster` pointed at it.

Prints one JSON object: the node ids, and what `parallax cluster` (plain and --json)
printed and returned, run as a separate process as a user would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import ray
from ray.cluster_utils import Cluster

from actors.testing import CollectSink, ListSource
from pipelines import Pipeline

MB = 1024 * 1024


def main() -> None:
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": 100 * MB, "include_dashboard": False,
        "labels": {"site": "paris"}})
    nodes = {"head": cluster.head_node.node_id}
    nodes["nvenc"] = cluster.add_node(
        num_cpus=2, object_store_memory=100 * MB, resources={"parallax.encoder.nvenc": 4},
        labels={"parallax.encoder.nvenc": "true", "parallax.encoder.software": "true",
                "site": "paris"}).node_id
    nodes["vaapi"] = cluster.add_node(
        num_cpus=0, object_store_memory=100 * MB,
        labels={"parallax.encoder.vaapi": "true", "site": "lyon"}).node_id
    ray.init(address=cluster.address)
    out: dict = {"nodes": nodes}
    try:
        cluster.wait_for_nodes()
        p = Pipeline("listed")
        p.add(ListSource(list(range(10**6)), interval_s=0.01), name="src")
        p.add(CollectSink(keep=False), name="sink")
        p.link("src", "sink")
        p.start()
        env = {**os.environ, "RAY_ADDRESS": cluster.address}
        for key, argv in (("plain", []), ("json", ["--json"])):
            proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "cluster", *argv],
                                  env=env, capture_output=True, text=True, timeout=120)
            out[key] = {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}
        p.stop()
    finally:
        ray.shutdown()
        cluster.shutdown()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
