"""PacketSource: demux a file, without decoding, into GOP-aligned chunks of compressed packets.

Only the node that runs this source reads the input; what leaves it are chunks of a few
hundred KB, never raw frames. A chunk starts at a keyframe and is closed at the first
keyframe at least ``chunk_duration`` after its start, so chunks follow the input's GOPs
(a chunk is never shorter than one GOP). Near the end of the input the target shrinks to
half of what is left (``TAPER``), or to what is left shared by the workers where more
than two take chunks (``Source.consumers``), so that the last chunks are short: the
workers finish together instead of one of them encoding a whole last chunk while the
others idle.

Open GOPs: pictures that come after a keyframe in decode order but before it in
presentation order (leading pictures: open-GOP H.264, HEVC CRA/RASL) belong to the
previous chunk's range, and they reference both GOPs. So a chunk also carries the next
keyframe and its leading pictures; the worker decodes them and keeps only the frames of
its own range. The next chunk carries them too, and discards them the same way.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from actors.element import Source
from actors.errors import ConfigError, MediaError
from actors.farm.chunk import COMPRESSED_CHUNKS, Chunk
from actors.media.file_source import first_pts, open_video, rotation_of
from actors.media.streams import AudioDemux
from actors.types import EOS, Caps, Colour, OnPad, Packet, Pads

log = logging.getLogger("parallax.packet_source")

DEFAULT_CHUNK_DURATION = 4.0  # seconds; see bench/README.md ("The farm") for the measurement
MAX_CHUNK_DURATION = 600.0  # seconds
MIN_SLOT_BYTES = 1 << 20  # 1 MiB
# Near the end, a chunk is at most 1/TAPER of what is left of the input, or 1/consumers
# where more workers take chunks: 4 s chunks of a 2 s GOP end 4, 2, 2 instead of 4, 4,
# which left one of 2 workers idle for a chunk, and a 20 s file on 16 workers is cut into
# GOPs instead of 5 chunks that would leave 11 workers idle.
TAPER = 2


@dataclass(frozen=True)
class PacketSourceSettings:
    path: str
    """The file to read, on the node where the source runs."""
    chunk_duration: float = DEFAULT_CHUNK_DURATION
    """Target seconds per chunk; chunks end at the first keyframe past it."""
    keep_timestamps: bool = False
    """Keep the input's timestamps; by default the output starts at 0, as ffmpeg's does."""
    audio_streams: tuple[int, ...] = ()
    """Input audio streams whose packets leave as they are on pads ``audio_0``...,
    shifted with the video (the whole file's audio, once: never cut into chunks)."""

    def __post_init__(self) -> None:
        d = self.chunk_duration
        if not isinstance(d, (int, float)) or not 0 < d <= MAX_CHUNK_DURATION:
            raise ConfigError(f"--chunk-duration {d!r}: must be more than 0 and at most "
                              f"{MAX_CHUNK_DURATION:g} seconds")


class PacketSource(Source):
    """Emits Chunk items: compressed GOPs with the exact range of frames each owns."""

    def __init__(self, path: str | None = None, settings: PacketSourceSettings | None = None,
                 **options: Any) -> None:
        super().__init__()
        self.settings = settings or PacketSourceSettings(path=path, **options)
        self.container = None
        self.stream = None
        self.origin = 0
        self.expected: int | None = None
        self.chunks = 0
        self.packets = 0
        self.frames = 0
        self.longest_s = 0.0
        self.stream_caps: Caps | None = None
        self._chunks: Iterator[Chunk] | None = None
        self.audio: AudioDemux | None = None
        self._audio_out: deque[OnPad] = deque()
        self._held: list[Chunk | None] = []

    def configure(self, caps_in: Caps | None) -> Caps | Pads:
        self._open()
        s = self.stream
        ctx = s.codec_context
        rate = s.average_rate or s.guessed_rate or Fraction(30)
        self.expected = s.frames or (
            round(float(s.duration * s.time_base) * rate) if s.duration else None)
        bit_rate = s.bit_rate or self.container.bit_rate or 0
        slot = max(MIN_SLOT_BYTES, int(bit_rate / 8 * self.settings.chunk_duration * 2))
        self.stream_caps = Caps(
            kind=COMPRESSED_CHUNKS, codec=ctx.name, format=ctx.pix_fmt, width=ctx.width,
            height=ctx.height, rate=rate, time_base=s.time_base,
            extradata=bytes(ctx.extradata) if ctx.extradata else None, slot_size=slot,
            colour=Colour.of(ctx), rotation=rotation_of(self.settings.path))
        if not self.settings.audio_streams:
            return self.stream_caps
        return Pads(src=self.stream_caps, **self.audio.pads())

    def _open(self) -> None:
        self.container, self.stream = open_video(self.settings.path)
        self.origin = 0
        if not self.settings.keep_timestamps:
            first = first_pts(self.settings.path)
            if first is None:
                raise MediaError(f"input {self.settings.path!r}: its video packets carry no "
                                 "timestamps, so it cannot be cut into chunks; use --no-chunks")
            self.origin = first
        if self.settings.audio_streams:
            self.audio = AudioDemux(self.container, self.settings.audio_streams,
                                    self.origin * self.stream.time_base)

    def frames_total(self) -> int | None:
        return self.expected

    def start(self) -> None:
        if self.container is None:
            self._open()
        self._chunks = self._cut()

    def produce(self) -> Any:
        # The audio demuxed while a chunk was cut leaves before that chunk, so that the
        # muxer has it at hand when the chunk's video comes back from the workers.
        if self._audio_out:
            return self._audio_out.popleft()
        if self._held:  # a chunk (or the end, None) that waited for its audio
            return self._emit(self._held.pop())
        chunk = next(self._chunks, None)
        if self._audio_out:
            self._held.append(chunk)
            return self._audio_out.popleft()
        return self._emit(chunk)

    def _emit(self, chunk: Chunk | None) -> Any:
        if chunk is None:
            self._report()
            return EOS
        self.chunks += 1
        self.frames += chunk.frames
        span = chunk.end - chunk.start if chunk.end is not None and chunk.start is not None \
            else None
        if span is not None:
            self.longest_s = max(self.longest_s, float(span * chunk.time_base))
        return chunk

    def _packets(self) -> Iterator[Packet]:
        tb = self.stream.time_base
        audio = self.audio
        try:
            for p in self.container.demux([self.stream, *(audio.streams if audio else ())]):
                if audio is not None and audio.owns(p):
                    item = audio.item(p)
                    if item is not None:
                        self._audio_out.append(item)
                    continue
                if p.size == 0:
                    continue  # the demuxer's final flush packet
                if p.pts is None:
                    raise MediaError(
                        f"input {self.settings.path!r}: a video packet has no timestamp "
                        f"(dts {p.dts}); it cannot be cut into chunks exactly; use --no-chunks")
                self.packets += 1
                yield Packet(bytes(p), pts=p.pts, dts=p.dts, duration=p.duration or None,
                             time_base=tb, keyframe=p.is_keyframe)
        except av.FFmpegError as exc:  # truncated or damaged: keep what was read
            log.warning("%s: demuxing stopped early: %s", self.settings.path, exc)

    def _end_pts(self) -> int | None:
        """Where the input's video ends, in its time base, as the container says (an
        estimate: only the taper at the end depends on it); None when it does not say."""
        s, c = self.stream, self.container
        if s.duration is not None and s.start_time is not None:
            return s.start_time + s.duration
        if c.duration is None:
            return None
        start = c.start_time or 0
        return int(Fraction(start + c.duration, av.time_base) / s.time_base)

    def _cut(self) -> Iterator[Chunk]:
        tb = self.stream.time_base
        full = Fraction(self.settings.chunk_duration) / tb
        end_pts = self._end_pts()
        share = max(TAPER, self.consumers)

        def target(begin: int) -> Fraction:
            if end_pts is None:
                return full
            return min(full, max(Fraction(0), Fraction(end_pts - begin, share)))
        cur: list[Packet] = []
        start: int | None = None  # None: the first chunk owns everything before its end
        first_key: int | None = None
        cut: Packet | None = None  # the keyframe that ends the current chunk
        tail: list[Packet] = []  # its leading pictures (pts before it, decode after it)
        index = 0

        def make(end: int | None) -> Chunk:
            packets = cur + ([cut, *tail] if cut is not None else [])
            chunk = Chunk(index, packets, start, end, 0, tb, self.origin,
                          source=self.settings.path, stream=self.stream_caps)
            chunk.frames = sum(1 for p in cur + tail if chunk.owns(p.pts))
            return chunk

        for p in self._packets():
            if cut is not None:
                if not p.keyframe and p.pts < cut.pts:
                    tail.append(p)
                    continue
                yield make(cut.pts)
                index += 1
                cur, start, cut, tail = [cut, *tail], cut.pts, None, []
            if p.keyframe:
                if first_key is None:
                    first_key = p.pts
                elif cur and p.pts - (begin := start if start is not None else first_key) \
                        >= target(begin):
                    cut = p
                    continue
            cur.append(p)
        if cut is not None:
            yield make(cut.pts)
            index += 1
            cur, start, cut, tail = [cut, *tail], cut.pts, None, []
        if cur:
            yield make(None)

    def _report(self) -> None:
        if self.chunks == 1:
            log.info("%s: one chunk (the input has no keyframe after its first within reach);"
                     " it runs on one worker", self.settings.path)
        elif self.longest_s > 1.5 * self.settings.chunk_duration:
            log.info("%s: chunks up to %.1f s long: the input's keyframes are further apart "
                     "than --chunk-duration %.1f s, and chunks can only start at keyframes",
                     self.settings.path, self.longest_s, self.settings.chunk_duration)

    def close(self, ok: bool) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None

    def results(self) -> dict[str, Any]:
        return {"chunks": self.chunks, "packets": self.packets, "frames": self.frames,
                "audio_packets": self.audio.packets if self.audio else 0,
                "expected": self.expected, "longest_chunk_s": self.longest_s,
                "origin": self.origin}

    def __getstate__(self) -> dict[str, Any]:
        # Open containers stay on the node that opened them; a copy reopens the file.
        state = dict(self.__dict__)
        state.update(container=None, stream=None, _chunks=None, audio=None, _held=[])
        return state
