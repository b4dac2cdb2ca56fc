"""Credit windows and flow policies, end to end on the shared local Ray."""

from __future__ import annotations

import numpy as np
import pytest

from actors.errors import PipelineError
from actors.flow import Drop, RingBuffer
from actors.testing import CollectSink, ListSource, StallingPassThrough
from actors.types import Frame
from pipelines import Pipeline

pytestmark = pytest.mark.usefixtures("ray_session")

# 480x270 RGBA: 518 KB, large enough to travel through the object store.
FRAME = Frame(np.zeros((270, 480, 4), np.uint8), "rgba", 480, 270)


def two_stage(source, sink, window):
    p = Pipeline("bp")
    p.add(source, name="src")
    p.add(sink, name="sink")
    p.link("src", "sink", window=window)
    return p


SMALL_OBJECTS = 64 << 10  # bytes of store the frames do not account for


def test_block_holds_a_fast_source_back():
    p = two_stage(ListSource([FRAME], repeat=150), CollectSink(keep=False, delay_s=0.01), 4)
    stats = p.run(timeout=120)
    edge = stats.edges["src->sink"]
    assert stats.frames == 150
    assert edge.high_water_mark() == 4  # the window filled, and never overflowed
    assert edge.sent == 150
    # The sink needs >= 1.5 s for 150 items; a free-running source would need ~0.1 s.
    assert stats.elements["src"].blocked_time > 0.8
    # Object store: the window bounds what exists at once, plus one being put and the
    # few that Ray has released but frees in its next batch (every 20 ms here); the
    # store also holds small call results of its own (a few KB; CI saw 3.8 KB over).
    assert 0 < stats.memory_peak <= (4 + 4) * FRAME.nbytes + SMALL_OBJECTS
    assert stats.memory_spilled == 0


def test_drop_counts_drops_and_no_queue_grows():
    p = two_stage(ListSource([FRAME], repeat=300, policy=Drop(log_drops=False)),
                  CollectSink(keep=False, delay_s=0.02), 4)
    stats = p.run(timeout=120)
    drops = stats.elements["src"].drops
    assert drops > 0
    assert stats.frames + drops == 300  # every item was delivered or counted as dropped
    assert stats.edges["src->sink"].drops == drops
    assert stats.edges["src->sink"].high_water_mark() <= 4
    assert stats.elements["sink"].mailbox_depth <= 4


def test_drop_fails_after_max_consecutive_naming_the_source():
    p = two_stage(ListSource([FRAME], repeat=1000, policy=Drop(log_drops=False,
                                                                max_consecutive=20)),
                  CollectSink(keep=False, delay_s=0.5), 2)
    with pytest.raises(PipelineError) as err:
        p.run(timeout=60)
    assert err.value.element == "src"
    assert "20 items in a row" in str(err.value.cause)


def test_ring_buffer_keeps_the_newest_items():
    p = two_stage(ListSource(list(range(200)), policy=RingBuffer(capacity=5)),
                  CollectSink(delay_s=0.01), 2)
    stats = p.run(timeout=60)
    got = p.results("sink")["items"]
    assert got == sorted(got)  # in order, no duplicates
    assert got[-5:] == [195, 196, 197, 198, 199]  # the newest survived
    assert len(got) < 200 and stats.elements["src"].drops == 200 - len(got)


def test_flow_signals_reach_the_source_with_hysteresis_in_order():
    # The sink stalls 400 ms every 0.5 s; the paced source fills the window of 10
    # during each stall (Busy at 8) and the sink drains it afterwards (Ok at <= 2).
    src = ListSource(list(range(300)), interval_s=0.01)
    sink = StallingPassThrough(stall_s=0.4, every_s=0.5)
    p = Pipeline("signals")
    p.add(src, name="src")
    p.add(sink, name="slow")
    p.add(CollectSink(keep=False), name="sink")
    p.link("src", "slow", window=10)
    p.link("slow", "sink")
    p.run(timeout=120)
    signals = p.results("src")["signals"]
    assert signals[-1] == "eos"
    body = signals[:-1]
    assert body.count("busy") >= 2, signals
    # Strict alternation Busy, Ok, Busy, Ok...: hysteresis means no repeats, no flapping.
    assert body == ["busy", "ok"] * (len(body) // 2) + ["busy"] * (len(body) % 2)
