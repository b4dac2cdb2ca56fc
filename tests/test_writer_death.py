"""The process writing the output is killed mid-run, as a user's trial would: SIGKILL of
the process that holds the output's ``.part`` open. The driver finishes what the dead
writer could not: a progressive MP4 is removed, a fragmented one keeps its complete
fragments, and the user is told either way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import pytest
from test_batch import descendants

from actors.streaming.fmp4 import complete_prefix

LIVE_SOURCE = "testsrc:duration=60,size=320x240,live=1"  # paced: a minute unless killed
FILE_LIKE_SOURCE = "testsrc:duration=900,size=320x240"  # not live: as fast as it encodes


def holder(root: int, path: Path) -> int | None:
    """The process under ``root`` that has ``path`` open."""
    for pid in descendants(root):
        fd_dir = f"/proc/{pid}/fd"
        try:
            for fd in os.listdir(fd_dir):
                if os.readlink(os.path.join(fd_dir, fd)) == str(path):
                    return pid
        except OSError:  # gone, or not ours to read
            continue
    return None


def fragments(path: Path) -> int:
    try:
        return complete_prefix(path.read_bytes())[1]
    except OSError:
        return 0


def kill_writer(tmp_path: Path, *extra: str, ready: Callable[[Path], bool],
                source: str = LIVE_SOURCE) -> tuple[int, str]:
    out, part = tmp_path / "out.mp4", tmp_path / ".out.mp4.part"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "transcode", source,
                            # No restarts: here the dead writer's output is what is left.
                            str(out), "--quiet", "--max-restarts", "0", *extra],
                           stderr=subprocess.PIPE, text=True,
                           env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        victim = None
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.2)
            victim = holder(run.pid, part) if part.exists() else None
        assert victim, "no process held the .part open within 60 s"
        while not ready(part) and time.monotonic() < deadline:
            time.sleep(0.1)  # until some output is written
        os.kill(victim, signal.SIGKILL)
        _, err = run.communicate(timeout=120)
        return run.returncode, err
    finally:
        run.kill()


def test_a_killed_progressive_writer_leaves_no_part_and_says_so(tmp_path):
    # A file-like source: its output is progressive (a live one's is fragmented).
    t0 = time.monotonic()  # static bars encode to a few bytes a frame: wait, not count
    code, err = kill_writer(tmp_path, ready=lambda part: time.monotonic() - t0 > 3,
                            source=FILE_LIKE_SOURCE)
    assert code == 1, err
    assert "removed the incomplete output" in err and ".out.mp4.part" in err, err
    assert "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == []  # neither out.mp4 nor its .part


@pytest.mark.parametrize("extra, per_fragment", [(("--fragment-duration", "1"), 30),
                                                 ((), 60)], ids=["asked", "live-default"])
def test_a_killed_fragmented_writer_keeps_its_complete_fragments(tmp_path, extra,
                                                                 per_fragment):
    """Asked for with --fragment-duration, or by default for a live source's .mp4 (2 s
    fragments), so that a recording survives its writer."""
    code, err = kill_writer(tmp_path, *extra, ready=lambda part: fragments(part) >= 3)
    assert code == 1, err
    assert "complete fragment(s) of" in err, err
    assert sorted(os.listdir(tmp_path)) == ["out.mp4"]
    kept = int(err.split("kept ")[1].split(" complete")[0])
    assert kept >= 3
    with av.open(str(tmp_path / "out.mp4")) as c:
        frames = sum(1 for _ in c.decode(video=0))
    # Each fragment holds its seconds of frames; the torn last one was cut off cleanly.
    assert frames == pytest.approx(kept * per_fragment, abs=per_fragment), (frames, kept)


def test_ctrl_c_mid_transcode_finishes_the_output_and_exits_130(tmp_path):
    out = tmp_path / "out.mp4"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "transcode", LIVE_SOURCE,
                            str(out), "--stats-json"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        for line in run.stdout:  # one JSON line a second once it plays
            if '"frames": ' in line and int(line.split('"frames": ')[1].split(",")[0]) >= 60:
                break
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 130, err
    assert "interrupted: finishing the output" in err and "Traceback" not in err
    with av.open(str(out)) as c:  # finalized: a complete (fragmented) MP4
        frames = sum(1 for _ in c.decode(video=0))
    assert 60 <= frames < 60 * 30
    assert sorted(os.listdir(tmp_path)) == ["out.mp4"]


def test_a_killed_hls_writer_leaves_an_ended_playlist_of_whole_segments(tmp_path):
    out = tmp_path / "live.m3u8"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "transcode", LIVE_SOURCE,
                            str(out), "--quiet", "--fragment-duration", "1",
                            "--max-restarts", "0"],
                           stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and (
                not out.exists() or out.read_text().count("#EXTINF") < 3):
            time.sleep(0.2)
        hosts = [pid for pid in descendants(run.pid)
                 if "ElementHost" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]
        assert hosts, "no element host found"
        for pid in hosts:  # the writer among them: nothing is left to finish the playlist
            os.kill(pid, signal.SIGKILL)
        _, err = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 1, err
    assert "ended the playlist" in err and "Traceback" not in err, err
    text = out.read_text()
    assert text.rstrip().endswith("#EXT-X-ENDLIST")
    segments = [line for line in text.splitlines() if line.endswith(".m4s")]
    assert len(segments) >= 3
    with av.open(str(out)) as c:  # every listed segment is whole and decodes
        frames = sum(1 for _ in c.decode(video=0))
    assert frames == pytest.approx(len(segments) * 30, abs=30)


def test_an_output_ended_early_because_its_encoder_died_says_so(tmp_path):
    """The writer outlives what fed it and ends the file itself. Its warning used to come
    only with the next stats poll, which a teardown could beat (2 of 11 runs kept a cut
    file under its final name without a word); it now comes with the teardown."""
    out, part = tmp_path / "out.mp4", tmp_path / ".out.mp4.part"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "transcode",
                            FILE_LIKE_SOURCE, str(out), "--quiet", "--max-restarts", "0",
                            "--fragment-duration", "1"], stderr=subprocess.PIPE, text=True,
                           env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        writer = None
        while (writer is None or fragments(part) < 3) and time.monotonic() < deadline:
            time.sleep(0.1)
            writer = writer or (holder(run.pid, part) if part.exists() else None)
        assert writer and fragments(part) >= 3, "no fragments written within 60 s"
        hosts = [pid for pid in descendants(run.pid) if pid != writer and "ElementHost" in
                 Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]
        assert len(hosts) == 1, hosts  # the source and encoder, fused
        os.kill(hosts[0], signal.SIGKILL)
        _, err = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 1, err
    assert "the pipeline stopped early" in err and "complete fragments" in err, err
    assert sorted(os.listdir(tmp_path)) == ["out.mp4"]
    assert "Traceback" not in err
