"""Live sources under overload: frames dropped evenly, a stall bound that means a stall.

The pacer is checked first against a simulated consumer (exact, no timing), then in real
pipelines where a pass-through caps itself at 10 items/s under a 30 fps live source.
"""

from __future__ import annotations

from collections.abc import Callable

import av
import numpy as np
import pytest
from av.video.frame import PictureType
from streams import parallax

from actors.errors import ConfigError, FlowError, PipelineError
from actors.media.test_pattern import TestPatternSource
from actors.pacing import Backlog, LivePacer
from actors.testing import CollectSink, StallingPassThrough
from pipelines.runtime.pipeline import Pipeline

FPS = 30


def simulate(capacity: Callable[[float], float], seconds: float = 10.0, window: int = 8,
             max_stall: float | None = None, queue: list[int] | None = None,
             log: list[LivePacer] | None = None) -> list[int]:
    """Ticks a pacer keeps against a consumer finishing ``capacity(t)`` items per second
    while it has work; the window is never exceeded (asserted). ``queue`` collects the
    items in flight at every tick, ``log`` the pacer."""
    pacer = LivePacer(FPS, max_stall)
    if log is not None:
        log.append(pacer)
    backlog = Backlog(window, 0, 0)
    kept, work = [], 0.0
    for tick in range(int(seconds * FPS)):
        now = tick / FPS
        work += capacity(now) / FPS
        while work >= 1 and backlog.in_flight:
            backlog.in_flight -= 1
            backlog.completed += 1
            work -= 1
        if not backlog.in_flight:
            work = min(work, 1.0)  # an idle consumer does not bank capacity
        if pacer.admit(tick, backlog, now):
            backlog.in_flight += 1
            kept.append(tick)
        assert backlog.in_flight <= window
        if queue is not None:
            queue.append(backlog.in_flight)
    return kept


def rate(kept: list[int], start_s: float, end_s: float) -> float:
    inside = [k for k in kept if start_s * FPS <= k < end_s * FPS]
    return len(inside) / (end_s - start_s)


@pytest.mark.parametrize("capacity", [16, 10])
def test_kept_frames_follow_what_downstream_sustains_evenly(capacity):
    queue: list[int] = []
    kept = simulate(lambda t: capacity, window=32, queue=queue)
    assert rate(kept, 3, 10) == pytest.approx(capacity, abs=1.0)
    # Paced, not merely gated by credits: the window never fills (a full one would drop
    # whatever the consumer's next burst left no credit for).
    assert max(queue[3 * FPS:]) < 32, max(queue[3 * FPS:])
    gaps = np.diff([k for k in kept if k >= 3 * FPS])
    # Evenly spread: no gap beyond twice the kept interval (16 of 30: at most 2 ticks
    # apart, as the issue asks; 10 of 30: at most 6), where Busy-skipping froze for 1 s.
    assert gaps.max() <= max(2, 2 * round(FPS / capacity)), gaps.max()


def test_the_rate_climbs_back_when_downstream_catches_up():
    kept = simulate(lambda t: 10 if t < 5 else 60)
    assert rate(kept, 3, 5) == pytest.approx(10, abs=1.0)
    assert rate(kept, 7, 10) >= FPS - 1  # every tick again


@pytest.mark.parametrize("window,speed", [(8, 60), (32, 45)])
@pytest.mark.parametrize("start", [2.0, 2.1, 2.25, 2.4])
def test_after_a_stall_the_rate_comes_back_at_once(start, window, speed):
    """A consumer that stops for a second (a stall, or a restart downstream) and comes
    back as fast as before gets every tick again as soon as its window drains: the full
    window held the ticks back during the stall, so the pacer keeps its share instead of
    climbing back from its floor over seconds (it used to take until 6 s, dropping about
    1.5 s of frames after the stall). Nor do the periods the stall starts and ends in set
    the share, although each measures a fraction of the rate: a stall that starts in the
    middle of a period (as a writer's death does, while the encoder fills what is left of
    its window) kept 232 of 300 ticks and warned of 5 of 30 fps. A stall that a wide
    window (32, as the live pipelines have) absorbs without filling must not count as a
    measurement either (it kept 231 of 300). No overload is reported: nothing was slow."""
    pacer_log = []
    kept = simulate(lambda t: 0 if start <= t < start + 1 else speed, window=window,
                    log=pacer_log)
    back = start + 1.2
    assert rate(kept, back, back + 0.8) >= FPS - 1, \
        [rate(kept, a / 2, a / 2 + 0.5) for a in range(20)]
    assert len(kept) >= 10 * FPS - FPS  # the stall's second, no more
    assert not pacer_log[0].warned and pacer_log[0].lowest_keep == 1.0
    # A slow consumer after the stall is still measured and followed.
    kept = simulate(lambda t: 0 if 2 <= t < 3 else 10)
    assert rate(kept, 5, 10) == pytest.approx(10, abs=1.0)


