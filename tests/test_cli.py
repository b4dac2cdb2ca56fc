"""The parallax CLI as a user runs it: exit codes, one-line errors, --json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from media import make_audio_only, make_video
from streams import assert_usage_error, parallax

from actors.media.encoders import EncoderBackend, VideoCodec
from actors.media.encoders.factory import precheck


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.mp4").write_bytes(b"")
    (d / "random.mp4").write_bytes(os.urandom(50_000))
    good = make_video(str(d / "good.mp4"), frames=30)
    data = Path(good).read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])  # cut before the moov box
    make_audio_only(str(d / "audio.m4a"))
    return d


@pytest.mark.parametrize("name, needle", [
    ("missing.mp4", "does not exist"),
    ("empty.mp4", "is empty (0 bytes)"),
    ("random.mp4", "not a media file"),
    ("truncated.mp4", "truncated"),
    ("audio.m4a", "has no video stream (it has: audio)"),
])
def test_bad_input_files(bad_inputs, tmp_path, name, needle):
    out = tmp_path / "out.mp4"
    assert_usage_error(parallax("transcode", str(bad_inputs / name), str(out)), needle)
    assert not out.exists()


@pytest.mark.parametrize("args, needles", [
    (["out.avi"], ["unknown extension .avi", ".mp4"]),
    (["out.mp4", "--height", "0"], ["--height 0"]),
    (["out.mp4", "--width", "-5"], ["--width"]),
    (["out.mp4", "--fps", "0"], ["--fps 0"]),
    (["out.mp4", "--codec", "mpeg2"], ["unknown VideoCodec 'mpeg2'"]),
    (["out.mp4", "--bitrate", "fast"], ["--bitrate 'fast'"]),
    (["out.mp4", "--scale-algorithm", "sharp"], ["invalid choice"]),
])
def test_bad_options(tmp_path, args, needles):
    assert_usage_error(parallax("transcode", "testsrc", *args, cwd=tmp_path), *needles)


def test_encoder_the_host_lacks(tmp_path):
    if precheck(EncoderBackend.Nvenc, VideoCodec.H264) is None:
        pytest.skip("this host has NVENC")
    assert_usage_error(parallax("transcode", "testsrc", "o.mp4", "--encoder", "nvenc",
                                cwd=tmp_path), "no NVENC", "libnvidia-encode")


def test_transcode_testsrc_with_json(tmp_path):
    run = parallax("transcode", "testsrc:size=320x240,duration=1", "demo.mp4", "--width",
                   "160", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    stats = json.loads(run.stdout)
    assert stats["frames"] == stats["frames_total"] == 30
    assert stats["elements"]["encode"]["buffers_in"] == 30
    assert stats["elements"]["mux"]["buffers_in"] == 30
    assert (tmp_path / "demo.mp4").stat().st_size > 0
    assert "done: 30 frames" in run.stderr  # the summary


def test_transcode_to_null_quietly(tmp_path):
    run = parallax("transcode", "testsrc:duration=0.5", "null", "--quiet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "" and list(tmp_path.iterdir()) == []


def test_probe_json():
    run = parallax("probe", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    rows = {(r["backend"], r["codec"]): r for r in report["encoders"]}
    assert rows[("software", "h264")]["available"] is True
    assert rows[("vulkan", "h264")]["available"] is False
    assert "not supported yet" in rows[("vulkan", "h264")]["reason"]
    assert {"cpu", "render_nodes", "nvidia_gpus"} <= set(report["hardware"])
