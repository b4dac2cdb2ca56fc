"""Elements for tests and demos: a list source, a collecting sink, a stalling pass-through.

Shipped in the library (as bytewax ships its testing module) so users can test
their own elements and pipelines the same way we do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from actors.element import Sink, Source, Transform
from actors.errors import ConfigError
from actors.flow import Block, FlowPolicy, FlowSignal
from actors.types import EOS, Caps, item_nbytes

__test__ = False  # keep pytest from collecting anything here


class ListSource(Source):
    """Emits ``items`` (``repeat`` times over), then EOS.

    ``interval_s`` paces production; ``fail_at`` raises at that item index, to
    test error handling; ``policy`` sets the flow policy (Block by default).
    """

    def __init__(
        self,
        items: Sequence[Any],
        repeat: int = 1,
        interval_s: float = 0.0,
        policy: FlowPolicy | None = None,
        caps: Caps | None = None,
        fail_at: int | None = None,
    ) -> None:
        super().__init__()
        if repeat < 0 or interval_s < 0:
            raise ConfigError("ListSource: repeat and interval_s must be >= 0")
        self.items = list(items)
        self.repeat = repeat
        self.interval_s = interval_s
        self.policy = policy or Block()
        self.caps = caps
        self.fail_at = fail_at
        self.index = 0
        self.signals: list[str] = []
        self._next_time: float | None = None

    def configure(self, caps_in: Caps | None) -> Caps:
        if self.caps is not None:
            return self.caps
        largest = max((item_nbytes(i) for i in self.items), default=0)
        return Caps.any(slot_size=largest or None)

    def flow_policy(self) -> FlowPolicy:
        return self.policy

    def handle_flow_signal(self, signal: FlowSignal) -> None:
        super().handle_flow_signal(signal)
        self.signals.append(signal.value)

    def frames_total(self) -> int | None:
        return len(self.items) * self.repeat

    def produce(self) -> Any:
        if self.index >= len(self.items) * self.repeat:
            return EOS
        if self.fail_at is not None and self.index == self.fail_at:
            raise RuntimeError(f"ListSource failed on purpose at item {self.index}")
        if self.interval_s:
            now = time.monotonic()
            self._next_time = self._next_time or now
            if self._next_time > now:
                time.sleep(self._next_time - now)
            self._next_time += self.interval_s
        item = self.items[self.index % len(self.items)]
        self.index += 1
        return item

    def results(self) -> dict[str, Any]:
        return {"produced": self.index, "signals": list(self.signals)}


class CollectSink(Sink):
    """Records what reaches it.

    ``keep=True`` stores the items themselves; otherwise only a key per item
    (the item if it is a number or string, else its pts or meta['seq']), so a
    long run of big frames does not fill memory. ``delay_s`` makes it slow.
    """

    def __init__(self, keep: bool = True, delay_s: float = 0.0) -> None:
        super().__init__()
        self.keep = keep
        self.delay_s = delay_s
        self.items: list[Any] = []
        self.count = 0
        self.nbytes = 0
        self.eos = False

    def process(self, item: Any) -> Iterable[Any]:
        if self.delay_s:
            time.sleep(self.delay_s)
        self.count += 1
        self.nbytes += item_nbytes(item)
        self.items.append(item if self.keep else _key(item))
        return ()

    def flush(self) -> Iterable[Any]:
        self.eos = True
        return ()

    def results(self) -> dict[str, Any]:
        return {"items": list(self.items), "count": self.count, "bytes": self.nbytes,
                "eos": self.eos}


class StallingPassThrough(Transform):
    """Passes items through unchanged, but can be slow, stall on a schedule, or fail.

    * ``delay_s``: sleep this long for every item (a persistently slow element).
    * ``pixel_delay_s``: sleep this long per pixel of a frame (an encoder whose cost
      follows the picture's size, for --adapt resolution).
    * ``stall_s`` every ``every_s``: sleep ``stall_s`` once per ``every_s`` of wall
      time (an encoder that hiccups, e.g. 150 ms once a second).
    * ``fail_at``: raise ValueError on that item index.
    * ``mark_flush``: emit the string ``"flush:<name>"`` at EOS, to check flush order.
    """

    def __init__(self, delay_s: float = 0.0, stall_s: float = 0.0, every_s: float = 1.0,
                 fail_at: int | None = None, mark_flush: bool = False,
                 pixel_delay_s: float = 0.0) -> None:
        super().__init__()
        if delay_s < 0 or stall_s < 0 or every_s <= 0 or pixel_delay_s < 0:
            raise ConfigError("StallingPassThrough: delay_s, stall_s, pixel_delay_s >= 0 and "
                              "every_s > 0")
        self.delay_s = delay_s
        self.pixel_delay_s = pixel_delay_s
        self.stall_s = stall_s
        self.every_s = every_s
        self.fail_at = fail_at
        self.mark_flush = mark_flush
        self.seen = 0
        self.stalls = 0
        self._next_stall: float | None = None

    def process(self, item: Any) -> Iterable[Any]:
        if self.fail_at is not None and self.seen == self.fail_at:
            raise ValueError(f"{self.name} failed on purpose at item {self.seen}")
        self.seen += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.pixel_delay_s and hasattr(item, "width"):
            time.sleep(self.pixel_delay_s * item.width * item.height)
        if self.stall_s:
            now = time.monotonic()
            if self._next_stall is None:
                self._next_stall = now + self.every_s
            elif now >= self._next_stall:
                time.sleep(self.stall_s)
                self.stalls += 1
                self._next_stall += self.every_s
        return (item,)

    def flush(self) -> Iterable[Any]:
        return (f"flush:{self.name}",) if self.mark_flush else ()

    def results(self) -> dict[str, Any]:
        return {"seen": self.seen, "stalls": self.stalls}


class MapTransform(Transform):
    """Applies ``fn`` to every item (as Ray Data's map does); ``None`` results are dropped."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.fn = fn

    def process(self, item: Any) -> Iterable[Any]:
        out = self.fn(item)
        return () if out is None else (out,)


def _key(item: Any) -> Any:
    if isinstance(item, (int, float, str)):
        return item
    meta = getattr(item, "meta", None) or {}
    if "seq" in meta:
        return meta["seq"]
    return getattr(item, "pts", None)
