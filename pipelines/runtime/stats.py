"""Statistics: per element, per edge (the arena view) and for the whole pipeline.

Hosts report raw counters; the driver turns two consecutive polls into rates.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field
from typing import Any

MBIT = 1_000_000


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class ElementStats:
    """The plan's ElementStats, plus mailbox depth, credits in use and latency."""

    name: str
    buffers_in: int = 0
    buffers_out: int = 0
    frames_in: int = 0
    """Video frames the input items stood for (an fMP4 segment or a chunk holds many)."""
    bytes_in: int = 0
    bytes_out: int = 0
    total_processing_time: float = 0.0
    """Seconds spent in element code."""
    last_buffer_time: float | None = None
    """Wall-clock time of the last buffer."""
    input_fps: float = 0.0
    output_fps: float = 0.0
    throughput_mbps: float = 0.0
    """Output megabits per second (input for sinks)."""
    errors: int = 0
    drops: int = 0
    blocked_time: float = 0.0
    """Seconds a source waited for credits (it was held back)."""
    reordered: int = 0
    """Items that reached this element's host ahead of their turn and waited in the
    reorder buffer (Ray does not keep call order on async actors)."""
    mailbox_depth: int = 0
    credits_in_use: int = 0
    credits_total: int = 0
    latency_ms: float | None = None
    """Median per-item latency at this element: arrival at its host to release, in ms."""
    latency_p99_ms: float | None = None
    e2e_latency_ms: float | None = None
    """Median capture-to-here latency, for items that carry a capture time."""
    e2e_latency_p99_ms: float | None = None
    host: str = ""
    node_id: str = ""
    restarts: int = 0
    """Times this element's process died and was replaced (a restart policy)."""
    live: dict[str, Any] | None = None
    """A live source's pacing: requested and kept fps, drop share, longest freeze, and
    the share of the size asked for (--adapt resolution); None for other elements."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class EdgeStats:
    """One edge seen as an arena: its credits are its slots."""

    name: str
    producer: str
    consumer: str
    window: int
    slot_size: int
    in_flight: int = 0
    high_water: int = 0
    sent: int = 0
    bytes_sent: int = 0
    drops: int = 0
    held: int = 0
    """Items a RingBuffer policy holds back beyond the window."""
    policy: str = "Block"
    signal: str = "ok"

    def utilization(self) -> float:
        """Fraction of slots in use, 0.0 to 1.0."""
        return self.in_flight / self.window

    def available_slots(self) -> int:
        return self.window - self.in_flight

    def high_water_mark(self) -> int:
        """Most slots ever in use at once."""
        return self.high_water

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["utilization"] = self.utilization()
        return d


@dataclass
class PoolStats:
    """One element pool: per replica and in all."""

    name: str
    replicas: list[dict[str, Any]] = field(default_factory=list)
    """Each: name, node_id, pid, state (starting, live, dead), in_flight, items, busy_s."""
    lost: int = 0
    """Replicas that died during the run (each was replaced if a node could host one)."""
    requeued: int = 0
    """Items sent again to another replica because theirs died."""

    @property
    def items(self) -> int:
        return sum(r["items"] for r in self.replicas)

    @property
    def live(self) -> int:
        return sum(r["state"] == "live" for r in self.replicas)

    def per_node(self) -> dict[str, dict[str, float]]:
        """Items and busy seconds per node."""
        nodes: dict[str, dict[str, float]] = {}
        for r in self.replicas:
            n = nodes.setdefault(r["node_id"] or "?", {"replicas": 0, "items": 0, "busy_s": 0.0})
            n["replicas"] += 1
            n["items"] += r["items"]
            n["busy_s"] += r["busy_s"]
        return nodes

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "replicas": self.replicas, "lost": self.lost,
                "requeued": self.requeued, "items": self.items, "live": self.live,
                "per_node": self.per_node()}


@dataclass
class PipelineStats:
    """The plan's PipelineStats, with the object store figures."""

    elements: dict[str, ElementStats] = field(default_factory=dict)
    edges: dict[str, EdgeStats] = field(default_factory=dict)
    total_latency: float | None = None
    """Seconds, median capture-to-sink latency if items carry capture times, else the
    sum of the median per-element latencies along the slowest path."""
    memory_used: int = 0
    """Object store bytes in use across the cluster."""
    memory_spilled: int = 0
    """Object store bytes spilled to disk (should stay 0)."""
    memory_capacity: int = 0
    memory_peak: int = 0
    """Most object store bytes seen in use at any poll during the run."""
    arena_reserved: int = 0
    """Sum of window x slot size over all edges: the most the pipeline can hold."""
    running_time: float = 0.0
    state: str = "NULL"
    frames: int = 0
    """Items that reached the sinks (the most any one sink saw)."""
    frames_total: int | None = None
    bytes_written: int = 0
    """Bytes that reached the sinks."""
    pools: dict[str, PoolStats] = field(default_factory=dict)
    """Element pools: their replicas (node, items, busy time), losses and requeues."""

    warnings: list[str] = field(default_factory=list)
    """What the elements warned of during the run ('logger: message'), in order; the
    driver also logs each as it arrives."""
    restart_events: list[dict[str, Any]] = field(default_factory=list)
    """Each restart: the host replaced, when (seconds into the run), the gap in seconds
    from noticing its death to its replacement playing, and the cause."""

    @property
    def restarts(self) -> dict[str, int]:
        """Elements whose process died and was replaced, and how many times."""
        return {n: e.restarts for n, e in self.elements.items() if e.restarts}

    @property
    def fps(self) -> float:
        return self.frames / self.running_time if self.running_time > 0 else 0.0

    def element(self, name: str) -> ElementStats | None:
        return self.elements.get(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "frames": self.frames,
            "frames_total": self.frames_total,
            "fps": self.fps,
            "duration_s": self.running_time,
            "bytes_written": self.bytes_written,
            "total_latency_s": self.total_latency,
            "memory_used": self.memory_used,
            "memory_spilled": self.memory_spilled,
            "memory_capacity": self.memory_capacity,
            "memory_peak": self.memory_peak,
            "arena_reserved": self.arena_reserved,
            "elements": {k: v.to_dict() for k, v in self.elements.items()},
            "edges": {k: v.to_dict() for k, v in self.edges.items()},
            "pools": {k: v.to_dict() for k, v in self.pools.items()},
            "restarts": self.restarts,
            "restart_events": self.restart_events,
            "warnings": self.warnings,
        }


