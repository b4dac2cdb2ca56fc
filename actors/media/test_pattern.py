"""TestPatternSource: synthetic video, like GStreamer's videotestsrc.

Patterns are drawn in numpy; conversion to yuv420p goes through swscale
(PyAV's ``reformat``), so the colours match what FFmpeg would produce.
Static patterns are drawn once and the same read-only array is sent each
frame. With ``timecode=True`` each frame carries its index as a strip of
black/white blocks in the top-left corner, which survives encoding and lets a
test tell which frames arrived.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from actors.element import Source
from actors.errors import ConfigError
from actors.flow import Block, Drop, FlowPolicy
from actors.pacing import DEFAULT_ADAPT, DEFAULT_MAX_STALL_S, LivePacer, check_adapt
from actors.types import (
    EOS,
    MAX_DIMENSION,
    MAX_FRAME_RATE,
    SUBSAMPLED_FORMATS,
    Caps,
    Frame,
    parse_rate,
)

PATTERNS = ("smpte", "ball", "gradient", "snow", "checkers", "solid")
STATIC_PATTERNS = frozenset({"smpte", "checkers", "solid"})
FORMATS = ("rgba", "yuv420p")
DEFAULT_WIDTH = 1280  # pixels
DEFAULT_HEIGHT = 720  # pixels
DEFAULT_RATE = Fraction(30)  # frames per second
TIMECODE_BITS = 16
TIMECODE_BLOCK = 16  # pixels per timecode bit; large enough to survive lossy encoding

# SMPTE 75% colour bars, left to right: white, yellow, cyan, green, magenta, red, blue.
SMPTE_BARS = np.array(
    [[191, 191, 191], [191, 191, 0], [0, 191, 191], [0, 191, 0],
     [191, 0, 191], [191, 0, 0], [0, 0, 191]], dtype=np.uint8)


@dataclass(frozen=True)
class TestPatternSettings:
    __test__ = False

    pattern: str = "smpte"
    """One of smpte, ball (moves), gradient (scrolls), snow (noise), checkers, solid."""
    width: int = DEFAULT_WIDTH
    height: int = DEFAULT_HEIGHT
    rate: Fraction = DEFAULT_RATE
    """Frames per second; any positive rational, e.g. Fraction(30000, 1001)."""
    num_frames: int | None = None
    """Frames to produce; None with no duration runs until stopped."""
    duration: float | None = None
    """Seconds to produce, as an alternative to num_frames."""
    live: bool = False
    """Pace frames at ``rate`` in real time; when downstream is slower, keep the share of
    frames it sustains, evenly spread (see actors/pacing.py)."""
    max_stall: float | None = DEFAULT_MAX_STALL_S
    """Live only: seconds in which downstream finishes nothing before the run fails."""
    adapt: str = DEFAULT_ADAPT
    """Live only, under overload: drop frames evenly (framerate), ask for a smaller size
    (resolution), or neither (off); see actors/pacing.py."""
    format: str = "yuv420p"
    """Pixel format out: rgba or yuv420p."""
    timecode: bool = False
    """Draw the frame index as a block strip in the top-left corner."""
    color: tuple[int, int, int] = (0, 128, 255)
    """RGB of the solid pattern."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", parse_rate(self.rate, "rate", MAX_FRAME_RATE))
        check_adapt(self.adapt)
        if self.pattern not in PATTERNS:
            raise ConfigError(f"unknown pattern {self.pattern!r}; use one of {', '.join(PATTERNS)}")
        if self.format not in FORMATS:
            raise ConfigError(f"unknown format {self.format!r}; use one of {', '.join(FORMATS)}")
        for label, v in (("width", self.width), ("height", self.height)):
            if not isinstance(v, int) or not 2 <= v <= MAX_DIMENSION:
                raise ConfigError(f"{label}={v!r}: must be an integer from 2 to {MAX_DIMENSION}")
        if self.format in SUBSAMPLED_FORMATS and (self.width % 2 or self.height % 2):
            raise ConfigError(
                f"{self.format} needs an even width and height, got {self.width}x{self.height}; "
                f"use {self.width + self.width % 2}x{self.height + self.height % 2} or format=rgba"
            )
        if self.num_frames is not None and self.num_frames < 1:
            raise ConfigError(f"num_frames={self.num_frames}: must be 1 or more; leave it "
                              "out for a stream that runs until stopped")
        if self.duration is not None and not 0 < self.duration < math.inf:  # nan too
            raise ConfigError(f"duration={self.duration}: must be a number of seconds > 0; "
                              "leave it out for a stream that runs until stopped")
        if self.num_frames is not None and self.duration is not None:
            raise ConfigError("give num_frames or duration, not both")

    @property
    def total(self) -> int | None:
        if self.num_frames is not None:
            return self.num_frames
        if self.duration is not None:
            return round(self.duration * self.rate)
        return None