def test_a_fast_consumer_loses_nothing():
    kept = simulate(lambda t: 100)
    assert kept == list(range(10 * FPS))


def test_a_stall_fails_after_max_stall_but_a_slow_consumer_never_does():
    simulate(lambda t: 3, max_stall=1.0)  # slow but moving: no error
    with pytest.raises(FlowError, match=r"finished nothing for 1\.\d s .*frames were captured"):
        simulate(lambda t: 0 if 2 <= t < 5 else 30, max_stall=1.0)


def test_bad_max_stall():
    with pytest.raises(ConfigError, match="--max-stall"):
        LivePacer(30, max_stall=0)


def live_pipeline(middle, seconds: float, max_stall: float | None = 5.0) -> Pipeline:
    p = Pipeline("live", fusion=False)
    p.add(TestPatternSource(pattern="ball", width=64, height=48, rate=FPS, duration=seconds,
                            live=True, max_stall=max_stall), name="src")
    p.add(middle, name="slow")
    p.add(CollectSink(), name="sink")
    p.link("src", "slow", window=8)  # so that a 2 s stall cannot hide in the window
    p.link("slow", "sink")
    return p


def test_a_slow_consumer_gets_an_even_share_in_a_real_pipeline(ray_session):
    p = live_pipeline(StallingPassThrough(delay_s=0.1), seconds=6.0)
    stats = p.run(timeout=60)
    ticks = [frame.pts for frame in p.results("sink")["items"]]
    steady = [t for t in ticks if t >= 2 * FPS]
    delivered = len(steady) / (6.0 - 2.0)
    assert delivered == pytest.approx(10, abs=1.5), delivered
    assert max(np.diff(steady)) <= 2 * FPS // 10, np.diff(steady)
    report = p.results("src")
    assert report["requested_fps"] == FPS and report["dropped_pct"] > 50
    assert stats.elements["src"].drops == 6 * FPS - len(ticks)  # every tick accounted for


def test_a_stall_is_reported_and_survived_with_the_default_bound(ray_session):
    p = live_pipeline(StallingPassThrough(delay_s=0.02, stall_s=2.0, every_s=2.5),
                      seconds=5.0)
    p.run(timeout=60)
    report = p.results("src")
    assert report["longest_freeze_s"] >= 1.5, report


def test_a_stall_past_max_stall_fails_naming_the_source(ray_session):
    p = live_pipeline(StallingPassThrough(delay_s=0.02, stall_s=3.0, every_s=1.5),
                      seconds=6.0, max_stall=1.0)
    with pytest.raises(PipelineError) as err:
        p.run(timeout=60)
    assert err.value.element == "src"
    assert "finished nothing" in str(err.value) and "--max-stall 1" in str(err.value)


def test_low_latency_has_no_b_frames_and_reports_its_latency(tmp_path):
    """--latency low: every frame is encoded as it comes (no B-frames, so every packet's
    decode time is its presentation time), and the summary gives the latency."""
    out = tmp_path / "ll.mp4"
    run = parallax("transcode", "testsrc:duration=3,size=640x360,live=1", str(out),
                   "--latency", "low", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "capture to encoded p50" in run.stderr, run.stderr
    with av.open(str(out)) as c:
        packets = [p for p in c.demux(video=0) if p.size]
    assert len(packets) > 30 and all(p.pts == p.dts for p in packets)
    with av.open(str(out)) as c:
        kinds = {PictureType(f.pict_type).name for f in c.decode(video=0)}
    assert "B" not in kinds, kinds
