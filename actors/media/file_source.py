"""FileSource: demux and decode any video file FFmpeg reads (MP4, MKV, WebM, TS...)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from actors.element import Source
from actors.errors import ConfigError, MediaError
from actors.media.fidelity import Rotator, bit_depth, display_rotation, rotated_size
from actors.media.streams import AudioDemux
from actors.types import EOS, SUBSAMPLED_FORMATS, Caps, Colour, Frame, OnPad, Pads

log = logging.getLogger("parallax.file_source")

OUTPUT_FORMATS = ("yuv420p", "nv12", "rgba", "bgra")
ORIGIN_SCAN_PACKETS = 1000  # packets read to find the first presentation time


@dataclass(frozen=True)
class FileSourceSettings:
    path: str
    """The file to read, on the node where the source runs."""
    format: str | None = None
    """Pixel format out; None keeps the decoded one where possible (else yuv420p, or rgba
    for odd sizes, which 4:2:0 cannot represent)."""
    audio_streams: tuple[int, ...] = ()
    """Input audio streams (ffmpeg's numbering) whose packets leave, undecoded, on pads
    ``audio_0``, ``audio_1``...; none by default."""
    keep_timestamps: bool = False
    """Keep the input's timestamps; by default the output starts at 0, as ffmpeg's does
    (an MPEG-TS starting at 1.4 s), audio moved by the same amount."""

    def __post_init__(self) -> None:
        if self.format is not None and self.format not in OUTPUT_FORMATS:
            raise ConfigError(f"format={self.format!r}: use one of {', '.join(OUTPUT_FORMATS)}")


def open_video(path: str) -> tuple[Any, Any]:
    """Open ``path`` and its first video stream, or raise MediaError saying why not."""
    if not os.path.exists(path):
        raise MediaError(f"input {path!r} does not exist; check the path")
    if os.path.isdir(path):
        raise MediaError(f"input {path!r} is a directory; give a media file")
    if os.path.getsize(path) == 0:
        raise MediaError(f"input {path!r} is empty (0 bytes)")
    try:
        container = av.open(path)
    except av.FFmpegError as exc:
        raise MediaError(
            f"input {path!r} is not a media file FFmpeg can read, or it is truncated "
            f"(e.g. an MP4 cut before its moov box): {exc.strerror or exc}"
        ) from None
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
        container.close()
        raise MediaError(f"input {path!r} has no video stream (it has: {kinds})")
    stream = container.streams.video[0]
    if stream.codec_context is None or not stream.codec_context.width:
        container.close()
        raise MediaError(f"input {path!r}: its video stream cannot be decoded "
                         f"(codec {stream.codec_context.name if stream.codec_context else '?'})")
    return container, stream


def first_pts(path: str) -> int | None:
    """The smallest pts of the first GOP of ``path``'s video, in its time base: the
    output's time zero (as ffmpeg starts an output at 0); None if packets carry none."""
    container, stream = open_video(path)
    first = None
    keyframes = 0
    try:
        for i, p in enumerate(container.demux(stream)):
            if p.pts is None:
                continue
            keyframes += p.is_keyframe
            if keyframes > 1 or i > ORIGIN_SCAN_PACKETS:
                break
            first = p.pts if first is None else min(first, p.pts)
    except av.FFmpegError:
        pass  # a damaged file: what was read decides, and demuxing reports the damage
    finally:
        container.close()
    return first


def rotation_of(path: str) -> int:
    """Degrees clockwise a player turns ``path``'s video (its display matrix); read from a
    container of its own, so that the caller's demuxing starts at the beginning."""
    container, stream = open_video(path)
    try:
        return display_rotation(container, stream)
    finally:
        container.close()


class FileSource(Source):
    """Decodes the first video stream of a file, keeping its timestamps exact; with
    ``audio_streams``, also emits those streams' packets on audio pads."""

    def __init__(self, path: str | None = None, settings: FileSourceSettings | None = None,
                 **options: Any) -> None:
        super().__init__()
        self.settings = settings or FileSourceSettings(path=path, **options)
        self.container = None
        self.stream = None
        self.decoded = 0
        self.corrupt_packets = 0
        self.expected: int | None = None
        self._frames: Iterator[Any] | None = None
        self.audio: AudioDemux | None = None
        self.origin = 0
        self.rotate = Rotator(0)
        self._as_is = False

    def configure(self, caps_in: Caps | None) -> Caps | Pads:
        self.container, self.stream = open_video(self.settings.path)
        s = self.stream
        # Frames leave upright (ffmpeg's autorotate), so everything downstream sees the
        # displayed size and no element needs to know about the display matrix.
        self.rotate = Rotator(rotation_of(self.settings.path))
        w, h = rotated_size(s.codec_context.width, s.codec_context.height,
                            self.rotate.rotation)
        rate = s.average_rate or s.guessed_rate or Fraction(30)
        self.format = self._pick_format(s.codec_context.pix_fmt, w, h)
        self.expected = s.frames or (
            round(float(s.duration * s.time_base) * rate) if s.duration else None)
        # FFmpeg's decoders report full-range 4:2:0 as yuvj420p: the same planes as
        # yuv420p, so they are taken as they are and the range rides in the caps
        # (converting would squeeze them into 16-235).
        self._as_is = s.codec_context.pix_fmt == "yuvj420p" and self.format == "yuv420p"
        colour = Colour.of(s.codec_context)
        video = Caps.raw_video(self.format, w, h, rate, time_base=s.time_base).replace(
            colour=colour)
        if not self.settings.keep_timestamps:
            self.origin = first_pts(self.settings.path) or 0
        if not self.settings.audio_streams:
            return video
        self.audio = AudioDemux(self.container, self.settings.audio_streams,
                                self.origin * s.time_base)
        return Pads(src=video, **self.audio.pads())

    def _pick_format(self, decoded: str | None, w: int, h: int) -> str:
        odd = w % 2 or h % 2
        wanted = self.settings.format
        if wanted in SUBSAMPLED_FORMATS and odd:
            raise ConfigError(f"format={wanted} cannot hold the input's odd size {w}x{h}; "
                              "use rgba or leave format unset")
        if wanted:
            return wanted
        if odd:
            return "rgba"
        # Raw frames between processes are 8-bit: a deep input is reduced here (the farm
        # keeps 10 bits to the encoder where the codec allows).
        if decoded in OUTPUT_FORMATS and bit_depth(decoded) <= 8:
            return decoded
        return "yuv420p"

    def frames_total(self) -> int | None:
        return self.expected

    def start(self) -> None:
        if self.container is None:
            self.configure(None)
        self._frames = self._decode()

    def produce(self) -> Any:
        vf = next(self._frames, None)
        if vf is None:
            self._report_loss()
            return EOS
        if isinstance(vf, OnPad):
            return vf
        self.decoded += 1
        tb = vf.time_base or self.stream.time_base
        pts = None if vf.pts is None else vf.pts - round(self.origin * self.stream.time_base
                                                         / tb)
        vf = self.rotate(vf)
        data = vf.to_ndarray() if self._as_is else vf.to_ndarray(format=self.format)
        return Frame(data, self.format, vf.width, vf.height,
                     pts=pts, time_base=tb, duration=vf.duration or None,
                     meta={"seq": self.decoded - 1})

    def _decode(self) -> Iterator[Any]:
        """Decode what can be decoded; corrupt packets are counted and skipped. Audio
        packets pass as they are, in the file's order."""
        audio = self.audio
        streams = [self.stream, *(audio.streams if audio else ())]
        try:
            for packet in self.container.demux(streams):
                if audio is not None and audio.owns(packet):
                    item = audio.item(packet)
                    if item is not None:
                        yield item
                    continue
                try:
                    yield from packet.decode()
                except av.InvalidDataError:
                    self.corrupt_packets += 1
        except av.FFmpegError as exc:  # a truncated or damaged container
            log.warning("%s: demuxing stopped early: %s", self.settings.path, exc)
            self.corrupt_packets += 1

    def _report_loss(self) -> None:
        lost = (self.expected - self.decoded) if self.expected else 0
        if lost > 0 or self.corrupt_packets:
            log.warning("%s: input truncated or damaged: decoded %d of %s frames (%d lost, "
                        "%d corrupt packets skipped)", self.settings.path, self.decoded,
                        self.expected, max(lost, 0), self.corrupt_packets)

    def close(self, ok: bool) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None

    def results(self) -> dict[str, Any]:
        lost = max(0, (self.expected or 0) - self.decoded) if self.expected else None
        return {"decoded": self.decoded, "expected": self.expected, "lost": lost,
                "corrupt_packets": self.corrupt_packets,
                "audio_packets": self.audio.packets if self.audio else 0}

    def __getstate__(self) -> dict[str, Any]:
        # Open containers stay on the node that opened them; a copy reopens the file.
        state = dict(self.__dict__)
        state.update(container=None, stream=None, _frames=None, audio=None)
        return state
