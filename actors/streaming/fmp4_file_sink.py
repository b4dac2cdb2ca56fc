"""Fmp4FileSink: fMP4 segments into one fragmented MP4 file."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from actors.element import Sink
from actors.errors import ConfigError
from actors.media.mp4_mux import MP4_SUFFIXES
from actors.media.muxing import check_output_dir, nothing_to_write, partial_path
from actors.streaming.fmp4 import complete_prefix, iter_boxes
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
        self.init: bytes | None = None
        self.finalized = False
        self.resumed = 0  # times this file was taken over after its writer died
        self._keep = 0  # bytes of the dead writer's file to keep and append to

    def configure(self, caps_in: Caps | None) -> Caps:
        check_output_dir(self.settings.location)
        return caps_in

    def restarted(self) -> None:
        """Append to what the writer that died left: its complete fragments stay, the
        torn one at the end goes, and the new fragments follow (their decode times go on
        from the source's clock, so the file plays through, with a gap)."""
        try:
            with open(partial_path(self.settings.location), "rb") as f:
                data = f.read()
        except OSError:
            return
        self._keep, self.segments = complete_prefix(data)
        if self._keep:
            moov = next(b for b in iter_boxes(data) if b.type == b"moov")
            self.init, self.has_init, self.bytes = data[:moov.end], True, self._keep
            self.resumed += 1

    def start(self) -> None:
        self.tmp = partial_path(self.settings.location)
        # Held open for the whole stream.
        self.file = open(self.tmp, "r+b" if self._keep else "wb")  # noqa: SIM115
        if self._keep:
            self.file.truncate(self._keep)
            self.file.seek(self._keep)

    def process(self, packet: Packet) -> tuple:
        if packet.meta.get("init"):
            if self.has_init:  # one file holds one stream; a second init would corrupt it
                if packet.data != self.init:
                    log.warning("%s: ignoring a changed init segment mid-stream",
                                self.settings.location)
                return ()
            self.has_init, self.init = True, packet.data
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
        if not self.segments:
            self.file.close()
            self.file = None
            os.remove(self.tmp)
            raise nothing_to_write(self.settings.location)
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
                "finalized": self.finalized, "resumed": self.resumed}
