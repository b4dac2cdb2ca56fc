"""VideoRate: constant output frame rate by dropping or repeating frames (GStreamer's videorate)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from actors.element import Transform
from actors.types import MAX_FRAME_RATE, RAW_VIDEO, Caps, Frame, parse_rate


class VideoRate(Transform):
    """Emits one frame per 1/rate seconds: the latest input frame at or before each tick."""

    accepts = (RAW_VIDEO,)

    def __init__(self, rate: Fraction | float) -> None:
        super().__init__()
        self.rate = parse_rate(rate, "fps", MAX_FRAME_RATE)
        self.time_base = 1 / self.rate
        self.next_tick = 0
        self.held: Frame | None = None
        self.origin: Fraction | None = None

    def configure(self, caps_in: Caps | None) -> Caps:
        return caps_in.replace(rate=self.rate, time_base=self.time_base)

    def process(self, frame: Frame) -> list[Frame]:
        t = Fraction(frame.pts or 0) * frame.time_base
        if self.origin is None:
            self.origin = t
        out = []
        # Every tick before this frame's time shows the previously held frame.
        while self.held is not None and self.next_tick * self.time_base + self.origin < t:
            out.append(self._emit(self.held))
        self.held = frame
        return out

    def flush(self) -> list[Frame]:
        if self.held is None:
            return []
        held = self.held
        start = Fraction(held.pts or 0) * held.time_base
        end = start + (held.duration * held.time_base if held.duration else self.time_base)
        out = []
        while self.next_tick * self.time_base + self.origin < end:
            out.append(self._emit(self.held))
        return out

    def _emit(self, frame: Frame) -> Frame:
        tick = self.next_tick
        self.next_tick += 1
        return frame.replace(pts=tick, time_base=self.time_base, duration=1,
                             meta={**frame.meta, "seq": tick})

    def results(self) -> dict[str, Any]:
        return {"frames_out": self.next_tick}
