"""VideoScaler without Ray: size arithmetic, every format pair, quality against a reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from actors.errors import ConfigError
from actors.media.test_pattern import TestPatternSource
from actors.media.video_scaler import (
    FORMATS,
    ScaleAlgorithm,
    VideoScaler,
    aspect_size,
    even,
    factor_size,
    fit_size,
)
from actors.types import Caps


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def bars(width, height, fmt="rgba"):
    return TestPatternSource(pattern="smpte", width=width, height=height, format=fmt,
                             num_frames=1).produce()


def test_size_arithmetic():
    assert fit_size(1920, 1080, 1280, 720) == (1280, 720)
    assert fit_size(1080, 1920, 1280, 720) == (405, 720)  # portrait fits by height
    assert fit_size(640, 360, 1280, 720) == (640, 360)  # never upscales
    assert factor_size(1920, 1080, 0.5) == (960, 540)
    assert factor_size(1920, 1080, 0.667) == (1281, 720)
    assert aspect_size(1920, 1080, 1280, None) == (1280, 720)
    assert aspect_size(1920, 1080, None, 480) == (853, 480)
    assert even(853) == 852 and even(1) == 2


@pytest.mark.parametrize("scaler, out", [
    (VideoScaler.fit(1280, 720), (1280, 720)),
    (VideoScaler.by_factor(0.667), (1280, 720)),  # 1281 rounds down to even for yuv420p
    (VideoScaler.new(height=480), (852, 480)),
    (VideoScaler.new(), (1920, 1080)),
])
def test_configure_gives_even_sizes_for_420(scaler, out):
    caps = scaler.configure(Caps.raw_video("yuv420p", 1920, 1080, 30))
    assert (caps.width, caps.height) == out and caps.format == "yuv420p"


def test_odd_sizes_stay_odd_in_rgba():
    caps = VideoScaler.by_factor(0.5).configure(Caps.raw_video("rgba", 1921, 1081, 30))
    assert (caps.width, caps.height) == (960, 540)
    caps = VideoScaler.new(width=641, format="rgba").configure(Caps.raw_video("rgba", 1282, 720))
    assert (caps.width, caps.height) == (641, 360)


@pytest.mark.parametrize("src_fmt, dst_fmt", list(itertools.product(FORMATS, FORMATS)))
def test_every_format_pair(src_fmt, dst_fmt):
    frame = bars(640, 360, src_fmt if src_fmt in ("rgba", "yuv420p") else "rgba")
    if src_fmt not in ("rgba", "yuv420p"):  # make the bgra / nv12 input with swscale itself
        frame = VideoScaler.new(format=src_fmt).scale(frame, 640, 360, src_fmt)
    scaler = VideoScaler.new(320, 180, dst_fmt)
    scaler.configure(Caps.raw_video(src_fmt, 640, 360, 30))
    (out,) = scaler.process(frame)
    assert (out.format, out.width, out.height) == (dst_fmt, 320, 180)
    expected = (270, 320) if dst_fmt in ("yuv420p", "nv12") else (180, 320, 4)
    assert out.data.shape == expected
    back = VideoScaler.new(format="rgba").scale(out, 320, 180, "rgba")
    assert psnr(back.data[..., :3], bars(320, 180).data[..., :3]) > 25


@pytest.mark.parametrize("algorithm", list(ScaleAlgorithm))
def test_quality_against_a_reference_pattern(algorithm):
    scaler = VideoScaler.new(640, 360, algorithm=algorithm)
    scaler.configure(Caps.raw_video("rgba", 1280, 720, 30))
    (out,) = scaler.process(bars(1280, 720))
    # Flat bars scale to the same bars drawn at the target size, except at the edges.
    assert psnr(out.data, bars(640, 360).data) > 30


def test_nothing_to_do_forwards_the_same_frame():
    frame = bars(320, 240)
    scaler = VideoScaler.new()
    scaler.configure(Caps.raw_video("rgba", 320, 240, 30))
    assert scaler.process(frame)[0] is frame


@pytest.mark.parametrize("options, message", [
    ({"width": 0}, "width=0"),
    ({"width": -5}, "width=-5"),
    ({"factor": 0}, "factor=0"),
    ({"format": "p010"}, "format='p010'"),
    ({"algorithm": "sharp"}, "unknown scale algorithm 'sharp'"),
    ({"fit": True, "width": 100}, "fit needs both"),
])
def test_bad_settings(options, message):
    with pytest.raises(ConfigError, match=message):
        VideoScaler(**options)
