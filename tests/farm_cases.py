"""Inputs, transcodes and readers shared by the farm tests (tests/test_farm.py).

Every input is generated: a moving ball with each frame's number drawn in its corner
(``read_timecode`` reads it back), so that every output frame can be held against *its*
source frame.
"""

from __future__ import annotations

import itertools
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from media import make_video

from actors.farm import PacketSource
from actors.farm.chunk import Chunk
from actors.media.test_pattern import read_timecode
from actors.media.video_scaler import ScaleAlgorithm, aspect_size, even
from actors.streaming.fmp4 import find_box
from actors.types import EOS
from pipelines.farm import FarmOptions
from pipelines.runtime.stats import PipelineStats
from pipelines.transcode import TranscodeOptions, build_transcode, input_report

RATE = 30  # frames per second of every input
CHUNK_S = 0.5  # seconds per chunk: with GOPs of 15 frames or less, several chunks per input
FARM = FarmOptions(workers=2, chunk_duration=CHUNK_S)
PSNR_MIN = 35.0  # dB against the source frame (measured 46-52 dB; a neighbour scores far less)
TIME_TOL = 1e-3  # seconds: MP4's 1/15360, Matroska's 1/1000 and MPEG-TS's 1/90000 all fit
DURATION_TOL = 1.5e-3  # seconds: an MP4's movie header counts milliseconds
RUN_TIMEOUT = 120  # seconds per pipeline run
VFR_GAPS = (1, 2, 1, 3, 1, 1, 2)  # in 1/30 s: uneven gaps between frames
VFR_PTS = [sum(VFR_GAPS[i % len(VFR_GAPS)] for i in range(n)) for n in range(45)]


@dataclass(frozen=True)
class Case:
    file: str
    """The input's name; its extension picks the container."""
    video: dict[str, Any]
    """make_video's arguments."""
    height: int | None = None
    """Output height (the width follows the aspect ratio); None keeps the input's size."""
    open_gop: bool = False
    """The input must have leading pictures (decoded after a keyframe, shown before it)."""

    @property
    def frames(self) -> int:
        return self.video["frames"]


def h264(frames: int = 60, gop: int = 15, **kw: Any) -> dict[str, Any]:
    return {"codec": "libx264", "frames": frames, "gop": gop, "bframes": 2, **kw}


CASES = {
    "h264_bframes_mp4": Case("bframes.mp4", h264()),
    "hevc_open_gop_mkv": Case("open.mkv", {"codec": "libx265", "frames": 60, "gop": 15,
                                           "bframes": 3, "open_gop": True}, open_gop=True),
    "h264_open_gop_scaled": Case("open.mp4", h264(open_gop=True), height=120, open_gop=True),
    "mpegts_from_1.4s": Case("late.ts", h264(start=42)),  # 42 / 30 fps = 1.4 s
    # No B-frames in the input, so that its packet durations are its frame durations.
    "vfr": Case("vfr.mp4", h264(frames=len(VFR_PTS), gop=8, pts=VFR_PTS, bframes=0)),
    "odd_size": Case("odd.mp4", h264(width=321, height=241)),  # 4:2:0 output: 320x240
    # Every frame a keyframe, and packets that do not say their own pixel layout.
    "rawvideo_avi": Case("raw.avi", {"codec": "rawvideo", "frames": 30, "bframes": 0}),
}
# Keyframes every 1/3 s: chunks (cut at the first keyframe 0.5 s after their start) of
# 2/3 s, which do not line up with 1 s fragments.
FRAGMENTS_INPUT = Case("frag.mp4", h264(frames=90, gop=10))
# Keyframes every 14 frames: chunks of 28 frames (0.933 s), whose seams fall between the
# ticks of a 24 fps output.
RATE_INPUT = Case("rate.mp4", h264(gop=14))
ONE_GOP_INPUT = Case("one_gop.mp4", h264(frames=45, gop=300))  # no keyframe after the first

# -- running transcodes once per module ----------------------------------------------------
@dataclass
class Run:
    path: str
    stats: PipelineStats
    report: dict[str, Any]
    """input_report(pipeline)."""
    results: dict[str, Any]
    """Element name -> its results, for src and (in the farm) stitch."""


