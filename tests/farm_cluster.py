"""Run by test_farm_cluster.py in its own process: the farm on a 3-node local cluster.

A multi-node ray.cluster_utils.Cluster needs its own Ray, so it cannot share the test
session's instance. Prints one JSON object with what it observed.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import ray
from media import make_video, probe_video
from ray.cluster_utils import Cluster

from pipelines.farm import FarmOptions
from pipelines.transcode import TranscodeOptions, build_transcode

MB = 1024 * 1024


def transcode(src: str, out: str, farm: FarmOptions) -> dict:
    p = build_transcode(TranscodeOptions(src, out, farm=farm), local=False)
    stats = p.run(timeout=240)
    pool = stats.pools["xcode"]
    return {"frames": probe_video(out)["frames"], "per_node": pool.per_node(),
            "src_node": stats.elements["src"].node_id, "mux_node": stats.elements["mux"].node_id,
            "chunks": p.results("stitch")["chunks"], "lost": pool.lost}


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="parallax-farm-cluster-"))
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": 150 * MB, "include_dashboard": False,
        "labels": {"site": "head"}, "temp_dir": str(tmp / "ray")})
    a = cluster.add_node(num_cpus=1, object_store_memory=100 * MB, labels={"site": "a"})
    b = cluster.add_node(num_cpus=1, object_store_memory=100 * MB, labels={"site": "b"})
    ray.init(address=cluster.address, runtime_env={"env_vars": {
        "PYTHONPATH": str(Path(__file__).parent)}})
    out: dict = {"nodes": {"head": cluster.head_node.node_id, "a": a.node_id, "b": b.node_id},
                 "driver": ray.get_runtime_context().get_node_id()}
    try:
        cluster.wait_for_nodes()
        src = make_video(str(tmp / "in.mp4"), "libx264", frames=120, bframes=2, gop=15)
        out["input_frames"] = probe_video(src)["frames"]
        out["spread"] = transcode(src, str(tmp / "spread.mp4"),
                                  FarmOptions(workers="auto", chunk_duration=0.5))
        out["pinned"] = transcode(src, str(tmp / "pinned.mp4"),
                                  FarmOptions(workers=2, chunk_duration=0.5,
                                              worker_labels=(("site", "b"),)))
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
