"""Many files through one farm: one bad file fails alone, a killed batch resumes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
from media import make_video, probe_video
from streams import assert_usage_error, parallax

from actors.farm.chunk_store import MANIFEST, STATE_DIR, lock_dir
from actors.media.test_pattern import read_timecode


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``: Ray's GCS and raylet, and the raylet's workers."""
    table = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in table.splitlines():
        child, parent = map(int, line.split())
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def numbers(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [read_timecode(f.to_ndarray(format="gray")) for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch_in")
    files = {f"clip{i}.mp4": 30 * (i + 1) for i in range(4)}  # 1 to 4 s
    for name, frames in files.items():
        make_video(str(d / name), "libx264", frames=frames, bframes=2, gop=15)
    good = (d / "clip3.mp4").read_bytes()
    (d / "broken.mp4").write_bytes(good[: len(good) // 3])  # cut before its moov box
    return d, files


def test_five_files_one_corrupt_gives_four_outputs_and_one_named_failure(inputs, tmp_path):
    d, files = inputs
    run = parallax("transcode", str(d / "*.mp4"), "--output-dir", str(tmp_path),
                   "--chunk-duration", "0.5", "--json", timeout=300)
    assert run.returncode == 1, run.stderr  # a file failed: the exit code says so
    report = json.loads(run.stdout.strip().splitlines()[-1])["batch"]
    assert report["failed"] == [str(d / "broken.mp4")]
    assert "truncated" in report["files"][str(d / "broken.mp4")]["reason"]
    for name, frames in files.items():
        out = tmp_path / name
        assert report["files"][str(d / name)]["state"] == "done"
        assert numbers(out) == list(range(frames)), name  # every frame, in order
        assert probe_video(str(out))["times"][0] == 0.0
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_DIR, *sorted(files)]
    assert "broken.mp4" in run.stderr and "failed" in run.stderr


def test_a_killed_batch_resumes_and_encodes_only_what_was_missing(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    names = [f"long{i}.mp4" for i in range(3)]
    for name in names:  # 8 chunks each; slow enough to kill in the middle
        make_video(str(src / name), "libx264", 320, 240, frames=120, bframes=2, gop=15)
    out = tmp_path / "out"
    out.mkdir()
    args = [sys.executable, "-m", "pipelines.cli", "transcode", *(str(src / n) for n in names),
            "--output-dir", str(out), "--chunk-duration", "0.5", "--workers", "1",
            "--preset", "veryslow", "--quiet"]
    proc = subprocess.Popen(args, cwd=Path(__file__).parent, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)

    manifest = out / STATE_DIR / MANIFEST
    kept = 0
    deadline = time.monotonic() + 120
    while kept < 6 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        with contextlib.suppress(OSError, ValueError):  # not written yet, or being replaced
            kept = sum(len(f["chunks"]) for f in json.loads(manifest.read_text())["files"]
                       .values())
    assert proc.poll() is None, "the batch finished before it could be killed"
    for pid in [proc.pid, *descendants(proc.pid)]:  # the run's every process, as a crash
        with contextlib.suppress(ProcessLookupError):  # of its machine would
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)
    os.close(lock_dir(str(out)))  # Ray's workers outlive their driver for a moment
    state = json.loads(manifest.read_text())["files"]
    done_before = {Path(f["input"]).name for f in state.values() if f["state"] == "done"}
    on_disk = sum(len(f["chunks"]) for f in state.values() if f["state"] != "done")
    assert len(done_before) < 3 and on_disk + 8 * len(done_before) >= 6

    # The same files and directory, spelled relative to where the user now is.
    run = parallax("transcode", *(f"in/{n}" for n in names), "--output-dir", "out",
                   "--chunk-duration", "0.5", "--workers", "1", "--preset", "veryslow",
                   "--resume", "--json", timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])["batch"]
    # Finished files are skipped; of the others, only the chunks not on disk are encoded.
    assert report["chunks_from_disk"] == on_disk
    assert report["chunks_encoded"] == 8 * (3 - len(done_before)) - on_disk
    for name in names:
        assert numbers(out / name) == list(range(120)), name
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != STATE_DIR]


def test_batch_usage_errors(tmp_path):
    assert_usage_error(parallax("transcode", "a.mp4", "b.mp4", "c.mp4", cwd=tmp_path),
                       "--output-dir")
    assert_usage_error(parallax("transcode", "a.mp4", "--output-dir", str(tmp_path / "no"),
                                cwd=tmp_path), "does not exist")
    assert_usage_error(parallax("transcode", "nothing*.mp4", "--output-dir", str(tmp_path),
                                cwd=tmp_path), "matches no file")
    assert_usage_error(parallax("transcode", "a.mp4", "b.mp4", "--resume", cwd=tmp_path),
                       "--output-dir")
    (tmp_path / "a_file").write_text("not a directory")
    assert_usage_error(parallax("transcode", "a.mp4", "--output-dir", "a_file", cwd=tmp_path),
                       "'a_file' is a file, not a directory")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / STATE_DIR).write_text("a file where the batch keeps its state")
    (tmp_path / "a.mp4").write_bytes(b"")
    assert_usage_error(parallax("transcode", "a.mp4", "--output-dir", "taken", cwd=tmp_path),
                       f"taken/{STATE_DIR}", "move away")


