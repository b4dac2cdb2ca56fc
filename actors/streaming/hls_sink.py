"""HlsSink: fMP4 segments to an HLS playlist, the init segment and segment files."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from actors.element import Sink
from actors.errors import ConfigError
from actors.media.muxing import check_output_dir, nothing_to_write
from actors.streaming.hls import (
    MediaPlaylist,
    Segment,
    parse_playlist,
    target_duration,
    write_atomic,
)
from actors.types import ENCODED_SEGMENT, Caps, Packet

ENDLIST = "#EXT-X-ENDLIST"

log = logging.getLogger("parallax.hls_sink")

HLS_MODES = ("vod", "live")
MAX_WINDOW = 10_000


@dataclass(frozen=True)
class HlsSinkSettings:
    location: str
    """The playlist (.m3u8); init and segment files go beside it."""
    mode: str = "vod"
    """vod: every segment stays, the playlist ends with EXT-X-ENDLIST (it is an EVENT
    playlist while being written, so it can be watched live). live: a sliding window."""
    window: int = 6
    """live: segments in the playlist; older files are deleted."""
    init_name: str = "{stem}-init.mp4"
    """The init segment's file name; named after the playlist, so that two playlists in
    one directory do not replace each other's."""
    segment_template: str = "{stem}{seq:05d}.m4s"
    """Segment file names; {stem} is the playlist's name without .m3u8."""

    def __post_init__(self) -> None:
        if not self.location.lower().endswith(".m3u8"):
            raise ConfigError(f"output {self.location!r}: HlsSink writes a .m3u8 playlist")
        if self.mode not in HLS_MODES:
            raise ConfigError(f"hls mode {self.mode!r}: use one of {', '.join(HLS_MODES)}")
        if not 1 <= self.window <= MAX_WINDOW:
            raise ConfigError(f"hls window {self.window}: must be 1-{MAX_WINDOW} segments")
        for name in (self.init_name, self.segment_template):
            if os.sep in name or name.startswith("."):
                raise ConfigError(f"hls file name {name!r}: give a plain file name")


