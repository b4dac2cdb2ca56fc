"""Run by test_farm_cluster.py in its own process: the farm on a 3-node local cluster.

A multi-node ray.cluster_utils.Cluster needs its own Ray, so it cannot share the test
session's instance. Prints one JSON object with what it observed.
"""

from __future__ import annotations

import json
import sys

from media import make_video, probe_video
from site_cluster import site_cluster

from pipelines.farm import FarmOptions
from pipelines.transcode import TranscodeOptions, build_transcode


def transcode(src: str, out: str, farm: FarmOptions) -> dict:
    p = build_transcode(TranscodeOptions(src, out, farm=farm), local=False)
    stats = p.run(timeout=240)
    pool = stats.pools["xcode"]
    return {"frames": probe_video(out)["frames"], "per_node": pool.per_node(),
            "src_node": stats.elements["src"].node_id, "mux_node": stats.elements["mux"].node_id,
            "chunks": p.results("stitch")["chunks"], "lost": pool.lost}


def main() -> None:
    with site_cluster("parallax-farm-cluster-") as (tmp, _cluster, out):
        src = make_video(str(tmp / "in.mp4"), "libx264", frames=120, bframes=2, gop=15)
        out["input_frames"] = probe_video(src)["frames"]
        out["spread"] = transcode(src, str(tmp / "spread.mp4"),
                                  FarmOptions(workers="auto", chunk_duration=0.5))
        out["pinned"] = transcode(src, str(tmp / "pinned.mp4"),
                                  FarmOptions(workers=2, chunk_duration=0.5,
                                              worker_labels=(("site", "b"),)))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
