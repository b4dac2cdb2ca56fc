"""What a video stream carries besides its pictures: display rotation and bit depth.

Colour travels in the caps (``types.Colour``) from the input to the encoder and the
container. This module reads the input's display rotation and turns frames upright, and
decides whether a deep (10-bit) input can stay deep through the chosen encoder.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any

import av

from actors.media.encoders.base import ENCODER_NAMES, EncoderBackend, VideoCodec, deep_format

log = logging.getLogger("parallax.fidelity")

# Codecs whose 10-bit profiles players decode (HEVC Main 10, AV1 Main, VP9 profile 2).
# H.264 High 10 is left out on purpose: almost no hardware decoder or browser plays it,
# so a 10-bit input becomes 8-bit H.264, with a note, rather than an unplayable file.
DEEP_CODECS = (VideoCodec.H265, VideoCodec.AV1, VideoCodec.VP9)
ROTATE_FILTERS: dict[int, tuple[tuple[str, str | None], ...]] = {
    90: (("transpose", "clock"),),
    180: (("hflip", None), ("vflip", None)),
    270: (("transpose", "cclock"),),
}


def bit_depth(pix_fmt: str | None) -> int:
    """Bits per sample of a pixel format (8 when unknown)."""
    try:
        return av.VideoFormat(pix_fmt).components[0].bits if pix_fmt else 8
    except (ValueError, av.FFmpegError):
        return 8


def wants_depth(input_format: str | None, codec: VideoCodec | str) -> bool:
    """Whether to ask the encoder for 10 bits: a deep input, to a codec players decode
    at 10 bits (the encoder then uses them if it can; see ``depth_note``)."""
    return bit_depth(input_format) > 8 and VideoCodec.parse(codec) in DEEP_CODECS


def depth_note(input_format: str | None, codec: VideoCodec | str,
               backend: EncoderBackend | str = EncoderBackend.Auto) -> str | None:
    """Why a deep input will be encoded as 8-bit, or None when its depth is kept (or it
    has 8 bits). Auto is judged by the software encoder, the one every host has."""
    depth = bit_depth(input_format)
    if depth <= 8:
        return None
    codec, backend = VideoCodec.parse(codec), EncoderBackend.parse(backend)
    if codec not in DEEP_CODECS:
        return (f"{depth}-bit input encoded as 8-bit {codec.value}: H.264 High 10 plays "
                "almost nowhere; use --codec h265 or av1 to keep the depth")
    if backend is EncoderBackend.Auto:
        backend = EncoderBackend.Software
    name = ENCODER_NAMES.get(backend, {}).get(codec)
    if name is None or deep_format(name) is None:
        return (f"{depth}-bit input encoded as 8-bit: this build's {name or backend.value} "
                "encoder has no 10-bit 4:2:0 input")
    return None


def rotated_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """The displayed size of a ``width`` x ``height`` picture turned ``rotation`` degrees."""
    return (height, width) if rotation in (90, 270) else (width, height)


def display_rotation(container: Any, stream: Any) -> int:
    """Degrees clockwise (0, 90, 180, 270) a player turns ``stream``'s pictures.

    PyAV has no API for a stream's side data, but FFmpeg puts the container's display
    matrix on every decoded frame, so one decoded frame tells; the caller seeks back or
    uses a container of its own. An angle off the quarter turns is left alone with a
    warning, as ffmpeg does.
    """
    try:
        frame = next(container.decode(stream), None)
    except av.FFmpegError:
        return 0  # a damaged start: decoding reports it where it counts
    if frame is None:
        return 0
    clockwise = round(-frame.rotation) % 360
    if clockwise not in (0, *ROTATE_FILTERS):
        log.warning("display rotation of %d degrees is not a quarter turn; not applied",
                    clockwise)
        return 0
    return clockwise


class Rotator:
    """Turns decoded frames upright with FFmpeg's own transpose and flip filters, as
    ffmpeg's autorotate does; timestamps pass through unchanged."""

    def __init__(self, rotation: int) -> None:
        self.rotation = rotation
        self._graph: Any = None
        self._shape: tuple | None = None

    def __call__(self, frame: av.VideoFrame) -> av.VideoFrame:
        if self.rotation == 0:
            return frame
        shape = (frame.width, frame.height, frame.format.name)
        if shape != self._shape:
            self._graph = self._build(*shape)
            self._shape = shape
        self._graph.vpush(frame)
        out = self._graph.vpull()
        out.pts = frame.pts
        return out

    def _build(self, width: int, height: int, pix_fmt: str) -> Any:
        graph = av.filter.Graph()
        node = graph.add_buffer(width=width, height=height, format=pix_fmt,
                                time_base=Fraction(1, 90000))
        for name, arg in ROTATE_FILTERS[self.rotation]:
            step = graph.add(name, arg) if arg else graph.add(name)
            node.link_to(step)
            node = step
        sink = graph.add("buffersink")
        node.link_to(sink)
        graph.configure()
        return graph
