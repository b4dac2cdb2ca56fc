"""Run by test_node_pinning.py in its own process: --source-node / --output-node on a
3-node local cluster (labels site=head, site=a, site=b; the driver is on the head).

A multi-node ray.cluster_utils.Cluster needs its own Ray, so it cannot share the test
session's instance (as in farm_cluster.py). Every node here shares this machine's
filesystem, so "a path that exists on one node but not on another" cannot be staged:
the cases check that the reads and writes happen on the chosen node (stats), and that an
error raised there comes back as one line naming that node. Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from media import make_video, probe_video
from site_cluster import site_cluster

from actors.errors import ParallaxError
from pipelines.farm import FarmOptions
from pipelines.transcode import TranscodeOptions, build_transcode

AT_B = (("site", "b"),)


def transcode(src: str, out: str, farm: FarmOptions | None, **kw: object) -> dict:
    t0 = time.monotonic()
    p = build_transcode(TranscodeOptions(src, out, farm=farm, source_node=AT_B,
                                         output_node=AT_B, **kw), local=False)
    stats = p.run(timeout=240)
    return {"nodes": {n: s.node_id for n, s in stats.elements.items()},
            "frames": probe_video(out)["frames"], "seconds": time.monotonic() - t0}


def failure(src: str, out: str, **kw: object) -> dict:
    """The error of a transcode that must not run: its class and message."""
    try:
        build_transcode(TranscodeOptions(src, out, farm=None, **kw), local=False).run(
            timeout=120)
    except ParallaxError as exc:
        return {"kind": type(exc).__name__, "error": str(exc)}
    return {"kind": None, "error": None}


def cli(address: str, *args: str) -> dict:
    """`parallax transcode ...` as a user runs it against this cluster."""
    env = {**os.environ, "RAY_ADDRESS": address}
    run = subprocess.run([sys.executable, "-m", "pipelines.cli", "transcode", *args],
                         capture_output=True, text=True, env=env, timeout=180)
    return {"code": run.returncode, "stderr": run.stderr}


def main() -> None:
    with site_cluster("parallax-pin-") as (tmp, cluster, out):
        src = make_video(str(tmp / "in.mp4"), "libx264", frames=60, gop=15)
        out["farm"] = transcode(src, str(tmp / "farm.mp4"),
                                FarmOptions(workers=2, chunk_duration=0.5))
        out["linear"] = transcode("testsrc:size=160x120,duration=1", str(tmp / "lin.mp4"),
                                  None)
        out["nowhere"] = failure(src, str(tmp / "x.mp4"), source_node=(("site", "mars"),))
        out["missing"] = failure(str(tmp / "missing.mp4"), str(tmp / "x.mp4"),
                                 source_node=AT_B)
        out["no_dir"] = failure("testsrc:size=160x120,duration=1",
                                str(tmp / "no" / "such" / "dir.mp4"), output_node=AT_B)
        out["cli_missing"] = cli(cluster.address, str(tmp / "missing.mp4"),
                                 str(tmp / "y.mp4"), "--source-node", "site=b")
        out["cli_nowhere"] = cli(cluster.address, src, str(tmp / "y.mp4"),
                                 "--output-node", "site=mars")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
