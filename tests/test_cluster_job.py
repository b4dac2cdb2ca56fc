"""A transcode submitted as a Ray job to a real two-node cluster on loopback.

`ray start --head` with token auth, a second node through cluster/start-node.sh (fake
NVENC labels), `ray job submit` through cluster/submit.sh, the output checked where the
job's entrypoint node wrote it, and the job's log read as a person would read it.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import time

import av
import pytest
from cluster_procs import REPO, LoopbackCluster

from pipelines.progress import ProgressDisplay
from pipelines.runtime.stats import Progress


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LoopbackCluster(tmp_path_factory.mktemp("job", numbered=True))
    try:
        c.start_head()
        c.add_node("site=lab", fake_encoders="nvenc")
        yield c
    finally:
        c.stop()
    assert not c.processes(), "processes of the test's cluster outlived it"


def nodes(cluster) -> list[dict]:
    out = cluster.ray("list", "nodes", "--format=json", f"--address={cluster.gcs_address}")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.slow  # about 85 s with the cluster's start: two `ray start`, one job
def test_transcode_job_on_two_nodes(cluster, tmp_path):
    listed = nodes(cluster)
    assert len(listed) == 2
    worker = next(n for n in listed if not n["is_head_node"])
    assert worker["labels"]["parallax.encoder.nvenc"] == "true"
    assert worker["labels"]["site"] == "lab"

    output = tmp_path / "job out.mp4"
    env = {**cluster.env, "RAY_ADDRESS": cluster.job_address}
    t0 = time.monotonic()
    submitted = subprocess.run(
        ["cluster/submit.sh", "testsrc:duration=2", str(output), "--height", "360", "--json"],
        env=env, capture_output=True, text=True, timeout=240, cwd=REPO)
    took = time.monotonic() - t0
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    assert "succeeded" in submitted.stdout + submitted.stderr
    job_id = next(w.strip("'") for w in (submitted.stdout + submitted.stderr).split()
                  if w.strip("'").startswith("raysubmit_"))
    status = cluster.ray("job", "status", job_id, f"--address={cluster.job_address}")
    assert f"Job '{job_id}' succeeded" in status.stdout + status.stderr

    with av.open(str(output)) as c:
        stream = c.streams.video[0]
        frames = sum(1 for _ in c.decode(stream))
        assert (stream.height, frames) == (360, 60)

    logs = cluster.ray("job", "logs", job_id, f"--address={cluster.job_address}").stdout
    (cluster.root / "job.log").write_text(logs)
    assert "\r" not in logs, "a carriage-return progress bar in the job's log"
    assert re.search(r"^transcode: 60/60 \(100%\) frames, [\d.]+ fps, 0 drops", logs, re.M), logs
    stats = json.loads(next(ln for ln in logs.splitlines() if ln.startswith("{")))
    head = next(n["node_id"] for n in listed if n["is_head_node"])
    # The output is written where the muxer runs: the job's entrypoint node, the head.
    assert stats["elements"]["mux"]["node_id"] == head
    print(f"job: {took:.1f} s from submit to SUCCEEDED")


@pytest.mark.slow
def test_job_without_the_token_is_refused(cluster):
    env = {k: v for k, v in cluster.env.items() if k != "RAY_AUTH_TOKEN"}
    env["RAY_AUTH_TOKEN"] = "0" * 64
    out = subprocess.run(["ray", "job", "list", f"--address={cluster.job_address}"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "Invalid authentication token" in out.stdout + out.stderr


def test_progress_in_a_log_is_lines_not_a_bar():
    out = io.StringIO()  # not a terminal, as a job's log
    with ProgressDisplay(out, "transcode") as display:
        for i, elapsed in enumerate((0.5, 1.5, 11.0, 12.0)):
            display.update(Progress(frames_processed=10 * (i + 1), frames_total=40,
                                    bytes_written=0, elapsed=elapsed, estimated_remaining=None,
                                    fps=20.0))
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert out.getvalue().splitlines() == [  # the first, one 10 s later, and the last
        "transcode: 10/40 (25%) frames, 20.0 fps, 0 drops, 0 s",
        "transcode: 30/40 (75%) frames, 20.0 fps, 0 drops, 11 s",
        "transcode: 40/40 (100%) frames, 20.0 fps, 0 drops, 12 s"]
