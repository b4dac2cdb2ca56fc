"""ISO BMFF (MP4) box reading for fragmented MP4: split a byte stream into init and media
segments, count samples, and derive the RFC 6381 codec string from an init segment.

Only headers are read; payloads are never interpreted beyond the few fields named here,
and every read is bounds-checked, because init segments may come from the network.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from actors.errors import MediaError

# Boxes whose children are boxes (the path down to the fields read here).
CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"mvex"})
INIT_BOXES = frozenset({b"ftyp", b"moov"})
# Boxes that may precede a moof and belong to its segment (CMAF, sidx, producer time).
SEGMENT_PREFIX_BOXES = frozenset({b"styp", b"sidx", b"prft", b"emsg"})
MAX_INIT_BYTES = 1 << 20  # an init segment is a few KiB; anything this big is not one


@dataclass(frozen=True)
class Box:
    type: bytes
    start: int
    """Offset of the box header in the buffer it was read from."""
    size: int
    header: int
    """Header length (8, or 16 for 64-bit sizes)."""

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def body(self) -> int:
        return self.start + self.header


def iter_boxes(buf: bytes | bytearray | memoryview, start: int = 0,
               end: int | None = None) -> Iterator[Box]:
    """Complete boxes in buf[start:end], in order; stops at the first incomplete one."""
    end = len(buf) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            (size,) = struct.unpack_from(">Q", buf, pos + 8)
            header = 16
        elif size == 0:  # "to the end of the file": only complete once the stream ends
            return
        if size < header or pos + size > end:
            return
        yield Box(kind, pos, size, header)
        pos += size


def find_box(buf: bytes, path: list[bytes], start: int = 0, end: int | None = None) -> Box | None:
    """The first box at ``path`` (e.g. [b"moov", b"trak"]) under buf[start:end]."""
    for box in iter_boxes(buf, start, end):
        if box.type == path[0]:
            if len(path) == 1:
                return box
            found = find_box(buf, path[1:], box.body, box.end)
            if found is not None:
                return found
    return None


def check_segment(data: bytes) -> int:
    """Check that ``data`` is one media segment (optional styp/sidx/prft/emsg, then
    moof+mdat, nothing else, nothing torn) and return its sample count; MediaError if not.
    For segments from the network, before anything is written."""
    kinds, end = [], 0
    for box in iter_boxes(data):
        kinds.append(box.type)
        end = box.end
    if end != len(data):
        raise MediaError(f"segment of {len(data)} bytes: its boxes end at {end} (torn or "
                         "trailing bytes)")
    media = [k for k in kinds if k not in SEGMENT_PREFIX_BOXES]
    if media != [b"moof", b"mdat"]:
        raise MediaError(f"segment is {b'+'.join(kinds).decode('latin-1')}, not moof+mdat")
    samples = sample_count(data)
    if samples == 0:
        raise MediaError("segment holds no sample")
    return samples


def complete_prefix(data: bytes) -> tuple[int, int]:
    """(bytes, fragments) of a fragmented MP4's longest playable prefix: the init segment
    and every complete moof+mdat (a writer that died leaves a torn one at the end)."""
    end, fragments, has_init, moof = 0, 0, False, False
    for box in iter_boxes(data):
        if box.type == b"moov":
            has_init, end = True, box.end
        elif box.type == b"moof":
            moof = True
        elif box.type == b"mdat" and moof and has_init:
            fragments, end, moof = fragments + 1, box.end, False
    return (end, fragments) if has_init else (0, 0)


class BoxSplitter:
    """Cuts the muxer's byte stream into the init segment and moof+mdat media segments."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.init: bytes | None = None
        self._pending_start = 0  # where the boxes of the segment being gathered begin

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the media segments completed by them (the init goes to .init)."""
        self.buf += data
        segments: list[bytes] = []
        consumed = 0
        for box in iter_boxes(self.buf):
            if box.type in INIT_BOXES:
                if box.type == b"moov":
                    self.init = bytes(self.buf[: box.end])
                    self._pending_start = box.end
            elif box.type == b"mdat":
                segments.append(bytes(self.buf[self._pending_start: box.end]))
                self._pending_start = box.end
            elif box.type not in SEGMENT_PREFIX_BOXES and box.type != b"moof":
                self._pending_start = box.end  # mfra and the like: not media
            consumed = box.end
        if self.init is not None and consumed:
            keep = self._pending_start
            del self.buf[:keep]
            self._pending_start = 0
        return segments


def track_fragments(segment: bytes) -> Iterator[tuple[Box, int | None]]:
    """Each track fragment (traf) of each moof in a media segment, with its tfhd's
    track_ID (None when it has no whole tfhd)."""
    for moof in iter_boxes(segment):
        if moof.type != b"moof":
            continue
        for traf in iter_boxes(segment, moof.body, moof.end):
            if traf.type != b"traf":
                continue
            tfhd = find_box(segment, [b"tfhd"], traf.body, traf.end)
            whole = tfhd is not None and tfhd.body + 8 <= tfhd.end
            yield traf, struct.unpack_from(">I", segment, tfhd.body + 4)[0] if whole else None


def sample_count(segment: bytes, track_id: int | None = None) -> int:
    """Samples in a moof+mdat segment, from its trun boxes: of track ``track_id`` only
    (its tfhd's track_ID), or of every track."""
    total = 0
    for traf, track in track_fragments(segment):
        if track_id is not None and track != track_id:
            continue
        for trun in iter_boxes(segment, traf.body, traf.end):
            if trun.type == b"trun" and trun.body + 8 <= trun.end:
                total += struct.unpack_from(">I", segment, trun.body + 4)[0]
    return total


def codecs_string(init: bytes) -> str:
    """RFC 6381 codecs of every track, video first as muxed: 'avc1.640028,mp4a.40.2'
    (what a browser's MediaSource and an HLS CODECS attribute want)."""
    moov = find_box(init, [b"moov"])
    if moov is None:
        raise MediaError("init segment lacks its moov box")
    out = []
    for trak in iter_boxes(init, moov.body, moov.end):
        if trak.type != b"trak":
            continue
        stsd = find_box(init, [b"mdia", b"minf", b"stbl", b"stsd"], trak.body, trak.end)
        if stsd is not None:
            out.append(_entry_codec(init, stsd))
    if not out:
        raise MediaError("init segment has no track with a sample description")
    return ",".join(out)


# Audio sample entries: fourcc -> codecs string (mp4a is read from its esds).
AUDIO_ENTRIES = {"Opus": "opus", "ac-3": "ac-3", "ec-3": "ec-3", "fLaC": "flac",
                 "alac": "alac", ".mp3": "mp3"}
AUDIO_ENTRY_FIELDS = 28  # SampleEntry (8) + AudioSampleEntry v0 (20) before child boxes


def _audio_codec(init: bytes, entry: Box) -> str:
    fourcc = entry.type.decode("latin-1")
    if fourcc != "mp4a":
        return AUDIO_ENTRIES.get(fourcc, fourcc)
    esds = find_box(init, [b"esds"], entry.body + AUDIO_ENTRY_FIELDS, entry.end)
    if esds is None:
        return "mp4a.40.2"  # AAC-LC, what an mp4a entry without its esds almost always is
    oti, asc = _esds_config(bytes(init[esds.body + 4: esds.end]))
    if oti == 0x40 and asc:
        aot = asc[0] >> 3
        return f"mp4a.40.{aot}"
    return f"mp4a.{oti:02X}" if oti is not None else "mp4a.40.2"


def _esds_config(buf: bytes) -> tuple[int | None, bytes]:
    """(objectTypeIndication, DecoderSpecificInfo) from an esds body (ISO 14496-1)."""
    oti, info, pos = None, b"", 0

    def header(at: int) -> tuple[int, int, int]:
        tag, size, at = buf[at], 0, at + 1
        for _ in range(4):  # sizes take 1-4 bytes, 7 bits each
            if at >= len(buf):
                break
            b = buf[at]
            size, at = (size << 7) | (b & 0x7F), at + 1
            if not b & 0x80:
                break
        return tag, size, at

    while pos + 2 <= len(buf):
        tag, size, body = header(pos)
        if tag == 0x03 and body + 3 <= len(buf):  # ES_Descriptor: skip its fields
            flags, pos = buf[body + 2], body + 3
            pos += 2 if flags & 0x80 else 0  # dependsOn_ES_ID
            if flags & 0x40 and pos < len(buf):  # URL
                pos += 1 + buf[pos]
            pos += 2 if flags & 0x20 else 0  # OCR_ES_Id
        elif tag == 0x04 and body + 13 <= len(buf):  # DecoderConfigDescriptor
            oti, pos = buf[body], body + 13
        elif tag == 0x05:  # DecoderSpecificInfo
            info = buf[body: body + size]
            break
        else:
            break
    return oti, info


def codec_string(init: bytes) -> str:
    """RFC 6381 codec string of the first (video) track, e.g. 'avc1.640028'."""
    stsd = find_box(init, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"])
    if stsd is None or stsd.body + 8 > stsd.end:
        raise MediaError("init segment has no sample description (stsd); it is not fMP4 video")
    return _entry_codec(init, stsd)


def _entry_codec(init: bytes, stsd: Box) -> str:
    if stsd.body + 8 > stsd.end:
        raise MediaError("init segment has an empty sample description (stsd)")
    entries = list(iter_boxes(init, stsd.body + 8, stsd.end))
    if not entries:
        raise MediaError("init segment's sample description is empty")
    entry = entries[0]
    fourcc = entry.type.decode("latin-1")
    if fourcc in AUDIO_ENTRIES or fourcc == "mp4a":
        return _audio_codec(init, entry)
    # A visual sample entry has 78 bytes of fields before its child boxes.
    children = {b.type: b for b in iter_boxes(init, entry.body + 78, entry.end)}

    def config(kind: bytes, need: int) -> bytes:
        box = children.get(kind)
        if box is None or box.end - box.body < need:
            raise MediaError(f"init segment: {fourcc} entry lacks a valid {kind.decode()} box")
        return bytes(init[box.body: box.end])

    if fourcc in ("avc1", "avc3"):
        c = config(b"avcC", 4)
        return f"{fourcc}.{c[1]:02X}{c[2]:02X}{c[3]:02X}"
    if fourcc in ("hvc1", "hev1"):
        return f"{fourcc}.{_hevc_suffix(config(b'hvcC', 13))}"
    if fourcc == "av01":
        c = config(b"av1C", 4)
        profile, level, tier = c[1] >> 5, c[1] & 0x1F, "H" if c[2] & 0x80 else "M"
        depth = 12 if c[2] & 0x40 and c[2] & 0x20 else (10 if c[2] & 0x40 else 8)
        return f"av01.{profile}.{level:02d}{tier}.{depth:02d}"
    if fourcc == "vp09":
        c = config(b"vpcC", 8)  # full box: 4 bytes of version and flags first
        return f"vp09.{c[4]:02d}.{c[5]:02d}.{c[6] >> 4:02d}"
    raise MediaError(f"init segment: unsupported sample entry {fourcc!r}")


def _hevc_suffix(c: bytes) -> str:
    space = "" if not c[1] >> 6 else "ABC"[(c[1] >> 6) - 1]
    tier, profile = "H" if c[1] & 0x20 else "L", c[1] & 0x1F
    compat = int.from_bytes(c[2:6], "big")
    compat = int(f"{compat:032b}"[::-1], 2)  # written in reverse bit order
    constraints = c[6:12].rstrip(b"\x00")
    parts = [f"{space}{profile}", f"{compat:X}", f"{tier}{c[12]}"]
    parts += [f"{b:X}" for b in constraints]
    return ".".join(parts)


@dataclass(frozen=True)
class InitInfo:
    """What a receiver needs to know about a stream, read from its init segment."""

    codec: str
    """FFmpeg codec name (h264, hevc, av1, vp9)."""
    codec_string: str
    width: int
    height: int
    rate: Fraction | None
    time_base: Fraction
    video_track: int = 1
    """track_ID of the video track: what a segment's frames are counted on."""


def read_init(init: bytes) -> InitInfo:
    """Check that ``init`` is an fMP4 init segment with one video track, and describe it.

    Raises MediaError for anything else, so bytes from the network fail cleanly.
    """
    if not init or len(init) > MAX_INIT_BYTES:
        raise MediaError(f"init segment of {len(init)} bytes: expected 1 B to "
                         f"{MAX_INIT_BYTES} B")
    kinds = [b.type for b in iter_boxes(init)]
    if b"ftyp" not in kinds or b"moov" not in kinds:
        raise MediaError("init segment lacks its ftyp and moov boxes")
    if find_box(init, [b"moov", b"mvex"]) is None:
        raise MediaError("init segment is not fragmented (no mvex box)")
    cstr = codec_string(init)
    try:
        with av.open(io.BytesIO(init), "r", format="mp4") as container:
            if not container.streams.video:
                raise MediaError("init segment has no video track")
            s = container.streams.video[0]
            ctx: Any = s.codec_context
            if ctx is None or not ctx.width or not ctx.height:
                raise MediaError("init segment's video track has no codec or size FFmpeg "
                                 "can read")
            rate = s.average_rate or s.guessed_rate
            return InitInfo(ctx.name, cstr, ctx.width, ctx.height,
                            Fraction(rate) if rate else None, s.time_base,
                            s.id if isinstance(s.id, int) and s.id > 0 else 1)
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        # UnicodeDecodeError: PyAV decodes the boxes' strings (handler names) as UTF-8.
        raise MediaError(f"init segment does not parse: {exc}") from None
