"""Zenoh test helpers: free loopback ports, a raw publisher, and a gated source.

Imported by tests and, through the session's PYTHONPATH, by Ray actors.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

from actors.testing import ListSource
from actors.zenoh.link import ZenohOptions, encode_attachment, init_id, keys


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp/127.0.0.1:{s.getsockname()[1]}"


def wait_until(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Poll ``check`` until it holds: tests wait on what happened, not on a clock, so a
    slow machine only makes them slower."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)


class RawPublisher:
    """A zenoh session in the test process speaking (or breaking) the key layout by hand."""

    def __init__(self, prefix: str, endpoint: str, init: bytes) -> None:
        self.session = ZenohOptions(listen=(endpoint,)).open("publisher")
        self.init_key, self.segment_key = keys(prefix)
        self.init, self.id = init, init_id(init)
        self.queryable = self.session.declare_queryable(self.init_key, self._answer)
        self.publisher = self.session.declare_publisher(self.segment_key)
        self.sn = 0  # zenoh's per-sender sample number: receivers drop repeated ones

    def source_info(self) -> Any:
        """Names this session as every put of a real publisher does (receivers take
        samples only from the session that answered their init query)."""
        import zenoh

        self.sn += 1
        return zenoh.SourceInfo(self.publisher.id, self.sn)

    def _answer(self, query: Any) -> None:
        query.reply(self.init_key, self.init,
                    attachment=encode_attachment(init=self.id, codec="x", time_base="1/30"))

    def wait_for_subscriber(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.publisher.matching_status.matching:  # the status object is truthy
            if time.monotonic() > deadline:
                raise TimeoutError("no subscriber matched")
            time.sleep(0.05)
        time.sleep(0.2)  # the subscriber's routes settle on every hop

    def segment(self, item: Any, seq: int) -> None:
        self.publisher.put(item.data, attachment=encode_attachment(
            seq=seq, pts=item.pts, duration=item.duration, time_base=item.time_base,
            keyframe=item.keyframe, codec=item.meta["codec"], init=self.id),
            source_info=self.source_info())

    def raw(self, payload: bytes, attachment: bytes | None, key: str | None = None) -> None:
        self.session.put(key or self.segment_key, payload, attachment=attachment,
                         source_info=self.source_info())

    def eos(self, count: int) -> None:
        self.raw(b"", encode_attachment(eos=True, seq=count))

    def close(self) -> None:
        self.queryable.undeclare()
        self.publisher.undeclare()
        self.session.close()


class GatedSource(ListSource):
    """A ListSource that waits for a file to exist before its first item."""

    def __init__(self, items: list[Any], gate: str, **kw: Any) -> None:
        super().__init__(items, **kw)
        self.gate = gate

    def produce(self) -> Any:
        if not os.path.exists(self.gate):
            time.sleep(0.05)
            return None
        return super().produce()