class TestPatternSource(Source):
    """Synthetic frames of any size, rate and length, paced live or as fast as possible."""

    __test__ = False

    def __init__(self, settings: TestPatternSettings | None = None, **options: Any) -> None:
        super().__init__()
        self.settings = settings or TestPatternSettings(**options)
        s = self.settings
        self.time_base = Fraction(1) / s.rate
        self.index = 0
        self._t0: float | None = None
        self._static: np.ndarray | None = None
        self._rng = np.random.default_rng(0)
        self.pacer = LivePacer(float(s.rate), s.max_stall)

    def configure(self, caps_in: Caps | None) -> Caps:
        s = self.settings
        return Caps.raw_video(s.format, s.width, s.height, s.rate)

    def flow_policy(self) -> FlowPolicy:
        # One second of frames in a row without credit means the pipeline cannot keep up.
        if self.settings.live:
            return Drop(log_drops=True, max_consecutive=None)
        return Block()

    @property
    def live(self) -> bool:  # type: ignore[override]
        return self.settings.live

    def frames_total(self) -> int | None:
        return self.settings.total

    def start(self) -> None:
        self.pacer = LivePacer(float(self.settings.rate), self.settings.max_stall, self.name,
                               self.settings.adapt)

    def results(self) -> dict[str, Any]:
        return self.pacer.report() if self.settings.live else {}

    def live_status(self) -> dict[str, Any] | None:
        return self.pacer.status() if self.settings.live else None

    def produce(self) -> Any:
        s = self.settings
        total = s.total
        if total is not None and self.index >= total:
            return EOS
        if s.live:
            self._pace()
            if total is not None and self.index >= total:
                return EOS
        n = self.index
        self.index += 1
        if s.live and not self.pacer.admit(n, self.backlog, time.monotonic()):
            self.counters.drops += 1  # a skipped tick: its frame is never drawn
            return None
        data = self.render(n)
        meta = {"seq": n, "capture_time": time.time()}
        if s.live and (scale := self.pacer.take_scale()) is not None:
            meta["adapt"] = scale  # the scaler downstream resizes from this frame on
        return Frame(data, s.format, s.width, s.height, pts=n, time_base=self.time_base,
                     duration=1, meta=meta)

    def _pace(self) -> None:
        """Sleep to an absolute schedule; if more than a frame late, skip ahead (live)."""
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        due = self._t0 + float(self.index / self.settings.rate)
        if due > now:
            time.sleep(due - now)
        elif now - due > float(self.time_base):
            behind = int((now - self._t0) * self.settings.rate)
            self.counters.drops += behind - self.index
            self.pacer.missed(behind - self.index)
            self.index = behind

    # -- drawing --------------------------------------------------------------
    def render(self, n: int) -> np.ndarray:
        """Frame n as an array in the output format."""
        s = self.settings
        if s.pattern in STATIC_PATTERNS:
            if self._static is None:
                self._static = self._finish(self._draw(0))
                self._static.flags.writeable = False
            if not s.timecode:
                return self._static
            frame = self._static.copy()
        else:
            frame = self._finish(self._draw(n))
        if s.timecode:
            if s.format == "rgba":
                draw_timecode(frame[..., :3], n)
            else:  # the Y plane, in limited range
                draw_timecode(frame[: s.height], n, high=235, low=16)
        return frame

    def _draw(self, n: int) -> np.ndarray:
        """An RGB (h, w, 3) uint8 image of frame n."""
        s = self.settings
        w, h = s.width, s.height
        if s.pattern == "smpte":
            cols = (np.arange(w) * len(SMPTE_BARS)) // w
            return np.broadcast_to(SMPTE_BARS[cols], (h, w, 3)).copy()
        if s.pattern == "solid":
            return np.broadcast_to(np.array(s.color, np.uint8), (h, w, 3)).copy()
        if s.pattern == "checkers":
            y, x = np.indices((h, w))
            return np.repeat((((x // 8 + y // 8) % 2) * 255).astype(np.uint8)[..., None], 3, 2)
        if s.pattern == "snow":
            return self._rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if s.pattern == "gradient":
            ramp = ((np.arange(w) + 4 * n) % w * 255 // max(1, w - 1)).astype(np.uint8)
            return np.broadcast_to(ramp[None, :, None], (h, w, 3)).copy()
        return self._ball(n)

    def _ball(self, n: int) -> np.ndarray:
        s = self.settings
        w, h = s.width, s.height
        img = np.zeros((h, w, 3), np.uint8)
        r = max(2, min(w, h) // 10)
        # Bounce: a triangle wave in each direction, at different speeds.
        cx = r + _bounce(n * 7, max(1, w - 2 * r))
        cy = r + _bounce(n * 5, max(1, h - 2 * r))
        y0, y1, x0, x1 = max(0, cy - r), min(h, cy + r), max(0, cx - r), min(w, cx + r)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        img[y0:y1, x0:x1][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 255
        return img

    def _finish(self, rgb: np.ndarray) -> np.ndarray:
        if self.settings.format == "rgba":
            out = np.empty((*rgb.shape[:2], 4), np.uint8)
            out[..., :3] = rgb
            out[..., 3] = 255
            return out
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        return frame.reformat(format="yuv420p").to_ndarray()


def _bounce(x: int, span: int) -> int:
    x %= 2 * span
    return x if x < span else 2 * span - x


def draw_timecode(plane: np.ndarray, n: int, high: int = 255, low: int = 0) -> None:
    """Write n as TIMECODE_BITS black/white blocks along the top-left edge (in place)."""
    bits = min(TIMECODE_BITS, plane.shape[1] // TIMECODE_BLOCK)
    b = TIMECODE_BLOCK
    for i in range(bits):
        plane[: min(b, plane.shape[0]), i * b:(i + 1) * b] = high if (n >> i) & 1 else low


def read_timecode(luma_or_rgb: np.ndarray) -> int:
    """Read back the frame index drawn by ``draw_timecode`` (from RGB(A) or the Y plane)."""
    plane = luma_or_rgb if luma_or_rgb.ndim == 2 else luma_or_rgb[..., 0]
    b = TIMECODE_BLOCK
    bits = min(TIMECODE_BITS, plane.shape[1] // b)
    value = 0
    for i in range(bits):
        block = plane[b // 4: 3 * b // 4, i * b + b // 4: i * b + 3 * b // 4]
        if block.mean() > 128:
            value |= 1 << i
    return value
