"""Decode -> scale -> encode -> MP4 as Ray actors, on media generated here."""

from __future__ import annotations

import os
from pathlib import Path

import av
import pytest
from media import make_video, probe_video
from streams import assert_usage_error, parallax

from actors.errors import MediaError, PipelineError
from actors.media.mp4_mux import Mp4Mux, partial_path
from actors.media.test_pattern import TestPatternSource
from actors.media.video_encoder import VideoEncoder
from actors.streaming.fmp4 import iter_boxes
from actors.testing import StallingPassThrough
from pipelines import Pipeline
from pipelines.farm import FarmOptions
from pipelines.outputs import OutputOptions
from pipelines.transcode import TranscodeOptions, build_transcode, input_report

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.mark.parametrize("name, codec, size, out_size", [
    ("h264_bframes.mp4", "libx264", (320, 240), (320, 240)),
    ("hevc.mkv", "libx265", (320, 240), (320, 240)),
    ("vp9.webm", "libvpx-vp9", (320, 240), (320, 240)),
    ("odd.mp4", "libx264", (1921, 1081), (1920, 1080)),  # 4:2:0 output needs even sizes
])
def test_round_trip(tmp_path, name, codec, size, out_size):
    src = make_video(str(tmp_path / name), codec, *size, frames=30)
    out = str(tmp_path / "out.mp4")
    stats = build_transcode(TranscodeOptions(src, out)).run(timeout=300)
    got, want = probe_video(out), probe_video(src)
    assert got["frames"] == want["frames"] == 30 == stats.frames
    assert (got["width"], got["height"]) == out_size and got["codec"] == "h264"
    assert abs(got["duration"] - 1.0) <= 1 / 30  # within one frame
    assert got["times"] == pytest.approx(want["times"], abs=1e-3)  # timestamps kept exactly
    assert not os.path.exists(partial_path(out))


def test_mp4_duration_correct(tmp_path):
    out = str(tmp_path / "d.mp4")
    build_transcode(TranscodeOptions("testsrc:frames=90,rate=30,size=320x240", out)).run()
    info = probe_video(out)
    assert info["frames"] == 90 and info["duration"] == pytest.approx(3.0, abs=1 / 30)


def test_variable_frame_rate_keeps_timestamps(tmp_path):
    pts = [0, 1, 2, 4, 5, 8, 9, 10, 13, 14, 15, 16]
    src = make_video(str(tmp_path / "vfr.mp4"), frames=len(pts), pts=pts, bframes=0)
    out = str(tmp_path / "out.mp4")
    build_transcode(TranscodeOptions(src, out, width=160)).run()
    got = probe_video(out)
    assert got["times"] == pytest.approx([p / 30 for p in pts], abs=1e-3)
    assert (got["width"], got["height"]) == (160, 120)  # aspect kept from width alone


def test_fps_conversion_and_scaling(tmp_path):
    src = make_video(str(tmp_path / "in.mp4"), frames=30, rate=30)
    out = str(tmp_path / "out.mp4")
    build_transcode(TranscodeOptions(src, out, height=120, fps=15)).run()
    got = probe_video(out)
    assert got["frames"] == 15 and (got["width"], got["height"]) == (160, 120)
    assert got["duration"] == pytest.approx(1.0, abs=1 / 15)


def test_failed_run_leaves_no_complete_looking_file(tmp_path):
    out = str(tmp_path / "broken.mp4")
    p = Pipeline("fail")
    p.chain(TestPatternSource(width=160, height=120, num_frames=60), VideoEncoder(),
            StallingPassThrough(fail_at=20), Mp4Mux(out))
    with pytest.raises(PipelineError, match="stallingpassthrough0"):
        p.run(timeout=120)
    assert not os.path.exists(out) and not os.path.exists(partial_path(out))


@pytest.mark.parametrize("farm", [FarmOptions(chunk_duration=0.5), None], ids=["farm", "linear"])
def test_truncated_matroska_decodes_what_it_can(tmp_path, farm):
    src = make_video(str(tmp_path / "full.mkv"), "libx264", frames=60, bframes=0, gop=10)
    data = Path(src).read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    out = str(tmp_path / "out.mp4")
    p = build_transcode(TranscodeOptions(str(cut), out, farm=farm))
    p.run(timeout=120)
    res = input_report(p)
    assert 0 < res["decoded"] < 60 == probe_video(src)["frames"]
    assert probe_video(out)["frames"] == res["decoded"]


def test_missing_input_is_a_media_error(tmp_path):
    with pytest.raises(MediaError, match="does not exist"):
        build_transcode(TranscodeOptions(str(tmp_path / "nope.mp4"), str(tmp_path / "o.mp4")))


@pytest.mark.parametrize("faststart", [False, True])
def test_h265_is_tagged_hvc1_and_faststart_puts_the_index_first(tmp_path, faststart):
    src = make_video(str(tmp_path / "in.mp4"), frames=30)
    out = tmp_path / "out.mp4"
    build_transcode(TranscodeOptions(str(src), str(out), codec="h265", farm=FarmOptions(
        workers=1), out=OutputOptions(faststart=faststart))).run(timeout=120)
    boxes = [b.type for b in iter_boxes(out.read_bytes())]
    assert (boxes.index(b"moov") < boxes.index(b"mdat")) == faststart, boxes
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.codec_tag == "hvc1"


def test_a_bad_preset_fails_before_ray_starts_with_its_cause_first(tmp_path):
    src = make_video(str(tmp_path / "in.mp4"), frames=10)
    assert_usage_error(parallax("transcode", str(src), "out.mp4", "--preset", "slowest",
                                cwd=tmp_path), "--preset 'slowest': unknown", "veryslow")
    assert_usage_error(parallax("record", "out.mp4", "--preset", "fastest", cwd=tmp_path),
                       "--preset 'fastest'")
    assert not (tmp_path / "out.mp4").exists()
