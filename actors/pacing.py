"""LivePacer: which ticks a live source keeps when downstream is slower than its rate.

A live source (screen capture, a live test pattern) cannot slow time down, so when the
encoder sustains 16 fps under a 30 fps capture some captures must go. Skipping every
capture while the edge is Busy drops them in bursts: a freeze of a second, then a burst.
The pacer instead measures what downstream delivers (credits returned per second, as
the runtime reports them in a ``Backlog``) and keeps that share of the ticks, spread
evenly (an accumulator, as a line-drawing algorithm spreads steps), so the recording
plays smoothly at the lower rate; it climbs back when downstream catches up. A stall
(downstream finishes nothing: a hiccup, a restarted element) is not an overload: the
full window holds the ticks back while it lasts, and the rate from before it resumes.

It also bounds a real stall: time in which downstream finished nothing although items
were waiting for it, which a slow but moving encoder never triggers.

What to give up under overload is the user's choice, as WebRTC's degradation preference:
``framerate`` (the default) keeps the size and drops frames evenly as above;
``resolution`` keeps the frame rate and asks for a smaller picture (a step down the size
ladder, carried to the scaler on the next frame, ``meta["adapt"]``) when a quarter of the
window is in flight, and steps back up after the window has stayed nearly empty a while (a
probe that fails doubles the wait before the next one); frames are still paced as a
safety net; ``off`` neither paces nor adapts: what finds no credit is dropped.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from actors.errors import ConfigError, FlowError

log = logging.getLogger("parallax.pacing")

DEFAULT_MAX_STALL_S = 5.0
MEASURE_PERIOD_S = 0.5  # how often the kept share follows the measured delivery
MIN_KEEP = 0.02  # the share kept while downstream delivers nothing (a probe, not a flood)
HIGH_FRACTION = 0.75  # pacing starts when this share of the window is in flight
OVERLOAD_AT = 0.95  # a kept share below this is an overload worth one warning
ADAPT_MODES = ("framerate", "resolution", "off")
DEFAULT_ADAPT = "framerate"
SIZE_LADDER = (1.0, 0.75, 0.5, 0.375, 0.25)  # fractions of the configured output size
ADAPT_DOWN_AT = 0.25  # share of the window in flight that asks for a smaller size
ADAPT_UP_BELOW = 0.125  # ... and below which the window counts as idle
ADAPT_SETTLE_S = 0.75  # after a change, how long before the next step down
ADAPT_PROBE_S = 3.0  # idle time before a step back up; doubles after a failed probe
ADAPT_PROBE_MAX_S = 30.0


def check_adapt(mode: str) -> str:
    if mode not in ADAPT_MODES:
        raise ConfigError(f"--adapt {mode!r}: use one of {', '.join(ADAPT_MODES)}")
    return mode


@dataclass
class Backlog:
    """A source's view of its fullest output edge, kept current by the runtime."""

    window: int = 0
    """Credits of that edge; 0 until the runtime has said."""
    in_flight: int = 0
    """Items sent and not yet finished downstream."""
    completed: int = 0
    """Items downstream has finished (credits returned) since the start."""


