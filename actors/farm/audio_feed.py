"""AudioFeed: a file's audio, read where its output is written, for writers that mux many
files (the batch). A single transcode sends audio through pads instead.

The audio is demuxed as it is needed (up to a little past the video already muxed), so
memory stays at a second or so of audio whatever the file's length. Streams that the
output cannot hold as they are go through an AudioTranscoder, in this process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from actors.media.audio_transcoder import AudioTranscoder
from actors.media.streams import AudioDemux
from actors.types import Caps, OnPad, Packet

LEAD_S = 1.0  # audio demuxed ahead of the video muxed so far


@dataclass(frozen=True)
class AudioSpec:
    """One input audio stream and what to do with it."""

    index: int
    """The stream's index in the input (ffmpeg's numbering)."""
    action: str = "copy"
    """copy, aac or opus."""
    bitrate: int | None = None


class AudioFeed:
    def __init__(self, path: str, specs: tuple[AudioSpec, ...], shift_s: Fraction) -> None:
        self.container = av.open(path)
        self.demux = AudioDemux(self.container, tuple(s.index for s in specs), shift_s)
        self.encoders: dict[str, AudioTranscoder] = {}
        caps = self.demux.pads()
        self.caps: dict[str, Caps] = {}
        for spec, (pad, c) in zip(specs, caps.items()):
            if spec.action == "copy":
                self.caps[pad] = c
                continue
            enc = AudioTranscoder(spec.action, bitrate=spec.bitrate)
            self.caps[pad] = enc.negotiate([c], ["input"])
            self.encoders[pad] = enc
        self.packets: Iterator[Any] = self.container.demux(self.demux.streams)
        self.done = False

    def until(self, t: Fraction | None) -> list[tuple[str, Packet]]:
        """Audio up to ``t`` seconds (plus a lead); everything left when ``t`` is None."""
        out: list[tuple[str, Packet]] = []
        limit = None if t is None else t + LEAD_S
        while not self.done:
            try:
                p = next(self.packets, None)
            except av.FFmpegError:  # damaged past here: keep what was read, as for video
                p = None
            if p is None:
                self.done = True
                for pad, enc in self.encoders.items():
                    out += [(pad, q) for q in enc.handle_eos()]
                break
            item = self.demux.item(p)
            if item is None:
                continue
            out += self._through(item)
            if limit is not None and item.item.pts is not None and \
                    item.item.pts * item.item.time_base > limit:
                break
        return out

    def _through(self, item: OnPad) -> list[tuple[str, Packet]]:
        enc = self.encoders.get(item.pad)
        if enc is None:
            return [(item.pad, item.item)]
        return [(item.pad, q) for q in enc.handle(item.item)]

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None
