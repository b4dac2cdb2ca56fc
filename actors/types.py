"""What travels on an edge: Frame, Packet, Caps and the EOS and DISCONT signals.

Plain Python and numpy only; the runtime decides how these move between hosts.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from actors.errors import ConfigError

RAW_VIDEO = "video/x-raw"
ENCODED_VIDEO = "video/x-encoded"
ENCODED_SEGMENT = "video/x-segment"
ENCODED_AUDIO = "audio/x-encoded"
ANY = "any"
MAIN_PAD = "src"
"""The pad an element's items leave by unless it says otherwise (GStreamer's "src")."""

# Bytes per pixel, by FFmpeg pixel format name. Planar 4:2:0 formats carry
# half a byte of chroma per pixel; their arrays use PyAV's (h * 3 / 2, w) layout.
BYTES_PER_PIXEL: dict[str, float] = {
    "rgba": 4,
    "bgra": 4,
    "rgb24": 3,
    "bgr24": 3,
    "gray": 1,
    "yuv420p": 1.5,
    "nv12": 1.5,
}
SUBSAMPLED_FORMATS = frozenset({"yuv420p", "nv12"})
RATE_MAX_DENOMINATOR = 1001000  # keeps NTSC rates (30000/1001) exact, rounds float noise away


MAX_FRAME_RATE = 1000
"""The most frames per second an element is asked to make: more is a typo, and 1e9 fps
from a 3 s file would be three billion frames."""
MAX_DIMENSION = 16384
"""Pixels a side, FFmpeg's own limit for most codecs."""


def parse_rate(value: Any, label: str = "rate", maximum: float | None = None) -> Fraction:
    """A frame rate from ``30``, ``29.97``, ``"30000/1001"`` or a Fraction; > 0, and at
    most ``maximum`` when given (a rate asked for, as opposed to one an input has).

    ``label`` names the option in the error (``fps``, ``rate``...).
    """
    try:
        rate = Fraction(value).limit_denominator(RATE_MAX_DENOMINATOR)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):  # nan, inf
        raise ConfigError(
            f"{label}={value!r}: give frames per second, e.g. 30 or 30000/1001") from None
    if rate <= 0:
        raise ConfigError(f"{label}={value!r}: the frame rate must be > 0")
    if maximum is not None and rate > maximum:
        raise ConfigError(f"{label}={float(rate):g}: the frame rate must be at most "
                          f"{maximum:g} fps")
    return rate


class NamedEnum(enum.Enum):
    """An enum that accepts its members' values and names ("h264", "H264"), as PyAV's do."""

    @classmethod
    def noun(cls) -> str:
        """What the enum is called in error messages."""
        return cls.__name__

    @classmethod
    def parse(cls, value: object) -> NamedEnum:
        if isinstance(value, cls):
            return value
        key = str(value).strip().lower()
        for member in cls:
            if key in (member.value, member.name.lower()):
                return member
        choices = ", ".join(m.value for m in cls)
        raise ConfigError(f"unknown {cls.noun()} {value!r}; use one of {choices}")


def frame_nbytes(pixel_format: str, width: int, height: int) -> int:
    """Size in bytes of one tightly packed frame."""
    try:
        bpp = BYTES_PER_PIXEL[pixel_format]
    except KeyError:
        known = ", ".join(sorted(BYTES_PER_PIXEL))
        raise ValueError(f"unknown pixel format {pixel_format!r}; use one of {known}") from None
    return int(width * height * bpp)