def test_an_unwritable_output_dir_fails_before_any_work(inputs, unwritable_dir, tmp_path):
    d, _ = inputs
    run = parallax("transcode", str(d / "clip0.mp4"), str(d / "clip1.mp4"), "--output-dir",
                   str(unwritable_dir), cwd=tmp_path)
    assert_usage_error(run, "--output-dir", "not writable", str(unwritable_dir))
    assert "Ray" not in run.stderr  # refused before a Ray was started for it
    assert os.listdir(unwritable_dir) == []


def test_outputs_that_exist_are_replaced_only_when_asked(inputs, tmp_path):
    d, _ = inputs
    clip = d / "clip0.mp4"
    before = clip.read_bytes()
    # Into the inputs' own directory: clip0.mp4 would be written over clip0.mp4.
    for extra in ([], ["-y"]):
        assert_usage_error(parallax("transcode", str(clip), "--output-dir", str(d), *extra,
                                    cwd=tmp_path), "is the input", str(clip))
    assert clip.read_bytes() == before
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip0.mp4").write_bytes(b"someone else's file")
    assert_usage_error(parallax("transcode", str(clip), str(d / "clip1.mp4"), "--output-dir",
                                str(out), cwd=tmp_path), "clip0.mp4", "exists", "-y")
    assert (out / "clip0.mp4").read_bytes() == b"someone else's file"
    assert not (out / "clip1.mp4").exists()


def test_quiet_still_says_which_files_failed(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "out").mkdir()
    run = parallax("transcode", "empty.mp4", "missing.mp4", "--output-dir", "out", "--quiet",
                   cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 2 and all(ln.startswith("error: ") for ln in lines), run.stderr
    assert "empty.mp4" in lines[0] and "empty" in lines[0].split(": ", 2)[2]
    assert "missing.mp4" in lines[1] and "does not exist" in lines[1]


@pytest.mark.parametrize("names", [["clip0.mp4", "missing.mp4"], ["missing.mp4"]])
def test_stats_json_ends_with_the_batch_report(inputs, tmp_path, names):
    """A reader of the JSON lines gets what --json prints as the last line: each file's
    outcome, not only the pool's figures (with or without a pool to run)."""
    d, files = inputs
    (tmp_path / "out").mkdir()
    run = parallax("transcode", *(str(d / n) for n in names), "--output-dir", "out",
                   "--stats-json", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    lines = [json.loads(ln) for ln in run.stdout.splitlines()]
    final = lines[-1]
    assert final["final"] is True and not any(ln.get("final") for ln in lines[:-1])
    assert final["batch"]["failed"] == [str(d / "missing.mp4")]
    assert set(final["batch"]["files"]) == {str(d / n) for n in names}
    if "clip0.mp4" in names:
        assert final["batch"]["files"][str(d / "clip0.mp4")]["state"] == "done"
        assert final["frames"] == files["clip0.mp4"]
        assert probe_video(str(tmp_path / "out" / "clip0.mp4"))["frames"] == 30
