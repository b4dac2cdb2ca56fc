"""Flow policies and signals without Ray: a fake window stands in for an edge."""

from __future__ import annotations

import pytest

from actors.errors import ConfigError, FlowError
from actors.flow import Block, Drop, FlowSignal, FlowState, RingBuffer, SignalTracker
from pipelines.runtime.edge import ReorderBuffer


class FakeWindow:
    """A window of ``size`` credits; ``release(n)`` hands n credits back."""

    name = "a->b"

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_flight = 0
        self.sent: list[int] = []
        self.waits = 0

    def has_credit(self) -> bool:
        return self.in_flight < self.size

    def wait_for_credit(self) -> None:
        if not self.has_credit():
            self.waits += 1
            self.release(1)  # the consumer finished one item while we waited

    def send(self, item: int) -> None:
        assert self.in_flight < self.size, "a policy sent without credit"
        self.in_flight += 1
        self.sent.append(item)

    def release(self, n: int) -> None:
        self.in_flight = max(0, self.in_flight - n)


def test_block_waits_and_loses_nothing():
    w, st = FakeWindow(3), FlowState()
    for i in range(10):
        Block().offer(i, w, st)
    assert w.sent == list(range(10))
    assert w.waits == 7 and st.drops == 0


def test_drop_counts_and_resets_the_run():
    w, st = FakeWindow(2), FlowState()
    policy = Drop(log_drops=False, max_consecutive=5)
    for i in range(6):
        policy.offer(i, w, st)
    assert w.sent == [0, 1] and st.drops == 4 and st.consecutive_drops == 4
    w.release(2)
    policy.offer(6, w, st)
    assert w.sent == [0, 1, 6] and st.consecutive_drops == 0 and st.drops == 4


def test_drop_fails_after_max_consecutive():
    w, st = FakeWindow(1), FlowState()
    policy = Drop(log_drops=False, max_consecutive=3)
    policy.offer(0, w, st)
    policy.offer(1, w, st)
    policy.offer(2, w, st)
    with pytest.raises(FlowError, match="3 items in a row on edge a->b"):
        policy.offer(3, w, st)


def test_drop_rejects_negative_max_consecutive():
    with pytest.raises(ConfigError, match="max_consecutive=-1"):
        Drop(max_consecutive=-1)


def test_ring_buffer_keeps_the_newest():
    w, st = FakeWindow(2), FlowState()
    policy = RingBuffer(capacity=3)
    for i in range(10):
        policy.offer(i, w, st)
    assert w.sent == [0, 1]
    assert list(st.ring) == [7, 8, 9] and st.drops == 5
    w.release(2)
    policy.pump(w, st)
    assert w.sent == [0, 1, 7, 8] and list(st.ring) == [9]
    policy.drain(w, st)
    assert w.sent[-1] == 9 and not st.ring


def test_ring_buffer_rejects_zero_capacity():
    with pytest.raises(ConfigError, match="capacity"):
        RingBuffer(capacity=0)


def test_signals_have_hysteresis():
    t = SignalTracker(window=10)  # Busy at >= 8, Ok again at <= 2
    seen = [t.update(n) for n in (0, 5, 7, 8, 9, 6, 3, 8, 2, 1, 8)]
    assert seen == [None, None, None, FlowSignal.Busy, None, None, None, None,
                    FlowSignal.Ok, None, FlowSignal.Busy]


def test_signal_drop_then_recovery():
    t = SignalTracker(window=4)
    assert t.update(4) is FlowSignal.Busy
    assert t.update(4, dropping=True) is FlowSignal.Drop
    assert t.update(3) is FlowSignal.Busy
    assert t.update(0) is FlowSignal.Ok


def test_reorder_buffer_restores_order_and_bounds_itself():
    rb = ReorderBuffer(window=4)
    assert rb.put(1, "b") == [] and rb.put(3, "d") == [] and rb.put(2, "c") == []
    assert rb.put(0, "a") == ["a", "b", "c", "d"]
    with pytest.raises(RuntimeError, match="twice"):
        rb.put(2, "again")
    for seq in (5, 6, 7, 8):
        rb.put(seq, seq)
    with pytest.raises(RuntimeError, match="overflow"):
        rb.put(9, 9)