def frame_shape(pixel_format: str, width: int, height: int) -> tuple[int, ...]:
    """numpy shape of a frame, following PyAV's ``to_ndarray`` layout."""
    if pixel_format in SUBSAMPLED_FORMATS:
        return (height * 3 // 2, width)
    bpp = BYTES_PER_PIXEL[pixel_format]
    return (height, width) if bpp == 1 else (height, width, int(bpp))


class _Signal:
    """A signal that travels on edges, with exactly one instance per class, so that
    ``item is EOS`` holds on both sides of a process boundary."""

    def __new__(cls) -> _Signal:
        if cls.__dict__.get("_instance") is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __reduce__(self) -> tuple[type, tuple]:
        return (type(self), ())


class EndOfStream(_Signal):
    """The end-of-stream signal. There is exactly one instance: ``EOS``."""

    def __repr__(self) -> str:
        return "EOS"


EOS = EndOfStream()


class Discontinuity(_Signal):
    """The stream was interrupted here: an element upstream died and was replaced, so what
    follows does not continue what came before (GStreamer's DISCONT flag). Travels on
    edges like EOS; elements hear it through ``Element.discontinuity``. One instance."""

    def __repr__(self) -> str:
        return "DISCONT"


DISCONT = Discontinuity()


@dataclass
class Frame:
    """One raw video frame.

    ``data`` is read-only when it came out of the object store; an element that
    wants to draw on it makes its own copy.
    """

    data: np.ndarray
    format: str
    width: int
    height: int
    pts: int | None = None
    time_base: Fraction = Fraction(1, 90000)
    duration: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    @property
    def time(self) -> float | None:
        """Presentation time in seconds."""
        return None if self.pts is None else float(self.pts * self.time_base)

    def replace(self, **changes: Any) -> Frame:
        return dataclasses.replace(self, **changes)


@dataclass
class Packet:
    """One encoded access unit (or an fMP4 segment, for segment edges)."""

    data: bytes
    pts: int | None = None
    dts: int | None = None
    duration: int | None = None
    time_base: Fraction = Fraction(1, 90000)
    keyframe: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return len(self.data)


UNSPECIFIED = 2  # FFmpeg's AVCOL_PRI/TRC/SPC_UNSPECIFIED


@dataclass(frozen=True)
class Colour:
    """How a video's samples map to light: FFmpeg's enum values, as codecs and containers
    signal them (H.264/HEVC VUI, the MP4 ``colr`` box). Unknown fields stay unspecified
    rather than guessed, so a player applies the same default it would for the input."""

    primaries: int = UNSPECIFIED
    transfer: int = UNSPECIFIED
    matrix: int = UNSPECIFIED
    range: int = 0
    """0 unspecified, 1 limited ("tv", 16-235), 2 full ("pc", 0-255)."""

    @classmethod
    def of(cls, source: Any) -> Colour:
        """From anything with FFmpeg's colour fields: a decoded frame or a codec context."""
        return cls(int(source.color_primaries), int(source.color_trc),
                   int(source.colorspace), int(source.color_range))

    def apply(self, target: Any) -> None:
        """Sets the fields on an encoder's codec context (or a frame)."""
        target.color_primaries = self.primaries
        target.color_trc = self.transfer
        target.colorspace = self.matrix
        target.color_range = self.range

    @property
    def specified(self) -> bool:
        return self != Colour()


@dataclass(frozen=True)
class Caps:
    """What an edge carries, fixed at READY before any data flows.

    ``slot_size`` is the largest item in bytes; it feeds the object store
    budget. For raw video it follows from format and size.
    """

    kind: str = ANY
    format: str | None = None
    width: int | None = None
    height: int | None = None
    rate: Fraction | None = None
    codec: str | None = None
    profile: str | None = None
    extradata: bytes | None = None
    slot_size: int | None = None
    time_base: Fraction | None = None
    """Unit of the items' timestamps, so that every element keeps them exact."""
    codec_string: str | None = None
    """RFC 6381 codec string (e.g. avc1.640028), for segment streams."""
    sample_rate: int | None = None
    channels: int | None = None
    layout: str | None = None
    """Audio channel layout, FFmpeg's name ("stereo", "5.1")."""
    bit_rate: int | None = None
    language: str | None = None
    """ISO 639-2 language of the stream, from or for the container's metadata."""
    stream_index: int | None = None
    """The input stream this comes from, as ffmpeg numbers them (``-map 0:N``)."""
    colour: Colour | None = None
    """Video colour description, carried from the input to the encoder and container."""
    rotation: int = 0
    """Degrees clockwise a player turns the stored picture (the input's display matrix);
    the farm's workers apply it, as ffmpeg's autorotate does."""

    @classmethod
    def raw_video(
        cls, pixel_format: str, width: int, height: int, rate: Fraction | float | None = None,
        time_base: Fraction | None = None,
    ) -> Caps:
        rate = None if rate is None else parse_rate(rate)
        return cls(
            kind=RAW_VIDEO,
            format=pixel_format,
            width=width,
            height=height,
            rate=rate,
            slot_size=frame_nbytes(pixel_format, width, height),
            time_base=time_base or (1 / rate if rate else None),
        )

    @classmethod
    def encoded_video(
        cls,
        codec: str,
        width: int,
        height: int,
        rate: Fraction | float | None = None,
        profile: str | None = None,
        extradata: bytes | None = None,
        time_base: Fraction | None = None,
    ) -> Caps:
        return cls(
            kind=ENCODED_VIDEO,
            codec=codec,
            width=width,
            height=height,
            rate=None if rate is None else parse_rate(rate),
            profile=profile,
            extradata=extradata,
            time_base=time_base,
        )

    @classmethod
    def segments(cls, video: Caps, codec_string: str, init: bytes) -> Caps:
        """fMP4 media segments of ``video`` (encoded caps); ``extradata`` is the init segment."""
        return video.replace(kind=ENCODED_SEGMENT, codec_string=codec_string, extradata=init,
                             slot_size=None)

    @classmethod
    def encoded_audio(cls, codec: str, sample_rate: int, channels: int,
                      layout: str | None = None, extradata: bytes | None = None,
                      time_base: Fraction | None = None, bit_rate: int | None = None,
                      language: str | None = None, stream_index: int | None = None) -> Caps:
        return cls(kind=ENCODED_AUDIO, codec=codec, sample_rate=sample_rate,
                   channels=channels, layout=layout, extradata=extradata,
                   time_base=time_base or Fraction(1, sample_rate), bit_rate=bit_rate,
                   language=language, stream_index=stream_index)

    @classmethod
    def any(cls, slot_size: int | None = None) -> Caps:
        return cls(kind=ANY, slot_size=slot_size)

    def replace(self, **changes: Any) -> Caps:
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """Short human form, as in GStreamer's caps strings."""
        parts = [self.kind]
        if self.format:
            parts.append(self.format)
        if self.codec:
            parts.append(self.codec)
        if self.sample_rate:
            parts.append(f"{self.sample_rate} Hz {self.layout or self.channels}")
        if self.width and self.height:
            size = f"{self.width}x{self.height}"
            if self.rate:
                size += f"@{float(self.rate):g}"
            parts.append(size)
        return " ".join(parts)


class Pads(dict):
    """What an element with several outputs returns from ``configure``: pad name -> Caps.

    ``MAIN_PAD`` ("src") is the video, as for a one-output element; others are named
    after what they carry, as a GStreamer demuxer names its pads (``audio_0``...).
    """

    def main(self) -> Caps | None:
        return self.get(MAIN_PAD)


@dataclass
class OnPad:
    """An output item bound for a pad other than the main one (see ``Pads``)."""

    pad: str
    item: Any


def item_frames(item: Any) -> int:
    """Video frames an item stands for: 1 for a frame or a packet, the samples of an fMP4
    segment, the frames of a chunk; what progress and summaries count (audio: none)."""
    if isinstance(item, Frame):
        return 1
    if isinstance(item, Packet):
        if not item.meta:
            return 1
        if item.meta.get("init") or item.meta.get("audio"):
            return 0
        return int(item.meta.get("samples", 1))
    count = getattr(item, "frame_count", None)
    return count if isinstance(count, int) else 1


def item_nbytes(item: Any) -> int:
    """Payload size of an item, for stats and the arena."""
    if isinstance(item, (Frame, Packet)):
        return item.nbytes
    if isinstance(item, (bytes, bytearray, memoryview)):
        return len(item)
    if isinstance(item, np.ndarray):
        return int(item.nbytes)
    nbytes = getattr(item, "nbytes", None)  # chunks and other containers report their own
    return nbytes if isinstance(nbytes, int) else 0
