"""VideoScaler: resize and convert pixel formats in one swscale pass (via PyAV)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from actors.element import Transform
from actors.errors import ConfigError
from actors.types import (
    MAX_DIMENSION,
    RAW_VIDEO,
    SUBSAMPLED_FORMATS,
    UNSPECIFIED,
    Caps,
    Frame,
    NamedEnum,
)

log = logging.getLogger("parallax.scaler")

FORMATS = ("rgba", "bgra", "yuv420p", "nv12")
MAX_FACTOR = 16.0


class ScaleAlgorithm(NamedEnum):
    Nearest = "nearest"  # fastest, blocky
    Bilinear = "bilinear"  # a good balance
    Bicubic = "bicubic"
    Lanczos = "lanczos"  # sharpest, slowest
    Area = "area"  # best for large reductions

    @classmethod
    def noun(cls) -> str:
        return "scale algorithm"

    @property
    def swscale(self) -> str:
        return {"nearest": "POINT", "bilinear": "BILINEAR", "bicubic": "BICUBIC",
                "lanczos": "LANCZOS", "area": "AREA"}[self.value]


def even(n: float) -> int:
    """Round down to an even number, at least 2 (4:2:0 chroma needs pairs of pixels)."""
    return max(2, int(n) // 2 * 2)


def aspect_size(in_w: int, in_h: int, width: int | None, height: int | None) -> tuple[int, int]:
    """Fill in a missing width or height so that the aspect ratio is kept."""
    if width is None and height is None:
        return in_w, in_h
    if width is None:
        return max(1, round(in_w * height / in_h)), height
    if height is None:
        return width, max(1, round(in_h * width / in_w))
    return width, height


def fit_size(in_w: int, in_h: int, max_w: int, max_h: int) -> tuple[int, int]:
    """The largest size within max_w x max_h with the input's aspect ratio (never upscales)."""
    scale = min(max_w / in_w, max_h / in_h, 1.0)
    return max(1, round(in_w * scale)), max(1, round(in_h * scale))


def factor_size(in_w: int, in_h: int, factor: float) -> tuple[int, int]:
    return max(1, round(in_w * factor)), max(1, round(in_h * factor))


@dataclass(frozen=True)
class VideoScalerSettings:
    width: int | None = None
    """Output width; None keeps the input's (or follows height, keeping the aspect)."""
    height: int | None = None
    format: str | None = None
    """Output pixel format; None keeps the input's."""
    algorithm: ScaleAlgorithm = ScaleAlgorithm.Bilinear
    fit: bool = False
    """Treat width x height as a box to fit in, keeping the aspect ratio."""
    factor: float | None = None
    """Scale both sides by this factor instead (0.5 = half size)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithm", ScaleAlgorithm.parse(self.algorithm))
        for label, v in (("width", self.width), ("height", self.height)):
            if v is not None and (not isinstance(v, int) or not 1 <= v <= MAX_DIMENSION):
                raise ConfigError(f"{label}={v!r}: must be an integer from 1 to {MAX_DIMENSION}")
        if self.format is not None and self.format not in FORMATS:
            raise ConfigError(f"format={self.format!r}: use one of {', '.join(FORMATS)}")
        if self.factor is not None and not 0 < self.factor <= MAX_FACTOR:
            raise ConfigError(f"factor={self.factor}: must be > 0 and <= {MAX_FACTOR:g}")
        if self.fit and (self.width is None or self.height is None):
            raise ConfigError("fit needs both a maximum width and height")


class VideoScaler(Transform):
    """Scales and converts raw frames. Sizes are made even for 4:2:0 output formats."""

    accepts = (RAW_VIDEO,)

    def __init__(self, settings: VideoScalerSettings | None = None, **options: Any) -> None:
        super().__init__()
        self.settings = settings or VideoScalerSettings(**options)
        self.out: tuple[int, int, str] | None = None
        self._matrix = UNSPECIFIED

    @classmethod
    def new(cls, width: int | None = None, height: int | None = None,
            format: str | None = None, algorithm: ScaleAlgorithm | str = "bilinear"
            ) -> VideoScaler:
        return cls(VideoScalerSettings(width, height, format, algorithm))

    @classmethod
    def fit(cls, max_width: int, max_height: int, format: str | None = None,
            algorithm: ScaleAlgorithm | str = "bilinear") -> VideoScaler:
        return cls(VideoScalerSettings(max_width, max_height, format, algorithm, fit=True))

    @classmethod
    def by_factor(cls, factor: float, format: str | None = None,
                  algorithm: ScaleAlgorithm | str = "bilinear") -> VideoScaler:
        return cls(VideoScalerSettings(format=format, algorithm=algorithm, factor=factor))

    def output_size(self, in_w: int, in_h: int, out_format: str) -> tuple[int, int]:
        s = self.settings
        if s.factor is not None:
            w, h = factor_size(in_w, in_h, s.factor)
        elif s.fit:
            w, h = fit_size(in_w, in_h, s.width, s.height)
        else:
            w, h = aspect_size(in_w, in_h, s.width, s.height)
        if out_format in SUBSAMPLED_FORMATS:
            w, h = even(w), even(h)
        return w, h

    def configure(self, caps_in: Caps | None) -> Caps:
        fmt = self.settings.format or caps_in.format
        w, h = self.output_size(caps_in.width, caps_in.height, fmt)
        self.out = (w, h, fmt)
        self.configured = self.out  # the size asked for; an adapt scales from it
        self._matrix = caps_in.colour.matrix if caps_in.colour else UNSPECIFIED
        return Caps.raw_video(fmt, w, h, caps_in.rate, time_base=caps_in.time_base).replace(
            colour=caps_in.colour)

    def process(self, frame: Frame) -> tuple[Frame, ...]:
        scale = frame.meta.get("adapt")
        if scale is not None:  # a live source under overload asks for another size
            self.resize(scale)
        w, h, fmt = self.out
        if (frame.width, frame.height, frame.format) == (w, h, fmt):
            return (frame,)  # nothing to do: forward the same frame, zero-copy
        return (self.scale(frame, w, h, fmt),)

    def resize(self, scale: float) -> None:
        """Scale the configured output size by ``scale`` from the next frame on; the
        encoder after it follows the frames' size (a new stream, at a keyframe)."""
        w, h, fmt = self.configured
        w, h = max(2, round(w * scale)), max(2, round(h * scale))
        if fmt in SUBSAMPLED_FORMATS:
            w, h = even(w), even(h)
        self.out = (w, h, fmt)
        log.info("%s: frames are %dx%d from now on (%g of %dx%d)", self.name, w, h, scale,
                 *self.configured[:2])

    def scale(self, frame: Frame, w: int, h: int, fmt: str) -> Frame:
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.data), format=frame.format)
        # An RGB<->YUV conversion uses the input's matrix (swscale's default is BT.601,
        # which shifts the colours of BT.709 HD); YUV to YUV needs none.
        matrix = None if self._matrix == UNSPECIFIED else self._matrix
        out = vf.reformat(width=w, height=h, format=fmt, src_colorspace=matrix,
                          dst_colorspace=matrix,
                          interpolation=self.settings.algorithm.swscale)
        return frame.replace(data=out.to_ndarray(), format=fmt, width=w, height=h)
