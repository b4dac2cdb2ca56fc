"""Flow control: the signals a source hears and the policies a sender follows.

A *credit window* is the bounded set of items in flight on one edge. The
runtime implements it on Ray; the policies below only see the small
``CreditWindow`` interface, so they can be tested without Ray.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from actors.errors import ConfigError, FlowError

log = logging.getLogger("parallax.flow")

BUSY_FRACTION = 0.8  # Busy once in-flight items reach 80% of the window
OK_FRACTION = 0.2  # Ok again once they fall back to 20%
DROP_LOG_INTERVAL_S = 1.0  # at most one drop warning per second per edge
# The longest single wait anywhere (a source's sleep, a mailbox poll, a credit wait) before
# re-checking stop and abort flags: it bounds how long a stop request goes unheard.
WAIT_SLICE_S = 0.2


class FlowSignal(enum.Enum):
    """What downstream tells a source (names as in the plan)."""

    Ok = "ok"
    Busy = "busy"
    Drop = "drop"
    Eos = "eos"


class CreditWindow(Protocol):
    """The sender side of one edge, as a policy sees it."""

    name: str

    def has_credit(self) -> bool: ...

    def wait_for_credit(self) -> None: ...

    def send(self, item: Any) -> None: ...


@dataclass
class FlowState:
    """Per-edge bookkeeping a policy keeps between calls."""

    drops: int = 0
    consecutive_drops: int = 0
    ring: deque = field(default_factory=deque)
    last_drop_log: float = 0.0
    unlogged_drops: int = 0


class FlowPolicy:
    """What a sender does with an item when the window may be full."""

    def offer(self, item: Any, window: CreditWindow, state: FlowState) -> None:
        raise NotImplementedError

    def pump(self, window: CreditWindow, state: FlowState) -> None:
        """Send whatever the policy holds back, as far as credits allow."""

    def drain(self, window: CreditWindow, state: FlowState) -> None:
        """At EOS: send everything still held back, waiting for credits."""

    def describe(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class Block(FlowPolicy):
    """Wait for a credit. Nothing is lost; the producer slows to the consumer."""

    def offer(self, item: Any, window: CreditWindow, state: FlowState) -> None:
        window.wait_for_credit()
        window.send(item)


@dataclass(frozen=True)
class Drop(FlowPolicy):
    """Drop the item when no credit is free, and count it.

    After ``max_consecutive`` drops in a row the pipeline fails, because a
    consumer that never catches up is a fault, not a load spike.
    """

    log_drops: bool = True
    """Log a warning (at most once per second per edge) while dropping."""
    max_consecutive: int | None = None
    """Drops in a row before the pipeline fails; None never fails."""

    def __post_init__(self) -> None:
        if self.max_consecutive is not None and self.max_consecutive < 0:
            raise ConfigError(
                f"Drop(max_consecutive={self.max_consecutive}): must be >= 0, or None to "
                "never fail; e.g. max_consecutive=30 fails after 1 s of drops at 30 fps"
            )

    def offer(self, item: Any, window: CreditWindow, state: FlowState) -> None:
        if window.has_credit():
            state.consecutive_drops = 0
            window.send(item)
            return
        state.drops += 1
        state.consecutive_drops += 1
        if self.log_drops:
            _log_drop(window, state)
        if self.max_consecutive is not None and state.consecutive_drops >= self.max_consecutive:
            raise FlowError(
                f"dropped {state.consecutive_drops} items in a row on edge {window.name}: "
                "downstream cannot keep up; lower the rate or size, use a faster encoder, "
                "or raise Drop(max_consecutive=...)"
            )

    def describe(self) -> str:
        return f"Drop(max_consecutive={self.max_consecutive})"


@dataclass(frozen=True)
class RingBuffer(FlowPolicy):
    """Keep the newest ``capacity`` items, dropping the oldest; send as credits return."""

    capacity: int = 8
    """Items held back at most, beyond the window."""

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ConfigError(f"RingBuffer(capacity={self.capacity}): capacity must be >= 1")

    def offer(self, item: Any, window: CreditWindow, state: FlowState) -> None:
        if len(state.ring) >= self.capacity:
            state.ring.popleft()
            state.drops += 1
            _log_drop(window, state)
        state.ring.append(item)
        self.pump(window, state)

    def pump(self, window: CreditWindow, state: FlowState) -> None:
        while state.ring and window.has_credit():
            window.send(state.ring.popleft())

    def drain(self, window: CreditWindow, state: FlowState) -> None:
        while state.ring:
            window.wait_for_credit()
            window.send(state.ring.popleft())

    def describe(self) -> str:
        return f"RingBuffer(capacity={self.capacity})"


def _log_drop(window: CreditWindow, state: FlowState) -> None:
    state.unlogged_drops += 1
    now = time.monotonic()
    if now - state.last_drop_log >= DROP_LOG_INTERVAL_S:
        log.warning(
            "edge %s: dropped %d item(s) for lack of credit (%d in total)",
            window.name,
            state.unlogged_drops,
            state.drops,
        )
        state.last_drop_log = now
        state.unlogged_drops = 0


class SignalTracker:
    """Turns in-flight counts into FlowSignal transitions, with hysteresis.

    Busy when in-flight reaches 80% of the window, Ok again only once it
    falls to 20%, so a source does not flap around one threshold.
    """

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ConfigError(f"window must be >= 1, got {window}")
        self.high = max(1, math.ceil(BUSY_FRACTION * window))
        self.low = math.floor(OK_FRACTION * window)
        self.current = FlowSignal.Ok

    def update(self, in_flight: int, dropping: bool = False) -> FlowSignal | None:
        """Return the new signal if it changed, else None."""
        new = self.current
        if dropping:
            new = FlowSignal.Drop
        elif self.current is FlowSignal.Ok and in_flight >= self.high:
            new = FlowSignal.Busy
        elif self.current in (FlowSignal.Busy, FlowSignal.Drop):
            if in_flight <= self.low:
                new = FlowSignal.Ok
            elif self.current is FlowSignal.Drop:
                new = FlowSignal.Busy
        if new is self.current:
            return None
        self.current = new
        return new
