"""Fmp4FileSink: fMP4 segments into one fragmented MP4 file."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from actors.element import Sink
from actors.errors import ConfigError
from actors.media.mp4_mux import MP4_SUFFIXES, partial_path
from actors.media.muxing import check_output_dir
from actors.streaming.fmp4 import complete_prefix
from actors.types import ENCODED_SEGMENT, Caps, Packet

log = logging.getLogger("parallax.fmp4_file_sink")


@dataclass(frozen=True)
class Fmp4FileSinkSettings:
    location: str

    def __post_init__(self) -> None:
        if not self.location.lower().endswith(MP4_SUFFIXES):
            raise ConfigError(f"output {self.location!r}: Fmp4FileSink writes "
                              f"{', '.join(MP4_SUFFIXES)}")


class Fmp4FileSink(Sink):
    """Appends the init segment and every media segment to a file.

    The file is written under a hidden temporary name and renamed at the end. Unlike a
    progressive MP4, a fragmented one is playable up to its last complete fragment, so a
    run that stops early still renames it, with a warning saying how much it holds.
    """

    accepts = (ENCODED_SEGMENT,)

    def __init__(self, location: str | None = None,
                 settings: Fmp4FileSinkSettings | None = None, **options: Any) -> None:
        super().__init__()
        self.settings = settings or Fmp4FileSinkSettings(location=location, **options)
        self.file: Any = None
        self.segments = 0
        self.bytes = 0
        self.duration = 0.0
        self.has_init = False
        self.finalized = False

    def configure(self, caps_in: Caps | None) -> Caps:
        check_output_dir(self.settings.location)
        return caps_in

    def start(self) -> None:
        self.tmp = partial_path(self.settings.location)
        self.file = open(self.tmp, "wb")  # noqa: SIM115 - held open for the whole stream

    def process(self, packet: Packet) -> tuple:
        if packet.meta.get("init"):
            if self.has_init:  # one file holds one stream; a second init would corrupt it
                log.warning("%s: ignoring a changed init segment mid-stream",
                            self.settings.location)
                return ()
            self.has_init = True
        elif not self.has_init:
            self.file.write(self.caps_in.extradata or b"")
            self.has_init = True
        self.file.write(packet.data)
        self.bytes += len(packet.data)
        if not packet.meta.get("init"):
            self.segments += 1
            self.duration += float((packet.duration or 0) * packet.time_base)
        return ()

    def flush(self) -> tuple:
        self._finish()
        self.finalized = True
        return ()

    def _finish(self) -> None:
        self.file.close()
        self.file = None
        os.replace(self.tmp, self.settings.location)

    def close(self, ok: bool) -> None:
        if self.finalized or self.file is None:
            return
        if self.segments:
            self._finish()
            log.warning("the pipeline stopped early: %s holds %d complete fragments "
                        "(%.1f s) and plays up to there", self.settings.location,
                        self.segments, self.duration)
        else:
            self.file.close()
            os.remove(self.tmp)
            log.warning("removed the incomplete output %s: no fragment was complete",
                        self.tmp)

    def salvage(self) -> str | None:
        """Keep the complete fragments of a file whose writer died mid-write."""
        loc = self.settings.location
        tmp = partial_path(loc)
        if not os.path.exists(tmp):
            return None
        with open(tmp, "rb") as f:
            data = f.read()
        keep, fragments = complete_prefix(data)
        if not fragments:
            os.remove(tmp)
            return f"removed the incomplete output {tmp}: no fragment of it was complete"
        with open(tmp, "r+b") as f:
            f.truncate(keep)
        os.replace(tmp, loc)
        return (f"kept {fragments} complete fragment(s) of {loc} ({keep} of {len(data)} "
                f"bytes): its writer '{self.name}' stopped before the end; it plays up to "
                "there")

    def results(self) -> dict[str, Any]:
        return {"location": self.settings.location, "segments": self.segments,
                "bytes": self.bytes, "duration": round(self.duration, 3),
                "finalized": self.finalized}
