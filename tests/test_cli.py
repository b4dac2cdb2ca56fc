"""The parallax CLI as a user runs it: exit codes, one-line errors, --json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from media import corrupt_packets, make_audio_only, make_video, probe_video
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
    (["out.mp4", "--fps", "inf"], ["--fps inf"]),
    (["out.mp4", "--fps", "1e9"], ["--fps 1e+09", "at most 1000"]),
    (["out.mp4", "--width", "100000"], ["--width 100000", "at most 16384"]),
    (["out.mp4", "--preset", "p99"], ["--preset 'p99'", "takes a name", "veryfast"]),
    (["out.mp4", "--bitrate", "-5M"], ["--bitrate: expected one argument", "--bitrate=VALUE"]),
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


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(str(tmp_path_factory.mktemp("clip") / "clip.mp4"), frames=30)


@pytest.mark.parametrize("output, args, needle", [
    ("clip.mp4", ["-y"], "is the input"),  # -y or not: ffmpeg refuses too
    ("./sub/../clip.mp4", ["-y"], "is the input"),
    ("sub", ["-y"], "is a directory"),
    ("a" * 300 + ".mp4", [], "cannot write"),  # longer than a file name may be
    ("/proc/out.mp4", [], "cannot write"),  # permissions allow it, the file system does not
    ("/proc/out.m3u8", [], "cannot write"),
    ("clip.mp4/out.mp4", [], "is a file, not a directory"),
])
def test_outputs_that_cannot_be_written_fail_before_the_first_frame(
        clip, tmp_path, output, args, needle):
    work = tmp_path / "w"
    (work / "sub").mkdir(parents=True)
    (work / "clip.mp4").write_bytes(Path(clip).read_bytes())
    run = parallax("transcode", "clip.mp4", output, "--quiet", *args, cwd=work)
    assert_usage_error(run, needle)
    assert sorted(os.listdir(work)) == ["clip.mp4", "sub"] and not os.listdir(work / "sub")
    assert (work / "clip.mp4").read_bytes() == Path(clip).read_bytes()
    assert not list(Path("/proc").glob(".out.*"))


@pytest.mark.parametrize("args", [[], ["--no-chunks"]])
def test_a_name_at_the_length_limit_is_written(clip, tmp_path, args):
    # The longest name whose partial file (".NAME.part") still fits: the check before the
    # first frame must not refuse what the writer can make.
    name = "a" * (os.pathconf(tmp_path, "PC_NAME_MAX") - len("..part") - len(".mp4")) + ".mp4"
    run = parallax("transcode", clip, name, "--quiet", *args, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert os.listdir(tmp_path) == [name] and probe_video(str(tmp_path / name))["frames"] == 30


@pytest.mark.parametrize("output, args", [
    ("o.mp4", ["--json"]), ("o.m3u8", []), ("o.mp4", ["--fragment-duration", "1"]),
    ("o.mp4", ["--no-chunks"]),
])
def test_an_input_that_decodes_to_nothing_writes_nothing(clip, tmp_path, output, args):
    bad = str(tmp_path / "all_bad.mp4")
    corrupt_packets(clip, bad, list(range(30)))  # the container is whole, no frame decodes
    (tmp_path / "out").mkdir()
    run = parallax("transcode", bad, str(tmp_path / "out" / output), *args, cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "no video frame reached" in errors[0], run.stderr
    assert "Traceback" not in run.stderr
    assert os.listdir(tmp_path / "out") == []  # no empty MP4, playlist or init segment
    if "--json" in args:  # a failed run still reports, with why
        report = json.loads(run.stdout.strip().splitlines()[-1])
        assert "no video frame reached" in report["error"] and report["frames"] == 0


def test_receive_refuses_an_endless_duration(tmp_path):
    assert_usage_error(parallax("receive", "zenoh:t/x", "o.mp4", "--duration", "inf",
                                cwd=tmp_path), "--duration", "finite")
