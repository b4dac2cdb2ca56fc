"""A 3-node ray.cluster_utils.Cluster labelled site=head, site=a and site=b, for scripts
that tests run in their own process (a multi-node Cluster needs its own Ray)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray
from ray.cluster_utils import Cluster

MB = 1024 * 1024


@contextmanager
def site_cluster(prefix: str) -> Iterator[tuple[Path, Cluster, dict[str, Any]]]:
    """(scratch dir, cluster, {"nodes": site -> node id, "driver": node id}); the driver
    is connected and on the head. Everything is stopped and removed on exit."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": 150 * MB, "include_dashboard": False,
        "labels": {"site": "head"}, "temp_dir": str(tmp / "ray")})
    try:
        a = cluster.add_node(num_cpus=1, object_store_memory=100 * MB, labels={"site": "a"})
        b = cluster.add_node(num_cpus=1, object_store_memory=100 * MB, labels={"site": "b"})
        ray.init(address=cluster.address, runtime_env={"env_vars": {
            "PYTHONPATH": str(Path(__file__).parent)}})
        ids = {"nodes": {"head": cluster.head_node.node_id, "a": a.node_id, "b": b.node_id},
               "driver": ray.get_runtime_context().get_node_id()}
        cluster.wait_for_nodes()
        yield tmp, cluster, ids
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
