"""Arena defaults: the plan's slot constants, and timeouts that bound every wait.

On Ray the object store is the arena and an edge's credits are its slots, so a
window of W credits for items of S bytes reserves at most W x S bytes.
"""

from __future__ import annotations

from actors.flow import WAIT_SLICE_S  # noqa: F401  (re-exported: one constant, owned by actors/)
from actors.types import ENCODED_SEGMENT, ENCODED_VIDEO, RAW_VIDEO, Caps

KIB = 1024
MIB = 1024 * KIB

# Small buffers (RTP packets, audio frames, generic items)
SMALL_SLOT_COUNT = 64
SMALL_SLOT_SIZE = 64 * KIB  # 64 KiB

# Medium buffers (encoded video frames, fMP4 segments)
MEDIUM_SLOT_COUNT = 64
MEDIUM_SLOT_SIZE = 1 * MIB  # 1 MiB

# Large buffers (raw video frames; 1080p RGBA is 7.9 MiB)
LARGE_SLOT_COUNT = 32
LARGE_SLOT_SIZE = 8 * MIB  # 8 MiB

# Sources of small or encoded items get more slots, to ride out network jitter.
SOURCE_SLOT_COUNT = 200

# Items at least this large go into the object store once, at the producer, and
# travel as references; smaller ones ride inline in the push call (Ray inlines
# arguments under 100 KiB anyway).
INLINE_MAX_BYTES = 100 * KIB

# Items in flight per replica of a pool: one being processed, one waiting, so that a
# replica never idles between items (chunks take a second or more each).
POOL_WINDOW = 2

# Bounds on waits, so that no failure turns into a hang.
PLACEMENT_TIMEOUT_S = 30.0  # an actor not placed by then is reported unplaceable
CONTROL_TIMEOUT_S = 60.0  # negotiate/connect/stats calls on a live host
DRAIN_TIMEOUT_S = 30.0  # stop(drain=True) waits this long for EOS to reach the sinks
STATS_INTERVAL_S = 1.0  # the driver polls hosts about once a second


def default_slot(caps: Caps, from_source: bool) -> tuple[int, int]:
    """(window, slot size in bytes) for an edge carrying ``caps``."""
    if caps.kind == RAW_VIDEO:
        return LARGE_SLOT_COUNT, caps.slot_size or LARGE_SLOT_SIZE
    encoded = caps.kind in (ENCODED_VIDEO, ENCODED_SEGMENT)
    count = MEDIUM_SLOT_COUNT if encoded else SMALL_SLOT_COUNT
    if from_source:
        count = SOURCE_SLOT_COUNT
    return count, caps.slot_size or (MEDIUM_SLOT_SIZE if encoded else SMALL_SLOT_SIZE)
