"""FragmentedMp4Mux: encoded video (and audio) in, CMAF-style fMP4 segments out (seed 6.1).

FFmpeg's mp4 muxer does the muxing, writing into a non-seekable sink; the byte stream is
cut into the init segment (ftyp+moov) and media segments (moof+mdat) by reading box
headers. Fragments are cut only on video keyframes, at the first one at least
``fragment_duration`` after the fragment began. Audio linked into pads ``audio_N`` is
muxed into the same fragments (one moof with a traf per track), as HLS players want.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from actors.element import Transform
from actors.errors import ConfigError
from actors.media.muxing import (
    Interleaver,
    add_audio_stream,
    add_encoded_stream,
    decode_time,
    split_inputs,
)
from actors.streaming.fmp4 import BoxSplitter, codecs_string, sample_count
from actors.types import ENCODED_AUDIO, ENCODED_VIDEO, MAIN_PAD, Caps, Packet

VIDEO_TRACK = 1  # the mp4 muxer numbers tracks from 1 in the order streams were added

MAX_FRAGMENT_DURATION = 60.0  # seconds; longer fragments defeat the point of fragmenting


@dataclass(frozen=True)
class FragmentedMp4MuxSettings:
    fragment_duration: float = 2.0
    """Target seconds per fragment. The encoder's GOP should match it (the transcode and
    record pipelines set it so); fragments still only start on keyframes."""
    separate_init: bool = True
    """Emit the init segment as its own first item. False prepends it to the first media
    segment, which suits a sink that writes one plain file."""
    cmaf: bool = False
    """Add FFmpeg's +cmaf flag (CMAF brands and per-fragment styp boxes)."""

    def __post_init__(self) -> None:
        if not 0 < self.fragment_duration <= MAX_FRAGMENT_DURATION:
            raise ConfigError(f"fragment_duration={self.fragment_duration:g}: must be more than "
                              f"0 and at most {MAX_FRAGMENT_DURATION:g} seconds")


