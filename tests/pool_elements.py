"""Pool test helpers: elements workers import from here (tests/ is on their path), and a
way to pick a replica to kill mid-run."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from actors.element import Transform


class SlowSquare(Transform):
    """Squares numbers, slowly, and says which process did it."""

    def __init__(self, delay_s: float = 0.05) -> None:
        super().__init__()
        self.delay_s = delay_s

    def process(self, item: Any) -> list[Any]:
        time.sleep(self.delay_s)
        return [(item, item * item, os.getpid())]


class DieOn(Transform):
    """SIGKILLs its own process when it meets ``poison``, as a crashing codec would."""

    def __init__(self, poison: int, delay_s: float = 0.01) -> None:
        super().__init__()
        self.poison = poison
        self.delay_s = delay_s

    def process(self, item: Any) -> list[Any]:
        if item == self.poison:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(self.delay_s)
        return [item]


def busy_replica(pipeline: Any, pool: str, after_items: int, timeout: float = 60) -> int | None:
    """The pid of a replica of ``pool`` with work in flight, once the pool has finished
    ``after_items`` items (None if that did not happen within ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = pipeline.stats().pools.get(pool)
        if stats and stats.items >= after_items:
            busy = [r for r in stats.replicas if r["in_flight"] and r["state"] == "live"]
            if busy:
                return busy[0]["pid"]
        time.sleep(0.02)
    return None
