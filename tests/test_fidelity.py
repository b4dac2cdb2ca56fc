"""Video fidelity: display rotation applied, colour description carried, 10-bit kept.

Inputs are made here with PyAV. PyAV cannot write a display matrix, so the rotated
input gets one the way a phone writes it: in the MP4 track header (tkhd), patched in.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from actors.media.fidelity import depth_note
from actors.types import Colour
from pipelines.farm import FarmOptions
from pipelines.transcode import TranscodeOptions, build_transcode

W, H = 128, 96
PATHS = {"farm": FarmOptions(workers=2, chunk_duration=1.0), "linear": None}
BT709_FULL = Colour(primaries=1, transfer=1, matrix=1, range=2)
BT2020_PQ = Colour(primaries=9, transfer=16, matrix=9, range=1)
# tkhd matrices (a, b, u, c, d, v, x, y, w) for a player turning the picture clockwise.
MATRIX = {
    90: (0, 1 << 16, 0, -(1 << 16), 0, 0, H << 16, 0, 1 << 30),
    180: (-(1 << 16), 0, 0, 0, -(1 << 16), 0, W << 16, H << 16, 1 << 30),
    270: (0, -(1 << 16), 0, 1 << 16, 0, 0, 0, W << 16, 1 << 30),
}
# Where the stored picture's top-left marker is once turned upright: (row, column) half.
MARKER = {0: (0, 0), 90: (0, 1), 180: (1, 1), 270: (1, 0)}


def make_video(path: str, codec: str = "libx264", pix_fmt: str = "yuv420p",
               colour: Colour | None = None, frames: int = 45, gop: int = 15) -> str:
    """A dark picture with a bright block in its top-left quarter, a frame counter
    moving through it so that frames differ."""
    with av.open(path, "w") as out:
        s = out.add_stream(codec, rate=30)
        s.width, s.height, s.pix_fmt = W, H, pix_fmt
        s.options = {"preset": "ultrafast"} if codec in ("libx264", "libx265") else {}
        if codec == "libx265":
            s.options["x265-params"] = "log-level=error"
        s.codec_context.gop_size = gop
        if colour is not None:
            colour.apply(s.codec_context)
        for i in range(frames):
            img = np.full((H, W, 3), 30, np.uint8)
            img[: H // 3, : W // 3] = 230
            img[H - 8:, (i * 2) % (W - 8):(i * 2) % (W - 8) + 8] = 120
            f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=pix_fmt)
            f.pts = i
            f.time_base = Fraction(1, 30)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return path


def set_rotation(path: str, degrees: int) -> None:
    """Writes the display matrix of a ``degrees`` clockwise turn into the tkhd box."""
    data = bytearray(Path(path).read_bytes())
    at = data.find(b"tkhd")
    assert at > 0 and data[at + 4] == 0, "expected a version-0 tkhd"
    struct.pack_into(">9i", data, at + 44, *MATRIX[degrees])
    Path(path).write_bytes(data)


def first_frame(path: str) -> av.VideoFrame:
    with av.open(path) as c:
        return next(c.decode(video=0))


def marker_half(frame: av.VideoFrame) -> tuple[int, int]:
    """The (row, column) half of the picture holding the bright block."""
    y = frame.to_ndarray(format="gray").astype(float)
    rows, cols = np.nonzero(y > 160)
    return int(rows.mean() > y.shape[0] / 2), int(cols.mean() > y.shape[1] / 2)


def luma_peak(path: str) -> int:
    """The brightest stored luma sample of the first frame, as coded (no conversion)."""
    frame = first_frame(path)
    return int(frame.to_ndarray()[: frame.height].max())


def transcode(src: str, dst: str, farm: FarmOptions | None, **kw) -> list[str]:
    pipeline = build_transcode(TranscodeOptions(src, dst, farm=farm, **kw))
    pipeline.run(timeout=120)
    return pipeline.notes


def test_the_rotation_reader_sees_what_ffmpeg_sees(tmp_path):
    for degrees in MATRIX:
        path = make_video(str(tmp_path / f"r{degrees}.mp4"), frames=3)
        set_rotation(path, degrees)
        # FFmpeg's own reading: rotation is counter-clockwise degrees on the frame.
        assert round(-first_frame(path).rotation) % 360 == degrees


@pytest.mark.parametrize("path_name", PATHS)
@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_rotated_input_comes_out_upright(ray_session, tmp_path, path_name, degrees):
    src = make_video(str(tmp_path / "in.mp4"))
    set_rotation(src, degrees)
    dst = str(tmp_path / "out.mp4")
    notes = transcode(src, dst, PATHS[path_name])
    out = first_frame(dst)
    want = (H, W) if degrees in (90, 270) else (W, H)
    assert (out.width, out.height) == want
    assert out.rotation == 0, "the turn is applied once, not also left in the container"
    assert marker_half(out) == MARKER[degrees]
    assert any(f"turned {degrees} degrees" in n for n in notes), notes
    with av.open(dst) as c:
        assert c.streams.video[0].frames == 45


@pytest.mark.parametrize("path_name", PATHS)
def test_the_colour_description_reaches_the_bitstream_and_the_container(
        ray_session, tmp_path, path_name):
    src = make_video(str(tmp_path / "in.mp4"), colour=BT709_FULL)
    assert Colour.of(first_frame(src)) == BT709_FULL
    dst = str(tmp_path / "out.mp4")
    transcode(src, dst, PATHS[path_name], height=48)
    with av.open(dst) as c:
        assert Colour.of(c.streams.video[0].codec_context) == BT709_FULL  # container
    assert Colour.of(first_frame(dst)) == BT709_FULL  # the decoder reads the VUI
    # Full range stays full range: the block's stored luma level is kept, not squeezed
    # into 16-235 (214 would become 200).
    assert abs(luma_peak(dst) - luma_peak(src)) <= 3


@pytest.mark.parametrize("codec, deep", [("h265", True), ("h264", False)])
def test_ten_bit_stays_ten_bit_where_the_codec_can(ray_session, tmp_path, codec, deep):
    src = make_video(str(tmp_path / "in10.mkv"), codec="libx265", pix_fmt="yuv420p10le",
                     colour=BT2020_PQ, frames=30)
    dst = str(tmp_path / "out.mp4")
    notes = transcode(src, dst, PATHS["farm"], codec=codec)
    with av.open(dst) as c:
        v = c.streams.video[0]
        assert v.codec_context.pix_fmt == ("yuv420p10le" if deep else "yuv420p")
        assert v.frames == 30
        assert Colour.of(v.codec_context) == BT2020_PQ
    said = any("10-bit input encoded as 8-bit" in n for n in notes)
    assert said is not deep, notes


def test_the_linear_pipeline_says_it_reduces_depth(ray_session, tmp_path):
    src = make_video(str(tmp_path / "in10.mkv"), codec="libx265", pix_fmt="yuv420p10le",
                     frames=15)
    dst = str(tmp_path / "out.mp4")
    notes = transcode(src, dst, None, codec="h265")
    assert any("linear pipeline carries 8-bit" in n for n in notes), notes
    with av.open(dst) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
        assert c.streams.video[0].frames == 15


def test_depth_notes():
    assert depth_note("yuv420p", "h264") is None
    assert depth_note("yuv420p10le", "h265") is None
    assert depth_note("yuv420p10le", "av1") is None
    assert "H.264 High 10" in depth_note("yuv420p10le", "h264")
    # This build's libvpx has no high-bit-depth input: said, not silently reduced.
    vp9 = depth_note("yuv420p10le", "vp9")
    assert vp9 is None or "no 10-bit" in vp9
