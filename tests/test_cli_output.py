"""What the CLI prints: with --json or --stats-json stdout holds JSON lines only, whatever
Ray's workers, its raylet or the driver's own process print; and summaries count frames,
not the segments that carry them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
from test_writer_death import holder

# Imported by every Python process of the run (PYTHONPATH): Ray workers print on their
# stdout, which Ray forwards to the driver's; the driver's process writes on fd 1 itself,
# as a C library would.
NOISE = '''
import os, sys, threading, time
cmd = open("/proc/self/cmdline", "rb").read().replace(b"\\0", b" ")
worker, driver = b"default_worker" in cmd, b"pipelines.cli" in cmd

def ray_started():  # in the driver, the CLI's set-up is over by then
    try:
        return sys.modules["ray"].is_initialized()
    except Exception:  # not imported, or not yet all of it
        return False

def talk():
    while True:
        if worker:
            print("noise: worker print", flush=True)
        if driver and ray_started():
            os.write(1, b"noise: driver fd 1\\n")
        time.sleep(0.3)

if worker or driver:
    threading.Thread(target=talk, daemon=True).start()
'''


def run_cli(tmp_path: Path, *args: str, noise: bool = True) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    if noise:
        (tmp_path / "noise").mkdir(exist_ok=True)
        (tmp_path / "noise" / "sitecustomize.py").write_text(NOISE)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path / "noise"),
                                                          env.get("PYTHONPATH")]))
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)


def json_lines(stdout: str) -> list[dict]:
    lines = stdout.splitlines()
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            raise AssertionError(f"not JSON on stdout: {line[:200]!r}") from None
    return [json.loads(line) for line in lines]


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_json_summary_counts_frames_of_hls_and_stdout_is_json_only(tmp_path):
    run = run_cli(tmp_path, "transcode", "testsrc:duration=2,size=320x240", "out.m3u8",
                  "--json")
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert "noise: driver fd 1" in err  # sent, and diverted
    (stats,) = json_lines(out)
    real = decoded_frames(tmp_path / "out.m3u8")
    assert real == 60
    assert stats["frames"] == real and stats["elements"]["sink"]["frames_in"] == real
    assert f"done: {real} frames" in err  # the summary on stderr, not 2 segments


def test_stats_json_lines_count_frames_of_fragmented_mp4(tmp_path):
    # Paced (live): the workers print for 3 s, and Ray forwards that while the run lasts.
    run = run_cli(tmp_path, "transcode", "testsrc:duration=3,size=320x240,live=1",
                  "out.mp4", "--fragment-duration", "0.5", "--stats-json")
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert "noise: worker print" in err and "noise: driver fd 1" in err
    lines = json_lines(out)
    assert len(lines) >= 2, err  # one a second while it runs, then the final figures
    real = decoded_frames(tmp_path / "out.mp4")
    assert real > 60  # a live source on a loaded machine may skip a few of its 90
    assert lines[-1]["frames"] == real  # not the 7 segments that carried them


def test_stats_json_stays_json_when_a_worker_dies(tmp_path):
    """The raylet's "A worker died..." notice reaches the driver; it goes to stderr."""
    run = run_cli(tmp_path, "transcode", "testsrc:duration=60,size=320x240,live=1",
                  "out.mp4", "--stats-json", "--max-restarts", "0", noise=False)
    try:
        deadline, victim = time.monotonic() + 120, None
        part = tmp_path / ".out.mp4.part"
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.2)
            victim = holder(run.pid, part) if part.exists() else None
        assert victim, "no process held the .part open within 120 s"
        time.sleep(2)  # a few stats lines first
        os.kill(victim, signal.SIGKILL)
        out, err = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 1, err
    assert "its actor died" in err, err
    assert json_lines(out), err


@pytest.mark.parametrize("argv", [["transcode", "testsrc:duration=0.2", "null", "--json",
                                   "--quiet"]])
def test_a_call_from_python_gets_its_stdout_back(ray_session, tmp_path, argv, capfd,
                                                 monkeypatch):
    """main(argv) inside a program: JSON on its stdout, which is its own again after."""
    from pipelines.cli import main

    monkeypatch.chdir(tmp_path)
    before = sys.stdout
    assert main(argv) == 0
    assert sys.stdout is before
    print("after")
    out = capfd.readouterr().out.splitlines()
    assert json.loads(out[0])["frames"] == 6 and out[1:] == ["after"]