class LivePacer:
    """Decides, tick by tick, whether a live source captures (see the module's text)."""

    def __init__(self, fps: float, max_stall: float | None = DEFAULT_MAX_STALL_S,
                 name: str = "source", adapt: str = DEFAULT_ADAPT) -> None:
        if max_stall is not None and max_stall <= 0:
            raise ConfigError(f"--max-stall {max_stall:g}: must be more than 0 seconds")
        self.adapt = check_adapt(adapt)
        self.level = 0  # the step of SIZE_LADDER asked for
        self.changes: list[dict[str, float]] = []
        """Each size change: when (seconds of capture) and the fraction of the size."""
        self._pending_scale: float | None = None
        self._changed_at: float | None = None
        self._idle_since: float | None = None
        self._probe_s = ADAPT_PROBE_S
        self._t0: float | None = None
        self.fps = float(fps)
        self.max_stall = max_stall
        self.name = name
        self.keep = 1.0
        self.capacity = 0.0
        """The share of ticks downstream last took while saturated (0: not measured)."""
        self._acc = 0.0
        self._mark: tuple[float, int] | None = None  # (time, completed) of the last update
        self._stalled = False  # the last period finished nothing while items waited
        self._undo: tuple[float, float] | None = None  # (keep, capacity) before the
        # last saturated measurement, in case it measured a stall's start
        self._progress_at: float | None = None
        self._last_completed = 0
        self._last_kept_tick: int | None = None
        self.kept = 0
        self.skipped = 0
        self.longest_gap = 0
        """Most ticks between two kept captures (1 when none was skipped)."""
        self.lowest_keep = 1.0
        self.warned = False

    def admit(self, tick: int, backlog: Backlog, now: float) -> bool:
        """Whether to capture ``tick``; call once per tick, in order."""
        if self._t0 is None:
            self._t0 = now
        if self.adapt != "off":
            self._follow(backlog, now)
        if self.adapt == "resolution":
            self._adapt_size(backlog, now)
        self._check_stall(backlog, now)
        self._acc = min(self._acc + self.keep, 1.0 + self.keep)
        full = backlog.window and backlog.in_flight >= backlog.window
        if self._acc < 1.0 or full:
            self.skipped += 1
            return False
        self._acc -= 1.0
        if self._last_kept_tick is not None:
            self.longest_gap = max(self.longest_gap, tick - self._last_kept_tick)
        self._last_kept_tick = tick
        self.kept += 1
        return True

    def _follow(self, backlog: Backlog, now: float) -> None:
        """Every MEASURE_PERIOD_S: while the window has room, keep every tick (a drop costs
        more than a few frames of latency); once it is three-quarters full, keep the share
        downstream delivered, less what drains the excess, so the window never fills and
        the kept ticks stay evenly spread."""
        if self._mark is None:
            self._mark = (now, backlog.completed)
            return
        t, done = self._mark
        if now - t < MEASURE_PERIOD_S or not backlog.window:
            return
        high = max(1, math.ceil(HIGH_FRACTION * backlog.window))
        delivered = (backlog.completed - done) / (now - t) / self.fps
        if (delivered <= 0 and backlog.in_flight) or self._stalled:
            # A warm-up, a stall or a restart downstream (items waited, none finished)
            # says nothing about what it can take, and nor do the periods in which it
            # starts and ends (they measure a fraction of the real rate); a full window
            # holds the ticks back meanwhile. The share from before stays, so that the
            # stream resumes at its rate once there is room, instead of climbing back
            # over seconds.
            stalled = delivered <= 0 and backlog.in_flight > 0
            if stalled and self._undo is not None:
                self.keep, self.capacity = self._undo
            self._undo = None
            self._stalled = stalled
            self._mark = (now, backlog.completed)
            return
        self._confirm()
        if backlog.in_flight >= high:
            # Saturated: what it delivered is what it can take.
            self._undo = (self.keep, self.capacity)
            self.capacity = delivered
            share = delivered * (1.0 - (backlog.in_flight - high) / backlog.window)
        else:
            # Room again: at least what it last took, then climb towards every tick.
            self._undo = None
            share = max(self.keep * 1.25 + 0.05, self.capacity * 1.05)
        self.keep = min(1.0, max(MIN_KEEP, share))
        self._mark = (now, backlog.completed)

    def _confirm(self) -> None:
        """The share set a period ago stands once the next period delivered something (a
        stall's first period does not count): only then is it an overload."""
        self.lowest_keep = min(self.lowest_keep, self.keep)
        if self.keep < OVERLOAD_AT and not self.warned:
            self.warned = True
            log.warning("%s: encoding overloaded: downstream keeps up with about %.0f of %g "
                        "fps, so frames are dropped evenly; lower --fps or the size, or use "
                        "a faster --preset or --encoder", self.name, self.keep * self.fps,
                        self.fps)

    def take_scale(self) -> float | None:
        """The size to ask the scaler for, once, when it changed (else None)."""
        scale, self._pending_scale = self._pending_scale, None
        return scale

    def _adapt_size(self, backlog: Backlog, now: float) -> None:
        if not backlog.window:
            return
        settled = self._changed_at is None or now - self._changed_at >= ADAPT_SETTLE_S
        if backlog.in_flight >= max(2, ADAPT_DOWN_AT * backlog.window):
            self._idle_since = None
            if settled and self.level < len(SIZE_LADDER) - 1:
                probing = (self.changes and self.changes[-1]["scale"] > self._scale_at(-2)
                           and now - self._changed_at < ADAPT_PROBE_S)
                if probing:  # the step up did not hold: wait longer before the next one
                    self._probe_s = min(ADAPT_PROBE_MAX_S, self._probe_s * 2)
                self._step(self.level + 1, now, "downstream cannot keep up")
        elif backlog.in_flight <= ADAPT_UP_BELOW * backlog.window:
            if self._idle_since is None:
                self._idle_since = now
            if self.level > 0 and now - self._idle_since >= self._probe_s and settled:
                self._step(self.level - 1, now, "there is room again")
                self._idle_since = None
        else:
            self._idle_since = None

    def _scale_at(self, index: int) -> float:
        return self.changes[index]["scale"] if len(self.changes) >= -index else 1.0

    def _step(self, level: int, now: float, why: str) -> None:
        self.level = level
        self._pending_scale = SIZE_LADDER[level]
        self._changed_at = now
        self.changes.append({"at_s": round(now - (self._t0 or now), 3),
                             "scale": SIZE_LADDER[level]})
        log.warning("%s: %s: encoding at %g of the size from now on (--adapt resolution)",
                    self.name, why, SIZE_LADDER[level])

    def _check_stall(self, backlog: Backlog, now: float) -> None:
        if backlog.completed != self._last_completed or backlog.in_flight == 0 \
                or self._progress_at is None:
            self._progress_at = now
            self._last_completed = backlog.completed
            return
        stalled = now - self._progress_at
        if self.max_stall is not None and stalled > self.max_stall:
            raise FlowError(
                f"downstream finished nothing for {stalled:.1f} s (--max-stall "
                f"{self.max_stall:g}); {self.kept} frames were captured before it stopped; "
                "check the encoder and the output, or raise --max-stall")

    def missed(self, ticks: int) -> None:
        """Ticks the source itself fell behind on (its host was starved): dropped too."""
        self.skipped += ticks

    def status(self) -> dict[str, Any]:
        """The report's figures for the live table, and the size asked for now."""
        r = self.report()
        return {k: r[k] for k in ("requested_fps", "kept_fps", "dropped_pct",
                                  "longest_freeze_s")} | {"scale": SIZE_LADDER[self.level]}

    def report(self) -> dict[str, Any]:
        """Requested and kept rates (kept per second of capture), the drop share and the
        longest freeze."""
        ticks = self.kept + self.skipped
        return {"requested_fps": self.fps,
                "kept_fps": round(self.kept * self.fps / ticks, 2) if ticks else 0.0,
                "dropped_pct": round(100 * self.skipped / ticks, 1) if ticks else 0.0,
                "longest_freeze_s": round(self.longest_gap / self.fps, 3),
                "lowest_keep": round(self.lowest_keep, 3), "adapt": self.adapt,
                "resolution_changes": list(self.changes)}
