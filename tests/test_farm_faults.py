"""The farm loses a worker mid-run, as when a process is killed: nothing is lost."""

from __future__ import annotations

import os
import signal

import av
import pytest
from media import make_video, probe_video
from pool_elements import busy_replica

from actors.media.test_pattern import read_timecode
from pipelines.farm import FarmOptions
from pipelines.transcode import TranscodeOptions, build_transcode

pytestmark = pytest.mark.usefixtures("ray_session")


def test_sigkill_of_a_worker_mid_run_keeps_every_frame(tmp_path):
    src = make_video(str(tmp_path / "in.mp4"), "libx264", 640, 480, frames=300, bframes=2,
                     gop=15)
    out = tmp_path / "out.mp4"
    p = build_transcode(TranscodeOptions(str(src), str(out), preset="slow",
                                         farm=FarmOptions(workers=2, chunk_duration=0.5)))
    p.stats_interval = 0.1  # see the pool often enough to kill a worker mid-run
    p.start()
    victim = busy_replica(p, "xcode", after_items=2)
    assert victim, "no worker was busy after its second chunk"
    os.kill(victim, signal.SIGKILL)
    stats = p.wait(timeout=180)
    pool = stats.pools["xcode"]
    assert pool.lost == 1 and pool.requeued >= 1
    assert p.results("stitch")["chunks"] == 20 == pool.items
    got = probe_video(str(out))
    assert got["frames"] == 300 and got["times"][0] == 0.0
    with av.open(str(out)) as c:
        numbers = [read_timecode(f.to_ndarray(format="gray")) for f in c.decode(video=0)]
    assert numbers == list(range(300))  # every frame, once, in order
    assert not any(name.startswith(".") for name in os.listdir(tmp_path))  # no .part left
