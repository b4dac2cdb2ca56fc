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
from actors.media.muxing import add_encoded_stream, check_output_dir
from actors.types import ENCODED_VIDEO, Caps, Packet

log = logging.getLogger("parallax.mp4_mux")

MP4_SUFFIXES = (".mp4", ".m4v", ".mov")


def partial_path(location: str) -> str:
    """Where the file is written until it is complete: hidden, beside the target."""
    head, tail = os.path.split(location)
    return os.path.join(head, f".{tail}.part")


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
    """Muxes encoded video into an MP4 file. A failed run leaves no file that looks complete."""

    accepts = (ENCODED_VIDEO,)

    def __init__(self, location: str | None = None, settings: Mp4MuxSettings | None = None,
                 **options: Any) -> None:
        super().__init__()
        self.settings = settings or Mp4MuxSettings(location=location, **options)
        self.container = None
        self.stream = None
        self.packets = 0
        self.finalized = False

    def configure(self, caps_in: Caps | None) -> Caps:
        check_output_dir(self.settings.location)
        return caps_in

    def start(self) -> None:
        caps = self.caps_in
        options = {"movflags": "+faststart"} if self.settings.faststart else {}
        self.tmp = partial_path(self.settings.location)
        self.container = av.open(self.tmp, "w", format="mp4", options=options)
        self.stream = add_encoded_stream(self.container, caps)

    def process(self, packet: Packet) -> tuple:
        p = av.Packet(packet.data)
        p.pts, p.dts, p.duration = packet.pts, packet.dts, packet.duration or 0
        p.time_base, p.stream = packet.time_base, self.stream
        p.is_keyframe = packet.keyframe
        self.container.mux(p)
        self.packets += 1
        return ()

    def flush(self) -> tuple:
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

    def results(self) -> dict[str, Any]:
        loc = self.settings.location
        return {"location": loc, "packets": self.packets, "finalized": self.finalized,
                "bytes": os.path.getsize(loc) if self.finalized else 0}