class _Sink:
    """The muxer's output: write-only, so FFmpeg treats it as a pipe and never seeks."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


class FragmentedMp4Mux(Transform):
    """Encoded packets in; one init item, then one item per moof+mdat fragment.

    Each item is a Packet whose pts/duration (in the input's time base) span its frames
    and whose meta holds seq, codec (the RFC 6381 codecs of every track), samples (video
    frames) and init.
    """

    accepts = (ENCODED_VIDEO, ENCODED_AUDIO)
    input_pads = True

    def __init__(self, settings: FragmentedMp4MuxSettings | None = None,
                 **options: Any) -> None:
        super().__init__()
        self.settings = settings or FragmentedMp4MuxSettings(**options)
        self.container: Any = None
        self.segments = 0
        self.frames = 0
        self.init_sent = False
        self.audio: dict[str, Caps] = {}
        self.skipped = 0  # video packets before a stream's first keyframe (a restart)

    def configure_pads(self, inputs: dict[str, Caps]) -> Caps:
        caps_in, self.audio = split_inputs(self.name, inputs)
        self._open(caps_in)
        init = self.splitter.init
        self.codec = codecs_string(init)
        return Caps.segments(caps_in, self.codec, init)

    def _open(self, caps: Caps) -> None:
        self._close_container()
        s = self.settings
        flags = "frag_keyframe+empty_moov+default_base_moof+skip_trailer+frag_discont"
        if s.cmaf:
            flags += "+cmaf"
        period = float(1 / caps.rate) if caps.rate else 0.0
        min_frag_us = max(0, int((s.fragment_duration - period / 2) * 1e6))
        self.out = _Sink()
        self.splitter = BoxSplitter()
        # flush_packets: every fragment reaches the sink as soon as it is cut, instead of
        # waiting in FFmpeg's 32 KiB I/O buffer.
        self.container = av.open(self.out, "w", format="mp4", options={
            "movflags": flags, "min_frag_duration": str(min_frag_us), "flush_packets": "1",
            "avoid_negative_ts": "make_non_negative", "use_editlist": "0"})
        self.stream = add_encoded_stream(self.container, caps)
        self.streams = {MAIN_PAD: self.stream, **{
            pad: add_audio_stream(self.container, c) for pad, c in self.audio.items()}}
        self.interleave = Interleaver(list(self.streams))
        self.container.start_encoding()
        self.splitter.feed(self.out.take())
        if self.splitter.init is None:
            raise ConfigError(f"'{self.name}': the mp4 muxer wrote no init segment for "
                              f"{caps.describe()}")
        self.time_base = caps.time_base or (1 / caps.rate if caps.rate else Fraction(1, 90000))
        self.frame_period = round(1 / (caps.rate * self.time_base)) if caps.rate else 0
        self.pending: deque[tuple[int, int, bool]] = deque()  # (pts, duration, keyframe)
        self.shift: Fraction | None = None  # seconds every track is moved by
        self.awaiting_keyframe = True  # a stream (and each fragment) starts at a keyframe

    def start(self) -> None:
        if self.container is None:  # this copy was made after READY
            self._open(self.caps_in)

    def process_pad(self, pad: str, packet: Packet) -> list[Packet]:
        out: list[Packet] = []
        caps = packet.meta.get("caps") if pad == MAIN_PAD else None
        if caps is not None and caps != self.caps_in:  # the encoder changed size
            out = self._new_stream(caps)
        for ready_pad, ready in self.interleave.push(pad, packet):
            self._mux(ready_pad, ready)
        return out + self._collect()

    def end_pad(self, pad: str) -> list[Packet]:
        for ready_pad, ready in self.interleave.end(pad):
            self._mux(ready_pad, ready)
        return self._collect()

    def _mux(self, pad: str, packet: Packet) -> None:
        if pad == MAIN_PAD and self.awaiting_keyframe:
            if not packet.keyframe:  # the encoder upstream went on while we restarted
                self.skipped += 1
                return
            self.awaiting_keyframe = False
        if self.shift is None:
            # A fragment cannot start before 0, and the mp4 muxer would move each track
            # that does (B-frames, AAC priming) on its own, which shifts audio against
            # video. So every track moves by one amount: what the earliest packet (the
            # interleaver releases it first) needs, in whole video ticks, so that video
            # times stay exact. Items carry the moved times, as players show them.
            needed = max(Fraction(0), -decode_time(packet))
            self.shift = math.ceil(needed / self.time_base) * self.time_base
        p = av.Packet(packet.data)
        tb = packet.time_base
        move = round(self.shift / tb)
        p.pts = None if packet.pts is None else packet.pts + move
        p.dts = None if packet.dts is None else packet.dts + move
        p.time_base, p.stream = tb, self.streams[pad]
        if pad != MAIN_PAD:
            p.duration = packet.duration or 0
            self.container.mux(p)
            return
        p.duration = packet.duration or self.frame_period
        p.is_keyframe = packet.keyframe
        self.pending.append((round(((packet.pts or 0) * tb + self.shift) / self.time_base),
                             round(p.duration * tb / self.time_base), packet.keyframe))
        self.container.mux(p)

    def flush(self) -> list[Packet]:
        if self.container is None:
            return []
        for pad, packet in self.interleave.drain():
            self._mux(pad, packet)
        self.container.close()  # writes the last fragment
        self.container = None
        return self._collect()

    def discontinuity(self) -> list[Packet]:
        """The encoder upstream was replaced: end the fragment here, so that its last
        sample lasts one frame and not the whole gap, and start a new stream (with its
        init segment) for what follows."""
        return self._new_stream(self.caps_in)

    def _new_stream(self, caps: Caps) -> list[Packet]:
        """End the stream so far (its last fragment) and start another, with its own
        init segment, for what follows."""
        if self.container is None:
            return []
        out = self.flush()
        self._open(caps)
        self.caps_in = caps
        self.codec = codecs_string(self.splitter.init)
        self.init_sent = False
        return out

    def _collect(self) -> list[Packet]:
        out: list[Packet] = []
        if not self.init_sent and self.settings.separate_init:
            out.append(Packet(self.splitter.init, time_base=self.time_base,
                              meta={"init": True, "codec": self.codec}))
            self.init_sent = True
        for data in self.splitter.feed(self.out.take()):
            n = sample_count(data, VIDEO_TRACK)
            frames = [self.pending.popleft() for _ in range(min(n, len(self.pending)))]
            if not self.init_sent:
                data = self.splitter.init + data
                self.init_sent = True
            pts = min((f[0] for f in frames), default=None)
            out.append(Packet(data, pts=pts, dts=pts, duration=sum(f[1] for f in frames),
                              time_base=self.time_base, keyframe=bool(frames and frames[0][2]),
                              meta={"seq": self.segments, "codec": self.codec,
                                    "samples": n, "init": False}))
            self.segments += 1
            self.frames += n
        return out

    def _close_container(self) -> None:
        if self.container is not None:
            with contextlib.suppress(av.FFmpegError):
                self.container.close()
            self.container = None

    def close(self, ok: bool) -> None:
        self._close_container()

    def results(self) -> dict[str, Any]:
        return {"segments": self.segments, "frames": self.frames, "skipped": self.skipped,
                "codec": getattr(self, "codec", None)}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("container", "stream", "streams", "out", "splitter", "pending",
                    "interleave"):
            state[key] = None
        return state
