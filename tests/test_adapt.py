"""--adapt resolution (issue 16): under overload a live source keeps its frame rate and
asks for a smaller picture, in steps, and goes back up when there is room.

The controller is checked first against a simulated encoder whose speed follows the
picture's area (exact, no timing), then in a real pipeline whose encoder is throttled to
half the capture rate at full size, writing HLS: every segment decodes with its own map.
"""

from __future__ import annotations

import io
import itertools

import pytest
from streams import assert_usage_error, decode_bytes, parallax

from actors.errors import ConfigError
from actors.media.test_pattern import TestPatternSource
from actors.media.video_encoder import VideoEncoder
from actors.media.video_scaler import VideoScaler
from actors.pacing import SIZE_LADDER, Backlog, LivePacer
from actors.streaming.fragmented_mp4_mux import FragmentedMp4Mux
from actors.streaming.hls import parse_playlist
from actors.streaming.hls_sink import HlsSink
from actors.testing import StallingPassThrough
from pipelines.progress import LiveStatsDisplay
from pipelines.runtime.pipeline import Pipeline

FPS = 30


def simulate(full_size_fps: float, seconds: float, window: int = 32,
             mode: str = "resolution", boost_at: float | None = None) -> LivePacer:
    """A consumer taking ``full_size_fps`` at full size, faster as the area shrinks (and 4x
    faster from ``boost_at`` seconds on); the scale applies from the next item."""
    pacer = LivePacer(FPS, None, adapt=mode)
    backlog = Backlog(window, 0, 0)
    work, scale = 0.0, 1.0
    for tick in range(int(seconds * FPS)):
        now = tick / FPS
        boost = 4 if boost_at is not None and now >= boost_at else 1
        work += full_size_fps * boost / (scale * scale) / FPS
        while work >= 1 and backlog.in_flight:
            backlog.in_flight -= 1
            backlog.completed += 1
            work -= 1
        if not backlog.in_flight:
            work = min(work, 1.0)
        if pacer.admit(tick, backlog, now):
            backlog.in_flight += 1
            taken = pacer.take_scale()
            scale = scale if taken is None else taken
        assert backlog.in_flight <= window
    return pacer


def test_half_speed_encoder_keeps_the_frame_rate_at_a_smaller_size():
    pacer = simulate(FPS / 2, seconds=20)
    report = pacer.report()
    assert report["dropped_pct"] < 5, report
    assert report["resolution_changes"], report
    assert SIZE_LADDER[pacer.level] ** 2 <= 0.5  # small enough for a half-speed encoder
    framerate = simulate(FPS / 2, seconds=20, mode="framerate").report()
    assert framerate["dropped_pct"] > 30 and not framerate["resolution_changes"]
    off = simulate(FPS / 2, seconds=20, mode="off").report()
    assert off["dropped_pct"] > 30 and not off["resolution_changes"]


def test_the_size_climbs_back_when_there_is_room_again():
    pacer = simulate(FPS / 2, seconds=40, boost_at=10)
    changes = pacer.report()["resolution_changes"]
    assert min(c["scale"] for c in changes) < 1.0
    assert pacer.level == 0 and changes[-1]["scale"] == 1.0, changes


def test_a_consumer_that_keeps_up_never_changes_the_size():
    for window in (2, 32):  # 2: a --latency low window, where one item in flight is normal
        assert simulate(FPS * 1.5, seconds=10, window=window).report()[
            "resolution_changes"] == []


def test_a_bad_adapt_mode():
    with pytest.raises(ConfigError, match="--adapt 'fast'"):
        LivePacer(FPS, adapt="fast")


def test_resolution_adapts_in_a_real_pipeline_and_every_segment_decodes(ray_session,
                                                                       tmp_path):
    w, h, seconds = 640, 360, 8
    out = tmp_path / "adapt.m3u8"
    stages = [
        ("src", TestPatternSource(width=w, height=h, rate=FPS, duration=seconds, live=True,
                                  pattern="ball", adapt="resolution")),
        ("scale", VideoScaler.new(None, None, "yuv420p")),
        # Half the capture rate at full size, faster as the picture shrinks.
        ("slow", StallingPassThrough(pixel_delay_s=2 / FPS / (w * h))),
        ("encode", VideoEncoder(codec="h264", keyframe_interval=1.0)),
        ("mux", FragmentedMp4Mux(fragment_duration=1.0)),
        ("sink", HlsSink(str(out))),
    ]
    p = Pipeline("adapt", fusion=True)
    for name, element in stages:
        p.add(element, name=name)
    for (a, _), (b, _) in itertools.pairwise(stages):
        p.link(a, b, fuse=False if a in ("src", "encode") else None)
    stats = p.run(timeout=120)
    report = p.results("src")
    assert report["dropped_pct"] < 5, report
    assert report["resolution_changes"], report
    live = stats.elements["src"].live  # what the live table shows, polled as it runs
    assert live["requested_fps"] == FPS and live["dropped_pct"] == report["dropped_pct"]
    caption = LiveStatsDisplay(io.StringIO(), "adapt").table(stats).caption
    assert f"src: {FPS} fps requested" in caption, caption
    playlist = parse_playlist(out.read_text())
    sizes, frames = set(), 0
    for seg in playlist.segments:
        decoded = decode_bytes((tmp_path / seg.map_uri).read_bytes()
                               + (tmp_path / seg.uri).read_bytes())
        assert len(decoded) == round(seg.duration * FPS), seg
        sizes |= {(f.width, f.height) for f in decoded}
        frames += len(decoded)
    assert (w, h) in sizes and len(sizes) >= 2, sizes
    assert len({seg.map_uri for seg in playlist.segments}) >= 2  # a new map per size
    assert frames >= seconds * FPS * 0.95


def test_adapt_resolution_needs_an_output_that_can_change_size(tmp_path):
    run = parallax("transcode", "testsrc:duration=1,size=320x240,live=1", "x.mp4",
                   "--adapt", "resolution", cwd=tmp_path)
    assert_usage_error(run, "--adapt resolution", ".m3u8")
    run = parallax("transcode", "missing.mp4", "x.m3u8", "--adapt", "resolution",
                   cwd=tmp_path)
    assert_usage_error(run, "only a live source adapts")
