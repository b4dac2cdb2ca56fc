"""Shift an fMP4 segment's decode times, so that a returning publisher's stream continues
the timeline of the one before it instead of starting again at zero.

A new publisher session starts its timestamps over. Written after the old segments as they
are, its fragments would go back in time: an .mp4 output would no longer play in order
and a player fed by an HLS playlist (or Media Source Extensions) would overwrite what it
had buffered. A relay re-times what it forwards (as GStreamer's fallbacksrc keeps running
time going), so the receiver adds one offset per track to every ``tfdt`` it passes on.
"""

from __future__ import annotations

import struct
from fractions import Fraction

from actors.errors import MediaError
from actors.streaming.fmp4 import find_box, iter_boxes, track_fragments


def track_timescales(init: bytes) -> dict[int, int]:
    """track_ID -> media timescale (mdhd), for every track of an init segment."""
    moov = find_box(init, [b"moov"])
    if moov is None:
        raise MediaError("init segment lacks its moov box")
    out: dict[int, int] = {}
    for trak in iter_boxes(init, moov.body, moov.end):
        if trak.type != b"trak":
            continue
        tkhd = find_box(init, [b"tkhd"], trak.body, trak.end)
        mdhd = find_box(init, [b"mdia", b"mdhd"], trak.body, trak.end)
        if tkhd is None or mdhd is None:
            continue
        # version 1 boxes carry 64-bit times, which move the fields that follow them.
        id_at = tkhd.body + (20 if init[tkhd.body] == 1 else 12)
        scale_at = mdhd.body + (20 if init[mdhd.body] == 1 else 12)
        if id_at + 4 > tkhd.end or scale_at + 4 > mdhd.end:
            continue
        (track,) = struct.unpack_from(">I", init, id_at)
        (scale,) = struct.unpack_from(">I", init, scale_at)
        if scale:
            out[track] = scale
    return out


def shift_decode_times(segment: bytes, shift_s: Fraction, timescales: dict[int, int]) -> bytes:
    """``segment`` with ``shift_s`` seconds added to each track fragment's tfdt.

    Raises MediaError when a time would fall below zero or overflow its field; the caller
    then passes the segment on unshifted.
    """
    if not shift_s:
        return segment
    out = bytearray(segment)
    for traf, track in track_fragments(segment):
        tfdt = find_box(segment, [b"tfdt"], traf.body, traf.end)
        if track is None or tfdt is None:
            continue
        scale = timescales.get(track)
        if scale is None:
            raise MediaError(f"track {track} of a segment is not in the init segment")
        wide = segment[tfdt.body] == 1
        fmt, at = (">Q", tfdt.body + 4) if wide else (">I", tfdt.body + 4)
        if at + struct.calcsize(fmt) > tfdt.end:
            raise MediaError("a tfdt box is torn")
        (base,) = struct.unpack_from(fmt, segment, at)
        moved = base + round(shift_s * scale)
        if not 0 <= moved < (1 << (64 if wide else 32)):
            raise MediaError(f"decode time {moved} does not fit track {track}'s tfdt")
        struct.pack_into(fmt, out, at, moved)
    return bytes(out)