@dataclass
class Progress:
    """What a progress callback receives, about once a second."""

    frames_processed: int
    frames_total: int | None
    bytes_written: int
    elapsed: float
    """Seconds since PLAYING."""
    estimated_remaining: float | None
    fps: float = 0.0
    drops: int = 0


def build_element_stats(
    name: str,
    host: str,
    node_id: str,
    figures: dict[str, Any],
    host_snap: dict[str, Any],
    previous: ElementStats | None,
    dt: float,
    is_sink: bool,
) -> ElementStats:
    """ElementStats from one host snapshot; rates come from the previous poll."""
    lat = figures["latencies"]
    e2e = figures["e2e_latencies"]
    s = ElementStats(
        name=name,
        buffers_in=figures["buffers_in"],
        frames_in=figures.get("frames_in", figures["buffers_in"]),
        buffers_out=figures["buffers_out"],
        bytes_in=figures["bytes_in"],
        bytes_out=figures["bytes_out"],
        total_processing_time=figures["processing_time"],
        last_buffer_time=figures["last_buffer_time"],
        errors=figures["errors"],
        drops=figures["drops"],
        blocked_time=figures["blocked_time"],
        reordered=figures.get("reordered", 0),
        mailbox_depth=host_snap["mailbox_depth"],
        credits_in_use=host_snap["credits_in_use"],
        credits_total=host_snap["credits_total"],
        latency_ms=_ms(statistics.median(lat)) if lat else None,
        latency_p99_ms=_ms(_percentile(lat, 0.99)),
        e2e_latency_ms=_ms(statistics.median(e2e)) if e2e else None,
        e2e_latency_p99_ms=_ms(_percentile(e2e, 0.99)),
        host=host,
        node_id=node_id,
        live=figures.get("live"),
    )
    if previous is not None and dt > 0:
        s.input_fps = (s.buffers_in - previous.buffers_in) / dt
        s.output_fps = (s.buffers_out - previous.buffers_out) / dt
        moved = (s.bytes_in - previous.bytes_in) if is_sink else (s.bytes_out - previous.bytes_out)
        s.throughput_mbps = moved * 8 / MBIT / dt
    elif previous is not None:
        s.input_fps, s.output_fps = previous.input_fps, previous.output_fps
        s.throughput_mbps = previous.throughput_mbps
    return s


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0