class HlsSink(Sink):
    """Writes HLS (version 7, fMP4). Each file is written under a temporary name and
    renamed, so a player polling the directory never reads half a segment or playlist."""

    accepts = (ENCODED_SEGMENT,)

    def __init__(self, location: str | None = None, settings: HlsSinkSettings | None = None,
                 **options: Any) -> None:
        super().__init__()
        self.settings = settings or HlsSinkSettings(location=location, **options)
        self.playlist = MediaPlaylist(playlist_type="EVENT" if self.settings.mode == "vod"
                                      else None)
        self.map_uri: str | None = None
        self.init: bytes | None = None
        self.init_versions = 0
        self.written = 0
        self.bytes = 0
        self.deleted = 0
        self.finalized = False
        self._pending_delete: list[list[str]] = []  # per segment gone: its files
        self._discontinuity = False  # the next segment does not continue the last one
        self.resumed = 0  # times this playlist was taken over after its writer died
        self.stem = os.path.splitext(os.path.basename(self.settings.location))[0]
        self.init_name = self.settings.init_name.format(stem=self.stem)

    @property
    def directory(self) -> str:
        return os.path.dirname(os.path.abspath(self.settings.location))

    def configure(self, caps_in: Caps | None) -> Caps:
        check_output_dir(self.settings.location)
        return caps_in

    def process(self, packet: Packet) -> tuple:
        if packet.meta.get("init"):
            self._write_init(packet.data)
            return ()
        if self.map_uri is None:  # no init item came first: use the one in the caps
            if not (self.caps_in and self.caps_in.extradata):
                raise ConfigError(f"'{self.name}': a media segment came before any init segment")
            self._write_init(self.caps_in.extradata)
        uri = self.settings.segment_template.format(stem=self.stem, seq=self.written)
        write_atomic(os.path.join(self.directory, uri), packet.data)
        duration = float((packet.duration or 0) * packet.time_base)
        new_map = bool(self.playlist.segments) and self.playlist.segments[-1].map_uri != \
            self.map_uri
        self.playlist.segments.append(Segment(uri, duration, self.map_uri,
                                              new_map or self._discontinuity))
        self._discontinuity = False
        self.written += 1
        self.bytes += len(packet.data)
        self._roll()
        self._write_playlist()
        return ()

    def restarted(self) -> None:
        """Take over the playlist of the writer that died: keep its segments, number on
        from them, and mark a discontinuity before the next one."""
        try:
            with open(self.settings.location) as f:
                old = parse_playlist(f.read())
        except (OSError, ValueError):
            return  # it died before its first playlist: start afresh
        self.playlist.segments = old.segments
        self.playlist.media_sequence = old.media_sequence
        self.playlist.discontinuity_sequence = old.discontinuity_sequence
        self.playlist.target_duration = old.target_duration
        self.written = old.media_sequence + len(old.segments)
        root, ext = os.path.splitext(self.init_name)
        versions = [m[len(root) + 1:-len(ext) or None] for m in
                    {seg.map_uri for seg in old.segments} if m.startswith(root + "-")]
        self.init_versions = max([int(v) for v in versions if v.isdigit()], default=0)
        if old.segments:
            self.map_uri = old.segments[-1].map_uri
            try:
                with open(os.path.join(self.directory, self.map_uri), "rb") as f:
                    self.init = f.read()
            except OSError:
                self.init = None
        self._discontinuity = bool(old.segments)
        self.resumed += 1

    def discontinuity(self) -> tuple:
        self._discontinuity = bool(self.playlist.segments)
        return ()

    def _write_init(self, data: bytes) -> None:
        if self.map_uri is not None:
            if data == self.init:
                return
            # The stream changed (a publisher restarted with other settings): a new map
            # and a discontinuity, as players expect.
            root, ext = os.path.splitext(self.init_name)
            self.init_versions += 1
            self.map_uri = f"{root}-{self.init_versions}{ext}"
        else:
            self.map_uri = self.init_name
        write_atomic(os.path.join(self.directory, self.map_uri), data)
        self.init = data

    def _roll(self) -> None:
        pl = self.playlist
        if self.settings.mode != "live":
            return
        while len(pl.segments) > self.settings.window:
            gone = pl.segments.pop(0)
            pl.media_sequence += 1
            if pl.segments and pl.segments[0].discontinuity:
                pl.discontinuity_sequence += 1
            # A client may still be fetching the segment that just left: keep one extra
            # file around, as FFmpeg's hls muxer does. An init file leaves with the last
            # segment that maps to it.
            group = [gone.uri]
            if gone.map_uri and gone.map_uri != self.map_uri and not any(
                    seg.map_uri == gone.map_uri for seg in pl.segments):
                group.append(gone.map_uri)
            self._pending_delete.append(group)
            while len(self._pending_delete) > 1:
                for uri in self._pending_delete.pop(0):
                    self._remove(uri)

    def _remove(self, uri: str) -> None:
        try:
            os.remove(os.path.join(self.directory, uri))
            self.deleted += 1
        except FileNotFoundError:
            pass

    def _write_playlist(self) -> None:
        pl = self.playlist
        # Never shrink the target during a stream: players size their buffers by it.
        pl.target_duration = max(pl.target_duration,
                                 target_duration([s.duration for s in pl.segments]))
        write_atomic(self.settings.location, pl.render())

    def flush(self) -> tuple:
        if not self.playlist.segments:
            if self.map_uri is not None:  # the init segment, alone: no playlist names it
                self._remove(self.map_uri)
            raise nothing_to_write(self.settings.location)
        self._end()
        self.finalized = True
        return ()

    def _end(self) -> None:
        if self.settings.mode == "vod":
            self.playlist.playlist_type = "VOD"
        self.playlist.ended = True
        self._write_playlist()

    def close(self, ok: bool) -> None:
        if self.finalized or not self.playlist.segments:
            return
        self._end()
        log.warning("the pipeline stopped early: %s ends after %d segments (%.1f s), each "
                    "complete and playable", self.settings.location, self.written,
                    self.duration())

    def salvage(self) -> str | None:
        """End the playlist of a writer that died: every segment it lists was written
        whole before the playlist named it (write_atomic), so they all play."""
        loc = self.settings.location
        try:
            with open(loc) as f:
                text = f.read()
        except OSError:
            return None
        if ENDLIST in text:
            return None
        write_atomic(loc, text.rstrip("\n") + f"\n{ENDLIST}\n")
        segments = text.count("#EXTINF")
        return (f"ended the playlist {loc} after its {segments} complete segment(s): its "
                f"writer '{self.name}' stopped before the end")

    def duration(self) -> float:
        return sum(s.duration for s in self.playlist.segments)

    def results(self) -> dict[str, Any]:
        return {"location": self.settings.location, "segments": self.written,
                "in_playlist": len(self.playlist.segments), "deleted": self.deleted,
                "bytes": self.bytes, "finalized": self.finalized, "resumed": self.resumed,
                "duration": round(self.duration(), 3)}
