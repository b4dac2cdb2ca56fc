"""Elements for the pool tests; workers import them from here (tests/ is on their path)."""

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