class Transcodes:
    """Inputs made once, transcodes run once, shared by the tests that check them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sources: dict[str, str] = {}
        self._runs: dict[tuple[str, bool], Run] = {}

    def source(self, case: Case) -> str:
        if case.file not in self._sources:
            self._sources[case.file] = make_video(str(self.root / case.file), **case.video)
        return self._sources[case.file]

    def run(self, name: str, farm: bool) -> Run:
        key = (name, farm)
        if key not in self._runs:
            case = CASES[name]
            out = str(self.root / f"{name}.{'farm' if farm else 'linear'}.mp4")
            self._runs[key] = transcode(self.source(case), out, height=case.height,
                                        farm=FARM if farm else None)
        return self._runs[key]

    def rate(self, fps: int, farm: bool) -> Run:
        """RATE_INPUT changed to ``fps``."""
        key = (f"rate{fps}", farm)
        if key not in self._runs:
            out = str(self.root / f"rate{fps}.{'farm' if farm else 'linear'}.mp4")
            self._runs[key] = transcode(self.source(RATE_INPUT), out, fps=fps,
                                        farm=FARM if farm else None)
        return self._runs[key]


def transcode(src: str, dest: str, **options: Any) -> Run:
    p = build_transcode(TranscodeOptions(src, dest, **options))
    stats = p.run(timeout=RUN_TIMEOUT)
    results = {n: p.results(n) for n in ("src", "stitch") if n in p.graph.nodes}
    return Run(dest, stats, input_report(p), results)


# -- reading media back --------------------------------------------------------------------
def decode(path: str) -> list[av.VideoFrame]:
    with av.open(path) as c:
        return list(c.decode(video=0))


def seconds(frame: av.VideoFrame) -> float:
    return float(frame.pts * frame.time_base)


def timecode(frame: av.VideoFrame, scale: int = 1) -> int:
    """The source frame number drawn in the frame; ``scale``: how much it was shrunk."""
    luma = frame.to_ndarray(format="gray")
    if scale > 1:
        luma = luma.repeat(scale, axis=0).repeat(scale, axis=1)
    return read_timecode(luma)


def like_output(src: av.VideoFrame, out: av.VideoFrame) -> np.ndarray:
    """The source frame as a worker makes it: swscale, bilinear, to yuv420p at out's size."""
    return src.reformat(width=out.width, height=out.height, format="yuv420p",
                        interpolation=ScaleAlgorithm.Bilinear.swscale).to_ndarray()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def packets(path: str) -> tuple[list[tuple[int, int, int | None, bool]], Any]:
    """(pts, dts, duration, keyframe) of every video packet in decode order, and the time base."""
    with av.open(path) as c:
        st = c.streams.video[0]
        return ([(p.pts, p.dts, p.duration, p.is_keyframe) for p in c.demux(st) if p.size],
                st.time_base)


def increasing(values: list[int]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


def input_span(path: str) -> float:
    """An input's duration from its packets: the latest end (pts + duration) less the first pts.

    Exact for the inputs here: constant-rate ones, and a variable-rate one without B-frames
    (whose packet durations are its frames' durations)."""
    pk, tb = packets(path)
    return float((max(p + d for p, _, d, _ in pk) - min(p for p, _, _, _ in pk)) * tb)


def mp4_duration(path: str) -> float:
    """A progressive MP4's duration as a player shows it: the movie header's (mvhd), which
    counts the edit list, where PyAV's stream duration counts decode timestamps."""
    data = Path(path).read_bytes()
    mvhd = find_box(data, [b"moov", b"mvhd"])
    assert mvhd is not None, f"{path}: no moov/mvhd box"
    if data[mvhd.body] == 1:  # version 1: 64-bit times
        timescale, duration = struct.unpack_from(">IQ", data, mvhd.body + 20)
    else:
        timescale, duration = struct.unpack_from(">II", data, mvhd.body + 12)
    return duration / timescale


def leading_pictures(path: str) -> int:
    """Packets that come after a keyframe (not the first) and are shown before it."""
    pk, _ = packets(path)
    key, count = None, 0
    for i, (pts, _, _, keyframe) in enumerate(pk):
        if keyframe and i:
            key = pts
        elif key is not None and pts < key:
            count += 1
    return count


def chunks_of(path: str, chunk_duration: float = CHUNK_S, consumers: int = 1) -> list[Chunk]:
    """The chunks the farm's PacketSource cuts from ``path`` for a pool of ``consumers``
    workers, cut here, in this process."""
    src = PacketSource(path, chunk_duration=chunk_duration)
    src.consumers = consumers
    src.negotiate([], [])
    src.start()
    chunks = []
    while (item := src.handle_produce()) is not EOS:
        if item is not None:
            chunks.append(item)
    src.close(True)
    return chunks


def chunk_start(chunk: Chunk) -> float:
    """Where a chunk's range starts in the output, in seconds."""
    return 0.0 if chunk.start is None else float((chunk.start - chunk.origin) * chunk.time_base)


def output_size(case: Case) -> tuple[int, int]:
    w, h = case.video.get("width", 320), case.video.get("height", 240)
    w, h = aspect_size(w, h, None, case.height)
    return even(w), even(h)
