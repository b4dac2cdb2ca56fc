"""ScreenCaptureSource: a live source grabbing the screen with mss (seed 2.6)."""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from actors.element import Source
from actors.errors import ConfigError, FlowError, MediaError
from actors.flow import WAIT_SLICE_S, Drop, FlowPolicy, FlowSignal
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
    fail_after: float | None = 1.0
    """Seconds of consecutive drops or skipped captures before the pipeline fails;
    None keeps recording whatever is lost."""

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
        if self.fail_after is not None and self.fail_after <= 0:
            raise ConfigError(f"fail_after={self.fail_after:g}: must be > 0 seconds, or None")
        if self.duration is not None and self.duration <= 0:
            raise ConfigError(f"--duration {self.duration:g}: must be > 0 seconds")


class ScreenCaptureSource(Source):
    """Grabs BGRA frames on an absolute schedule (tick k at start + k/fps), so sleeps never
    accumulate drift. Each frame's pts is its tick and its meta holds the capture time.

    While downstream is Busy the source skips captures instead of grabbing frames only to
    drop them; a skip counts as a drop, and a second of them in a row fails the pipeline.
    """

    def __init__(self, settings: ScreenCaptureSettings | None = None, **options: Any) -> None:
        super().__init__()
        self.settings = settings or ScreenCaptureSettings(**options)
        self.sct: Any = None
        self.tick = 0
        self.captured = 0
        self.skipped = 0
        self.missed = 0
        self.consecutive_skips = 0
        self.t0: float | None = None

    @property
    def max_consecutive(self) -> int | None:
        after = self.settings.fail_after
        return None if after is None else max(1, math.ceil(self.settings.fps * after))

    def flow_policy(self) -> FlowPolicy:
        return Drop(log_drops=True, max_consecutive=self.max_consecutive)

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
        tick = self.tick
        self.tick += 1
        if self.flow_signal is FlowSignal.Busy:
            self._skip()
            return None
        self.consecutive_skips = 0
        shot = self.sct.grab(self.box)
        capture_time = time.time()
        data = np.frombuffer(shot.bgra, np.uint8).reshape(shot.height, shot.width, 4)
        self.captured += 1
        return Frame(data, "bgra", shot.width, shot.height, pts=tick,
                     time_base=self.time_base, duration=1,
                     meta={"capture_time": capture_time, "seq": tick})

    def _skip(self) -> None:
        self.skipped += 1
        self.counters.drops += 1
        self.consecutive_skips += 1
        limit = self.max_consecutive
        if limit is not None and self.consecutive_skips >= limit:
            raise FlowError(
                f"skipped {self.consecutive_skips} captures in a row "
                f"({self.settings.fail_after:g} s) because downstream "
                "stayed busy: it cannot keep up; lower --fps or the size, or use a faster "
                "encoder or preset")

    def close(self, ok: bool) -> None:
        if self.sct is not None:
            self.sct.close()
            self.sct = None

    def results(self) -> dict[str, Any]:
        return {"captured": self.captured, "skipped": self.skipped, "missed": self.missed,
                "ticks": self.tick}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["sct"] = None
        return state
