"""ScreenCaptureSource: a live source grabbing the screen with mss (seed 2.6)."""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from actors.element import Source
from actors.errors import ConfigError, MediaError
from actors.flow import WAIT_SLICE_S, Drop, FlowPolicy
from actors.pacing import DEFAULT_ADAPT, DEFAULT_MAX_STALL_S, LivePacer, check_adapt
from actors.types import EOS, Caps, Frame, parse_rate

log = logging.getLogger("parallax.screen_capture")

MAX_FPS = 240


@dataclass(frozen=True)
class ScreenCaptureSettings:
    monitor: int = 1
    """mss numbering: 1 is the first monitor, 0 the union of all of them."""
    region: tuple[int, int, int, int] | None = None
    """(x, y, width, height) relative to the monitor; None takes the whole monitor."""
    fps: float = 30.0
    duration: float | None = None
    """Seconds to record; None runs until stopped."""
    display: str | None = None
    """X display (":99"); None uses $DISPLAY where the source runs."""
    max_stall: float | None = DEFAULT_MAX_STALL_S
    """Seconds in which downstream finishes nothing (a stall, not a slow encoder, whose
    frames are dropped evenly) before the pipeline fails; None waits forever."""
    adapt: str = DEFAULT_ADAPT
    """Under overload: drop frames evenly (framerate), ask for a smaller size
    (resolution), or neither (off); see actors/pacing.py."""

    def __post_init__(self) -> None:
        if not 0 < self.fps <= MAX_FPS:
            raise ConfigError(f"--fps {self.fps:g}: must be more than 0 and at most {MAX_FPS}")
        if self.monitor < 0:
            raise ConfigError(f"--monitor {self.monitor}: must be 0 (all) or 1, 2, ...")
        if self.region is not None:
            if len(self.region) != 4:
                raise ConfigError(f"--region {self.region}: give X,Y,W,H")
            x, y, w, h = self.region
            if x < 0 or y < 0 or w < 2 or h < 2:
                raise ConfigError(f"--region {x},{y},{w},{h}: X and Y must be >= 0, and W and "
                                  "H at least 2 pixels")
        if self.max_stall is not None and self.max_stall <= 0:
            raise ConfigError(f"--max-stall {self.max_stall:g}: must be more than 0 seconds")
        check_adapt(self.adapt)
        if self.duration is not None and self.duration <= 0:
            raise ConfigError(f"--duration {self.duration:g}: must be > 0 seconds")


class ScreenCaptureSource(Source):
    """Grabs BGRA frames on an absolute schedule (tick k at start + k/fps), so sleeps never
    accumulate drift. Each frame's pts is its tick and its meta holds the capture time.

    When downstream is slower than the capture rate, a LivePacer keeps the share of
    ticks downstream sustains, spread evenly, and skips the others without grabbing them
    (each skip counts as a drop); a stall of ``max_stall`` seconds fails the pipeline.
    """

    live = True

    def __init__(self, settings: ScreenCaptureSettings | None = None, **options: Any) -> None:
        super().__init__()
        self.settings = settings or ScreenCaptureSettings(**options)
        self.sct: Any = None
        self.tick = 0
        self.captured = 0
        self.missed = 0
        self.t0: float | None = None
        self.pacer = LivePacer(self.settings.fps, self.settings.max_stall)

    def flow_policy(self) -> FlowPolicy:
        # The pacer skips captures before they are taken; the policy only drops what
        # still finds no credit, and the pacer's stall bound is the safety net.
        return Drop(log_drops=True, max_consecutive=None)

    def _open(self) -> None:
        import mss
        import mss.exception

        display = self.settings.display or os.environ.get("DISPLAY")
        if sys.platform.startswith("linux") and not display:
            raise MediaError("no X display: set DISPLAY or run under Xvfb "
                             "(e.g. xvfb-run parallax record ...)")
        try:
            factory = getattr(mss, "MSS", None) or mss.mss  # mss 10 renamed the factory
            self.sct = factory(display=display) if sys.platform.startswith("linux") \
                else factory()
        except mss.exception.ScreenShotError as exc:
            raise MediaError(f"cannot open X display {display!r} ({exc}); check DISPLAY, or "
                             "run under Xvfb") from None
        monitors = self.sct.monitors
        m = self.settings.monitor
        if m >= len(monitors):
            raise ConfigError(f"--monitor {m}: this display has monitors 0-{len(monitors) - 1}")
        mon = monitors[m]
        if self.settings.region is None:
            self.box = {"left": mon["left"], "top": mon["top"], "width": mon["width"],
                        "height": mon["height"]}
        else:
            x, y, w, h = self.settings.region
            if x + w > mon["width"] or y + h > mon["height"]:
                raise ConfigError(f"--region {x},{y},{w},{h} does not fit monitor {m} "
                                  f"({mon['width']}x{mon['height']})")
            self.box = {"left": mon["left"] + x, "top": mon["top"] + y, "width": w,
                        "height": h}

    def configure(self, caps_in: Caps | None) -> Caps:
        self._open()
        rate = parse_rate(self.settings.fps, "fps")
        self.time_base = 1 / rate
        return Caps.raw_video("bgra", self.box["width"], self.box["height"], rate,
                              time_base=self.time_base)

    def start(self) -> None:
        if self.sct is None:
            self._open()
        self.t0 = None
        self.pacer = LivePacer(self.settings.fps, self.settings.max_stall, self.name,
                               self.settings.adapt)

    def frames_total(self) -> int | None:
        d = self.settings.duration
        return None if d is None else round(d * self.settings.fps)

    def produce(self) -> Any:
        total = self.frames_total()
        if total is not None and self.tick >= total:
            return EOS
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        due = self.t0 + self.tick / self.settings.fps
        if now < due:
            time.sleep(min(due - now, WAIT_SLICE_S))
            return None
        late = int((now - due) * self.settings.fps)
        if late:  # this host fell behind: skip to the current tick rather than burst
            self.missed += late
            self.tick += late
            self.pacer.missed(late)
        tick = self.tick
        self.tick += 1
        if not self.pacer.admit(tick, self.backlog, now):
            self.counters.drops += 1
            return None
        shot = self.sct.grab(self.box)
        capture_time = time.time()
        data = np.frombuffer(shot.bgra, np.uint8).reshape(shot.height, shot.width, 4)
        self.captured += 1
        meta = {"capture_time": capture_time, "seq": tick}
        if (scale := self.pacer.take_scale()) is not None:
            meta["adapt"] = scale  # the scaler downstream resizes from this frame on
        return Frame(data, "bgra", shot.width, shot.height, pts=tick,
                     time_base=self.time_base, duration=1, meta=meta)

    def close(self, ok: bool) -> None:
        if self.sct is not None:
            self.sct.close()
            self.sct = None

    def live_status(self) -> dict[str, Any] | None:
        return self.pacer.status()

    def results(self) -> dict[str, Any]:
        # The pacer counts every tick not captured; those it chose are the rest of them.
        skipped = self.pacer.skipped - self.missed
        return {"captured": self.captured, "skipped": skipped, "missed": self.missed,
                "ticks": self.tick, **self.pacer.report()}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["sct"] = None
        return state
