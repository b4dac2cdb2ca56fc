"""What travels through the farm: compressed chunks in, encoded chunks out.

A chunk owns a half-open range of presentation timestamps, ``[start, end)`` in the
input's time base (``None`` is open-ended: the first chunk takes everything before its
end, the last everything from its start). The union of all chunks' ranges is the whole
timeline, so the union of their frames is exactly the input's frames.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from actors.types import Caps, Packet

COMPRESSED_CHUNKS = "video/x-chunks"  # caps kind: Chunk items (compressed GOPs)
ENCODED_CHUNKS = "video/x-encoded-chunks"  # caps kind: EncodedChunk items


def seconds(pts: int | None, time_base: Fraction, origin: int = 0) -> float | None:
    return None if pts is None else float((pts - origin) * time_base)


@dataclass
class Chunk:
    """The compressed packets of a run of whole GOPs, and the frames it owns."""

    index: int
    packets: list[Packet]
    """In decode order. Starts at a keyframe; ends with the next keyframe and its leading
    pictures when those belong to this chunk's range (open GOPs)."""
    start: int | None
    """First pts this chunk owns (inclusive); None for the first chunk."""
    end: int | None
    """First pts it does not own (exclusive); None for the last chunk."""
    frames: int
    """Frames whose pts falls in [start, end): what the worker must encode."""
    time_base: Fraction
    origin: int = 0
    """The input's first pts: subtracted so that the output starts at 0."""
    source: str = ""
    """Which input this chunk comes from (a batch shares one pool between files)."""
    stream: Caps | None = None
    """The input stream's codec parameters, when chunks of several files share a pool."""
    last: bool = False
    """The last chunk of its input."""
    cached: bool = False
    """Already encoded by an earlier run (kept on disk): the worker passes it through."""

    @property
    def label(self) -> str:
        """Names the chunk in errors: its index and time range."""
        t0 = seconds(self.start, self.time_base, self.origin) or 0.0
        t1 = seconds(self.end, self.time_base, self.origin)
        span = f"{t0:.3f}-{t1:.3f} s" if t1 is not None else f"{t0:.3f} s-end"
        where = f" of {os.path.basename(self.source)}" if self.source else ""
        return f"chunk {self.index} ({span}{where})"

    @property
    def frame_count(self) -> int:
        return self.frames

    def owns(self, pts: int | None) -> bool:
        if pts is None:
            return False
        return (self.start is None or pts >= self.start) and (self.end is None or pts < self.end)

    @property
    def nbytes(self) -> int:
        return sum(len(p.data) for p in self.packets)


@dataclass
class EncodedChunk:
    """A chunk after decode, scale and encode: packets in the output's time base."""

    index: int
    label: str
    packets: list[Packet]
    """Encoded, in decode order; the first is an IDR frame."""
    start: int
    """Output pts of the chunk's first tick (its range start, shifted to the output)."""
    end: int | None
    frames_expected: int
    """Frames the chunk's range holds in the input (or ticks, with a rate change)."""
    frames_decoded: int
    """Of those, frames the decoder returned (fewer when packets were corrupt)."""
    extradata: bytes | None
    """The encoder's parameter sets; identical in every chunk, or the stitcher refuses."""
    worker: dict[str, Any] = field(default_factory=dict)
    """Where it ran and what it cost: node, pid, seconds decoding and encoding."""
    corrupt_packets: int = 0
    caps: Caps | None = None
    """The encoded stream's caps (size, rate, time base, parameter sets) for this chunk's
    input; a batch writer stitches each file with its own."""
    source: str = ""
    last: bool = False
    cached: bool = False
    error: str | None = None
    """Why this chunk could not be transcoded (only when the worker tolerates errors)."""

    @property
    def nbytes(self) -> int:
        return sum(len(p.data) for p in self.packets)

    @property
    def frame_count(self) -> int:
        """The frames this chunk stands for (a cached one: those kept on disk)."""
        return len(self.packets) if self.packets else self.frames_expected

    @property
    def lost(self) -> int:
        return max(0, self.frames_expected - self.frames_decoded)
