"""Element base classes: Source, Transform and Sink.

An element is a plain Python class. The base class owns the public entry
points and the bookkeeping (counters, timing, flow signals, caps checks); a
subclass writes only the media work in ``configure``, ``process``, ``flush``
and, for sources, ``produce``. The runtime (``pipelines``) hosts elements in
Ray actors, but nothing here knows about Ray, so an element can be tested by
calling it directly.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from actors.errors import CapsError, ParallaxError
from actors.flow import Block, FlowPolicy, FlowSignal
from actors.pacing import Backlog
from actors.types import (
    ANY,
    ENCODED_VIDEO,
    EOS,
    MAIN_PAD,
    RAW_VIDEO,
    Caps,
    Pads,
    item_frames,
    item_nbytes,
)

LATENCY_SAMPLES = 512  # recent per-item latencies kept for percentiles


@dataclass
class Counters:
    """Raw, monotonically growing figures of one element; stats derive from these."""

    buffers_in: int = 0
    buffers_out: int = 0
    frames_in: int = 0
    """Video frames the input items stood for (segments and chunks hold many)."""
    bytes_in: int = 0
    bytes_out: int = 0
    processing_time: float = 0.0
    """Seconds spent inside process/flush/produce."""
    blocked_time: float = 0.0
    """Seconds a source spent waiting for credits."""
    last_buffer_time: float | None = None
    """Wall-clock time (time.time) of the last buffer in or out."""
    errors: int = 0
    drops: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    """Recent per-item latencies in seconds: arrival at the host to release."""
    e2e_latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    """Recent capture-to-here latencies in seconds, for items carrying meta['capture_time']."""

    def count_out(self, items: list[Any]) -> None:
        self.buffers_out += len(items)
        self.bytes_out += sum(item_nbytes(i) for i in items)
        if items:
            self.last_buffer_time = time.time()


@dataclass(frozen=True)
class Placement:
    """Where an element's host may run: Ray resources and node labels."""

    resources: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources, e.g. {"parallax.encoder.nvenc": 1}."""
    label_selector: dict[str, str] = field(default_factory=dict)
    """Node labels that must match, e.g. {"parallax.encoder.nvenc": "true"}."""
    num_cpus: float = 0
    """CPUs to reserve; 0 so that a small node can still host a whole pipeline."""
    num_gpus: float = 0
    node: str | None = None
    """Pin to one node: a Ray node id, or "driver" for the node of the process that runs
    the pipeline (where its input files are, and where outputs should land)."""

    def key(self) -> tuple:
        """Hashable identity: elements with equal keys may share (fuse into) one host."""
        return (
            tuple(sorted(self.resources.items())),
            tuple(sorted(self.label_selector.items())),
            self.num_cpus,
            self.num_gpus,
            self.node,
        )


class Element:
    """Base of every element. Subclasses override the hooks, not the ``handle_*`` methods."""

    accepts: ClassVar[tuple[str, ...]] = (ANY,)
    """Caps kinds this element takes on its input (ANY takes anything)."""
    input_pads: ClassVar[bool] = False
    """True for an element that tells its inputs apart (a muxer taking video and audio):
    the runtime calls ``configure_pads``/``process_pad``/``end_pad`` instead of
    ``configure``/``process``. Inputs are named by the link (``Pipeline.link(into=)``)."""

    def __init__(self) -> None:
        self.name: str = type(self).__name__.lower()
        self.counters = Counters()
        self.caps_in: Caps | None = None
        self.caps_out: Caps | None = None

    # -- hooks for subclasses -------------------------------------------------
    def configure(self, caps_in: Caps | None) -> Caps | Pads:
        """Check the input caps and return the output caps (``Pads`` for several outputs).
        Called once, at READY."""
        return caps_in if caps_in is not None else Caps.any()

    def configure_pads(self, inputs: dict[str, Caps]) -> Caps | Pads:
        """``configure`` for an element with ``input_pads``: input pad name -> caps."""
        return self.configure(inputs.get(MAIN_PAD))

    def process_pad(self, pad: str, item: Any) -> Iterable[Any] | None:
        """``process`` for an element with ``input_pads``: one item from input ``pad``."""
        return self.process(item)

    def end_pad(self, pad: str) -> Iterable[Any] | None:
        """One input pad reached its end while others go on (``input_pads`` elements)."""
        return ()

    def start(self) -> None:
        """Acquire resources (files, devices). Called in the host before data flows."""

    def process(self, item: Any) -> Iterable[Any] | None:
        """Turn one input item into zero or more output items."""
        return (item,)

    def flush(self) -> Iterable[Any] | None:
        """Emit what is still buffered, at end of stream."""
        return ()

    def close(self, ok: bool) -> None:
        """Release resources. ``ok`` is False when the pipeline failed or was aborted."""

    def results(self) -> Any:
        """What the driver can ask of this element (``Pipeline.results(name)``)."""
        return None

    def salvage(self) -> str | None:
        """Run in the driver, on its own copy of the element, after a failed or aborted
        run: finish what ``close`` could not if this element's process died (an output
        left half-written). Returns what it did, for the user, or None. Must be safe to
        call when ``close`` did run."""
        return None

    def restarted(self) -> None:
        """Called in a replacement host, before ``start``, when this element's previous
        process died mid-stream (a restart policy): pick up what that instance left on
        disk (a playlist to continue, a file to append to). The caps are those it had."""

    def discontinuity(self) -> Iterable[Any] | None:
        """An element upstream was replaced: what comes next does not continue what came
        before (new timestamps, a new keyframe). Return items to send on, as ``flush``
        does (a muxer ends its fragment). The signal itself is passed on by the runtime."""
        return ()

    def request_keyframe(self) -> None:
        """An element downstream was replaced and can only start at a keyframe (as
        GStreamer's force-key-unit event asks). Encoders make their next frame one; other
        elements have nothing to do. Called from another thread than ``process``: set a
        flag, do the work there."""

    def ready_timeout(self) -> float:
        """Seconds ``configure`` may legitimately wait (a network source looking for its
        publisher); the runtime's negotiation waits that much longer."""
        return 0.0

    def placement(self) -> Placement | None:
        """Default placement of this element; ``Pipeline.add(placement=...)`` overrides it."""
        return None

    # -- bookkeeping, called by the runtime -----------------------------------
    def negotiate(self, caps_in: list[Caps], upstream: list[str],
                  pads: list[str] | None = None) -> Caps | Pads:
        """Check every input against ``accepts``, then ``configure``.

        ``pads`` names the input pad of each input (``MAIN_PAD`` when not given); inputs
        on one pad are a fan-in and need identical caps.
        """
        pads = pads or [MAIN_PAD] * len(caps_in)
        for caps, peer in zip(caps_in, upstream):
            if ANY not in self.accepts and caps.kind not in self.accepts:
                raise CapsError(
                    f"cannot link '{peer}' -> '{self.name}': '{self.name}' accepts "
                    f"{' or '.join(self.accepts)}, but '{peer}' produces {caps.describe()}"
                    f"{_link_hint(caps.kind, self.accepts)}"
                )
        by_pad: dict[str, Caps] = {}
        for caps, pad in zip(caps_in, pads):
            if pad in by_pad and by_pad[pad] != caps:
                same = [(c, p) for c, p, q in zip(caps_in, upstream, pads) if q == pad]
                listed = "; ".join(f"{p}: {c.describe()}" for c, p in same)
                raise CapsError(
                    f"'{self.name}' joins {len(same)} inputs with different caps ({listed}); "
                    "fan-in needs identical caps, so convert the inputs to one format first"
                )
            by_pad.setdefault(pad, caps)
        if len(by_pad) > 1 and not self.input_pads:
            raise CapsError(f"'{self.name}' has one input, but is linked into pads "
                            f"{', '.join(sorted(by_pad))}")
        first = caps_in[0] if caps_in else None
        try:
            caps_out = self.configure_pads(by_pad) if self.input_pads else self.configure(first)
        except ParallaxError:
            raise
        except (ValueError, TypeError) as exc:
            if not caps_in:
                raise
            raise CapsError(f"'{self.name}' cannot take {first.describe()}: {exc}") from exc
        self.caps_in = by_pad.get(MAIN_PAD, first)
        self.caps_out = caps_out
        return caps_out

    def handle(self, item: Any, latency: float | None = None, pad: str = MAIN_PAD) -> list[Any]:
        """Process one item (from input ``pad``), counting it. Returns the output items."""
        c = self.counters
        c.buffers_in += 1
        c.frames_in += item_frames(item)
        c.bytes_in += item_nbytes(item)
        c.last_buffer_time = time.time()
        meta = getattr(item, "meta", None)
        if meta and "capture_time" in meta:
            c.e2e_latencies.append(c.last_buffer_time - meta["capture_time"])
        t0 = time.perf_counter()
        out = list((self.process_pad(pad, item) if self.input_pads else self.process(item))
                   or ())
        c.processing_time += time.perf_counter() - t0
        if latency is not None:
            c.latencies.append(latency + time.perf_counter() - t0)
        c.count_out(out)
        return out

    def handle_eos(self, pad: str | None = None) -> list[Any]:
        """Flush at end of stream (or, with ``pad``, at the end of that input only).
        Returns the flushed items (EOS itself is added by the host)."""
        t0 = time.perf_counter()
        flushed = self.flush() if pad is None else self.end_pad(pad)
        out = [i for i in (flushed or ()) if i is not EOS]
        self.counters.processing_time += time.perf_counter() - t0
        self.counters.count_out(out)
        return out


class Source(Element):
    """An element with no input that produces items."""

    accepts: ClassVar[tuple[str, ...]] = ()
    live: bool = False
    """Produces in real time (a capture, a network stream): what it missed cannot be had
    again, so its outputs are written to survive a failure (fragmented MP4)."""
    consumers: int = 1
    """How many consumers take this source's items at once: the replicas of the pool it
    feeds, as the runtime set them before ``start``. A source that cuts its input into
    pieces may size the last ones by it, so that the consumers finish together."""

    def __init__(self) -> None:
        super().__init__()
        self.flow_signal = FlowSignal.Ok
        self.backlog = Backlog()
        """The fullest output edge as the runtime last saw it (live sources pace by it)."""

    def produce(self) -> Any:
        """Return the next item, None when there is nothing this time, or EOS at the end."""
        raise NotImplementedError

    def flow_policy(self) -> FlowPolicy:
        """What to do when downstream has no credit. File-like sources block."""
        return Block()

    def handle_flow_signal(self, signal: FlowSignal) -> None:
        """Called on every FlowSignal transition. Live sources may skip work while Busy."""
        self.flow_signal = signal

    def frames_total(self) -> int | None:
        """Items this source will produce, if known (for progress and ETA)."""
        return None

    def live_status(self) -> dict[str, Any] | None:
        """How a live source keeps up, for the live table (polled once a second): None
        for a source that is not live or has nothing to say."""
        return None

    def handle_produce(self) -> Any:
        t0 = time.perf_counter()
        item = self.produce()
        self.counters.processing_time += time.perf_counter() - t0
        if item is not None and item is not EOS:
            self.counters.count_out([item])
        return item


class Transform(Element):
    """An element with inputs and outputs (scaler, encoder, muxer...)."""


class Sink(Element):
    """An element with inputs only. ``process`` returns nothing."""

    def process(self, item: Any) -> Iterable[Any] | None:
        return ()


def _link_hint(kind: str, accepts: tuple[str, ...]) -> str:
    if kind == RAW_VIDEO and ENCODED_VIDEO in accepts:
        return "; insert a VideoEncoder between them"
    if kind == ENCODED_VIDEO and RAW_VIDEO in accepts:
        return "; insert a decoder between them"
    return ""
