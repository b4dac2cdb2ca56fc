"""Stats: counts and bytes equal what passed; streams, progress and element lookups."""

from __future__ import annotations

import numpy as np
import pytest

from actors.testing import CollectSink, ListSource, StallingPassThrough
from actors.types import Frame
from pipelines import Pipeline, Progress

pytestmark = pytest.mark.usefixtures("ray_session")


def make(items, interval_s=0.0, fusion=False):
    p = Pipeline("stats", fusion=fusion)
    p.add(ListSource(items, interval_s=interval_s), name="src")
    p.add(StallingPassThrough(), name="mid")
    p.add(CollectSink(keep=False), name="sink")
    p.link("src", "mid")
    p.link("mid", "sink")
    return p


@pytest.mark.parametrize("fusion", [False, True])
def test_counts_and_bytes_equal_what_passed(fusion):
    small = [bytes(1000)] * 60  # inline in the push call
    frames = [Frame(np.zeros((300, 400, 4), np.uint8), "rgba", 400, 300)] * 40  # via the store
    p = make(small + frames, fusion=fusion)
    stats = p.run(timeout=120)
    total_bytes = 60 * 1000 + 40 * 400 * 300 * 4
    src, mid, sink = (stats.elements[n] for n in ("src", "mid", "sink"))
    assert (src.buffers_out, src.bytes_out) == (100, total_bytes)
    assert (mid.buffers_in, mid.bytes_in, mid.buffers_out, mid.bytes_out) == (
        100, total_bytes, 100, total_bytes)
    assert (sink.buffers_in, sink.bytes_in) == (100, total_bytes)
    assert stats.frames == 100 and stats.bytes_written == total_bytes
    assert p.results("sink")["bytes"] == total_bytes
    assert all(s.errors == 0 and s.drops == 0 for s in stats.elements.values())
    if not fusion:
        assert stats.edges["src->mid"].bytes_sent == total_bytes
        assert stats.edges["mid->sink"].sent == 100
        assert sink.latency_ms is not None and sink.latency_ms >= 0
    else:
        assert stats.edges == {}  # one host: no credits, no arena


def test_stats_stream_progress_and_element_stats():
    p = make(list(range(120)), interval_s=0.02)  # ~2.4 s
    seen: list[Progress] = []
    final = p.run_with_progress(seen.append)
    assert final.frames == 120
    assert len(seen) >= 3
    assert seen[-1].frames_processed == 120 and seen[-1].frames_total == 120
    assert [s.frames_processed for s in seen] == sorted(s.frames_processed for s in seen)
    middle = [s for s in seen if 0 < s.frames_processed < 120]
    assert middle and all(s.estimated_remaining is not None for s in middle)
    assert any(s.fps > 10 for s in middle)


def test_live_rates_and_lookup_while_running():
    p = make(list(range(200)), interval_s=0.01)
    p.start()
    rates = [s.elements["mid"].input_fps for s in p.stats_stream(0.5) if "mid" in s.elements]
    stats = p.wait(timeout=60)
    assert any(30 < r < 200 for r in rates), rates  # paced at 100 items/s
    assert p.element_stats("mid") is not None
    assert stats.to_dict()["elements"]["sink"]["buffers_in"] == 200
