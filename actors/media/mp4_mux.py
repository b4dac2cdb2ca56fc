"""Mp4Mux: progressive MP4 written by FFmpeg's muxer, to a temporary name renamed on success."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

import av

from actors.element import Sink
from actors.errors import ConfigError
from actors.media.muxing import (
    Interleaver,
    add_audio_stream,
    add_encoded_stream,
    check_output_dir,
    nothing_to_write,
    partial_path,
    split_inputs,
)
from actors.types import ENCODED_AUDIO, ENCODED_VIDEO, MAIN_PAD, Caps, Packet

log = logging.getLogger("parallax.mp4_mux")

MP4_SUFFIXES = (".mp4", ".m4v", ".mov")


@dataclass(frozen=True)
class Mp4MuxSettings:
    location: str
    """The output file; it appears only once complete."""
    faststart: bool = False
    """Move the index (moov) to the front for progressive web playback (one extra pass)."""

    def __post_init__(self) -> None:
        if not self.location.lower().endswith(MP4_SUFFIXES):
            raise ConfigError(f"output {self.location!r}: Mp4Mux writes {', '.join(MP4_SUFFIXES)}")


class Mp4Mux(Sink):
    """Muxes encoded video, and any audio linked into pads ``audio_0``..., into an MP4
    file, interleaved by decode time. A failed run leaves no file that looks complete."""

    accepts = (ENCODED_VIDEO, ENCODED_AUDIO)
    input_pads = True

    def __init__(self, location: str | None = None, settings: Mp4MuxSettings | None = None,
                 **options: Any) -> None:
        super().__init__()
        self.settings = settings or Mp4MuxSettings(location=location, **options)
        self.container = None
        self.stream = None
        self.packets = 0
        self.audio_packets = 0
        self.finalized = False
        self.inputs: dict[str, Caps] = {}

    def configure_pads(self, inputs: dict[str, Caps]) -> Caps:
        video, audio = split_inputs(self.name, inputs)
        check_output_dir(self.settings.location)
        self.inputs = {MAIN_PAD: video, **audio}
        return video

    def start(self) -> None:
        options = {"movflags": "+faststart"} if self.settings.faststart else {}
        self.tmp = partial_path(self.settings.location)
        self.container = av.open(self.tmp, "w", format="mp4", options=options)
        self.streams = {pad: add_encoded_stream(self.container, caps) if pad == MAIN_PAD
                        else add_audio_stream(self.container, caps)
                        for pad, caps in self.inputs.items()}
        self.stream = self.streams[MAIN_PAD]
        self.interleave = Interleaver(list(self.streams))

    def process_pad(self, pad: str, packet: Packet) -> tuple:
        self._write(self.interleave.push(pad, packet))
        return ()

    def end_pad(self, pad: str) -> tuple:
        self._write(self.interleave.end(pad))
        return ()

    def _write(self, ready: list[tuple[str, Packet]]) -> None:
        for pad, packet in ready:
            p = av.Packet(packet.data)
            p.pts, p.dts, p.duration = packet.pts, packet.dts, packet.duration or 0
            p.time_base, p.stream = packet.time_base, self.streams[pad]
            p.is_keyframe = packet.keyframe
            self.container.mux(p)
            if pad == MAIN_PAD:
                self.packets += 1
            else:
                self.audio_packets += 1

    def flush(self) -> tuple:
        self._write(self.interleave.drain())
        if not self.packets:
            raise nothing_to_write(self.settings.location)  # close() removes the rest
        self.container.close()
        self.container = None
        os.replace(self.tmp, self.settings.location)
        self.finalized = True
        return ()

    def close(self, ok: bool) -> None:
        if self.finalized:
            return
        if self.container is not None:
            with contextlib.suppress(av.FFmpegError):
                self.container.close()
            self.container = None
        if getattr(self, "tmp", None) and os.path.exists(self.tmp):
            os.remove(self.tmp)
            log.warning("removed the incomplete output %s: the pipeline did not finish",
                        self.tmp)

    def salvage(self) -> str | None:
        tmp = partial_path(self.settings.location)
        if not os.path.exists(tmp):
            return None
        os.remove(tmp)  # a progressive MP4 without its moov plays nowhere
        return (f"removed the incomplete output {tmp}: its writer '{self.name}' stopped "
                "before finishing it")

    def results(self) -> dict[str, Any]:
        loc = self.settings.location
        return {"location": loc, "packets": self.packets, "audio_packets": self.audio_packets,
                "finalized": self.finalized,
                "bytes": os.path.getsize(loc) if self.finalized else 0}
