"""What a file holds besides its first video stream, and how audio leaves a source.

Sources demux audio without decoding it and emit its packets on pads named
``audio_0``, ``audio_1``... (in the order the streams were selected). Audio is small
(128 kb/s is 16 KB/s), so it travels as it is, and is decoded only where it is
re-encoded. Subtitle and data streams are not carried: ``describe_streams`` names them
so that the CLI can say what it drops.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from actors.errors import MediaError
from actors.types import Caps, OnPad, Packet

# Audio codecs an MP4 file can hold (ISO/IEC 14496-14 and its registered extensions, as
# FFmpeg's mp4 muxer accepts them); anything else is re-encoded.
MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "opus", "ac3", "eac3", "flac", "alac"})


def audio_pad(k: int) -> str:
    return f"audio_{k}"


@dataclass(frozen=True)
class StreamInfo:
    """One stream of an input file, as ffmpeg numbers and names it."""

    index: int
    type: str
    codec: str
    language: str | None
    channels: int | None = None
    sample_rate: int | None = None

    def describe(self) -> str:
        parts = [self.codec]
        if self.language:
            parts.append(self.language)
        return f"{self.type} stream {self.index} ({', '.join(parts)})"


def describe_streams(container: Any) -> list[StreamInfo]:
    out = []
    for s in container.streams:
        ctx = s.codec_context
        codec = codec_name(ctx)
        language = s.metadata.get("language")
        if language in ("und", ""):
            language = None
        out.append(StreamInfo(s.index, s.type, codec, language,
                              getattr(ctx, "channels", None) if s.type == "audio" else None,
                              getattr(ctx, "sample_rate", None) if s.type == "audio" else None))
    return out


def codec_name(ctx: Any) -> str:
    """The codec's name as ffprobe shows it ("mp2"), not its decoder's ("mp3float")."""
    if ctx is None or ctx.codec is None:
        return "unknown"
    return ctx.codec.canonical_name or ctx.name


def audio_caps(stream: Any) -> Caps:
    """Caps of an input audio stream, for its packets as they are (no decoding)."""
    ctx = stream.codec_context
    if ctx is None or not ctx.sample_rate:
        raise MediaError(f"audio stream {stream.index}: FFmpeg cannot read its parameters "
                         f"(codec {ctx.name if ctx else '?'})")
    layout = ctx.layout.name if ctx.layout else None
    language = stream.metadata.get("language")
    return Caps.encoded_audio(
        codec_name(ctx), ctx.sample_rate, ctx.channels, layout=layout,
        extradata=bytes(ctx.extradata) if ctx.extradata else None,
        time_base=stream.time_base, bit_rate=ctx.bit_rate or None,
        language=None if language in (None, "", "und") else language,
        stream_index=stream.index)


class AudioDemux:
    """Turns a source's audio packets into pad items, shifted with the video.

    ``shift_s`` moves audio by the same amount the video is moved (the farm starts its
    output at 0), so the offset between them stays what it was in the input.
    """

    def __init__(self, container: Any, indexes: tuple[int, ...], shift_s: Fraction) -> None:
        by_index = {s.index: s for s in container.streams}
        self.streams = []
        for i in indexes:
            if i not in by_index or by_index[i].type != "audio":
                raise MediaError(f"stream {i} is not an audio stream of this input")
            self.streams.append(by_index[i])
        self.pad_of = {s.index: audio_pad(k) for k, s in enumerate(self.streams)}
        self.shift = {s.index: round(shift_s / s.time_base) for s in self.streams}
        self.packets = 0

    def pads(self) -> dict[str, Caps]:
        return {self.pad_of[s.index]: audio_caps(s) for s in self.streams}

    def owns(self, packet: Any) -> bool:
        return packet.stream.index in self.pad_of

    def item(self, p: Any) -> OnPad | None:
        """The pad item for one demuxed audio packet (None for the demuxer's empty flush)."""
        if p.size == 0:
            return None
        self.packets += 1
        shift = self.shift[p.stream.index]
        pts = None if p.pts is None else p.pts - shift
        dts = None if p.dts is None else p.dts - shift
        return OnPad(self.pad_of[p.stream.index],
                     Packet(bytes(p), pts=pts, dts=dts, duration=p.duration or None,
                            time_base=p.stream.time_base, keyframe=p.is_keyframe,
                            meta={"audio": True}))
