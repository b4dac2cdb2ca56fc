"""HLS media playlists (RFC 8216) for fMP4 segments: rendering, atomic writes and parsing."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

HLS_VERSION = 7  # EXT-X-MAP for fMP4 in media playlists without I-frames-only needs 6+


@dataclass(frozen=True)
class Segment:
    uri: str
    duration: float
    """Seconds (EXTINF)."""
    map_uri: str
    """The init segment this one needs (EXT-X-MAP)."""
    discontinuity: bool = False


@dataclass
class MediaPlaylist:
    segments: list[Segment] = field(default_factory=list)
    media_sequence: int = 0
    discontinuity_sequence: int = 0
    target_duration: int = 1
    ended: bool = False
    playlist_type: str | None = None
    """VOD, EVENT, or None for a live sliding window."""

    def render(self) -> str:
        lines = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}",
                 f"#EXT-X-TARGETDURATION:{self.target_duration}",
                 f"#EXT-X-MEDIA-SEQUENCE:{self.media_sequence}"]
        if self.discontinuity_sequence:
            lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{self.discontinuity_sequence}")
        if self.playlist_type:
            lines.append(f"#EXT-X-PLAYLIST-TYPE:{self.playlist_type}")
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
        current_map = None
        for seg in self.segments:
            if seg.discontinuity and current_map is not None:
                lines.append("#EXT-X-DISCONTINUITY")
            if seg.map_uri != current_map:
                lines.append(f'#EXT-X-MAP:URI="{seg.map_uri}"')
                current_map = seg.map_uri
            lines += [f"#EXTINF:{seg.duration:.6f},", seg.uri]
        if self.ended:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"


def target_duration(durations: list[float]) -> int:
    """EXT-X-TARGETDURATION: at least every EXTINF (rounded to ms first, so 2.0000001 is 2)."""
    return max([1, *(math.ceil(round(d, 3)) for d in durations)])


def write_atomic(path: str, data: bytes | str) -> None:
    """Write to a hidden temporary beside ``path``, then rename: readers never see half."""
    head, tail = os.path.split(path)
    tmp = os.path.join(head, f".{tail}.tmp")
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(tmp, mode) as f:
        f.write(data)
    os.replace(tmp, path)


def parse_playlist(text: str) -> MediaPlaylist:
    """Parse a media playlist written by HlsSink (or any simple fMP4 media playlist)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError("not an HLS playlist: the first line must be #EXTM3U")
    pl = MediaPlaylist()
    map_uri, duration, discontinuity = "", None, False
    for ln in lines[1:]:
        tag, _, value = ln.partition(":")
        if tag == "#EXT-X-TARGETDURATION":
            pl.target_duration = int(value)
        elif tag == "#EXT-X-MEDIA-SEQUENCE":
            pl.media_sequence = int(value)
        elif tag == "#EXT-X-DISCONTINUITY-SEQUENCE":
            pl.discontinuity_sequence = int(value)
        elif tag == "#EXT-X-PLAYLIST-TYPE":
            pl.playlist_type = value
        elif tag == "#EXT-X-MAP":
            attrs = dict(a.split("=", 1) for a in value.split(","))
            map_uri = attrs["URI"].strip('"')
        elif tag == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif tag == "#EXTINF":
            duration = float(value.split(",")[0])
        elif tag == "#EXT-X-ENDLIST":
            pl.ended = True
        elif not ln.startswith("#"):
            if duration is None:
                raise ValueError(f"segment {ln!r} has no #EXTINF before it")
            pl.segments.append(Segment(ln, duration, map_uri, discontinuity))
            duration, discontinuity = None, False
    return pl
