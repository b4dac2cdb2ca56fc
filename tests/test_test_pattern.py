"""TestPatternSource: patterns, formats, lengths, pacing and bad settings."""

from __future__ import annotations

import time
from fractions import Fraction

import av
import numpy as np
import pytest

from actors.errors import ConfigError
from actors.flow import Block, Drop
from actors.media.test_pattern import FORMATS, PATTERNS, TestPatternSource, read_timecode
from actors.types import EOS, Caps


def frames(src):
    out = []
    while (f := src.produce()) is not EOS:
        out.append(f)
    return out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_pattern_and_format(pattern, fmt):
    src = TestPatternSource(pattern=pattern, width=64, height=48, format=fmt, num_frames=3,
                            timecode=True)
    assert src.configure(None) == Caps.raw_video(fmt, 64, 48, 30)
    got = frames(src)
    assert len(got) == 3
    assert got[0].data.shape == ((72, 64) if fmt == "yuv420p" else (48, 64, 4))
    assert [read_timecode(f.data) for f in got] == [0, 1, 2]
    assert [f.pts for f in got] == [0, 1, 2] and got[0].time_base == Fraction(1, 30)


def test_ball_moves_and_bars_are_smpte():
    ball = frames(TestPatternSource(pattern="ball", width=320, height=240, format="rgba",
                                    num_frames=2))
    assert not np.array_equal(ball[0].data, ball[1].data)
    bars = frames(TestPatternSource(pattern="smpte", width=700, height=10, format="rgba",
                                    num_frames=1))[0].data
    assert bars[5, 50, :3].tolist() == [191, 191, 191] and bars[5, 650, :3].tolist() == [0, 0, 191]


def test_yuv_matches_swscale_of_the_rgb_pattern():
    rgba = frames(TestPatternSource(pattern="smpte", width=320, height=240, format="rgba",
                                    num_frames=1))[0].data
    yuv = frames(TestPatternSource(pattern="smpte", width=320, height=240, num_frames=1))[0].data
    ref = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba[..., :3]), format="rgb24")
    assert np.array_equal(ref.reformat(format="yuv420p").to_ndarray(), yuv)


def test_duration_and_live_pacing():
    src = TestPatternSource(pattern="ball", width=32, height=32, rate=50, duration=0.4, live=True)
    assert src.frames_total() == 20
    assert isinstance(src.flow_policy(), Drop)
    t0 = time.monotonic()
    got = frames(src)
    elapsed = time.monotonic() - t0
    assert len(got) == 20 and 0.35 < elapsed < 1.0  # 20 frames at 50 fps, on the clock
    assert isinstance(TestPatternSource(num_frames=1).flow_policy(), Block)


@pytest.mark.parametrize("options, message", [
    ({"width": 1921, "height": 1080}, "even width and height, got 1921x1080; use 1922x1080"),
    ({"width": 0}, "width=0"),
    ({"rate": 0}, "rate=0"),
    ({"rate": "fast"}, "rate='fast'"),
    ({"pattern": "zebra"}, "unknown pattern 'zebra'"),
    ({"format": "nv21"}, "unknown format 'nv21'"),
    ({"num_frames": -1}, "num_frames=-1"),
    ({"num_frames": 5, "duration": 1.0}, "not both"),
    ({"num_frames": 0}, "num_frames=0: must be 1 or more"),
    ({"duration": float("nan")}, "duration=nan"),
    ({"duration": float("inf")}, "duration=inf"),
    ({"rate": float("inf")}, "rate=inf"),
    ({"rate": 5000}, "at most 1000 fps"),
])
def test_bad_settings_say_what_to_do(options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TestPatternSource(**options)
