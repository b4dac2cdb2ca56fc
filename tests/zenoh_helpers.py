"""Zenoh test helpers: free loopback ports, a raw publisher, a gated source, and a
ZenohSink publishing from a process of its own (which a test can SIGKILL).

Imported by tests and, through the session's PYTHONPATH, by Ray actors.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
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


def wait_for_receiver(prefix: str, endpoint: str, timeout: float = 120) -> None:
    """Until a receiver holds its token on ``prefix`` (a CLI receiver starting its Ray
    takes a while): what it misses before then is not its fault."""
    session = ZenohOptions(connect=(endpoint,)).open("subscriber")
    try:
        wait_until(lambda: any(r.ok is not None for r in session.liveliness().get(
            f"{prefix}/receivers/*", timeout=1.0)), "a receiver up", timeout)
    finally:
        session.close()


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
        # seq 0, as a real publisher says before its first segment: the receiver then
        # knows where the stream starts whatever reaches it first (a forger's samples come
        # over another session, which nothing orders against the publisher's).
        query.reply(self.init_key, self.init, attachment=encode_attachment(
            init=self.id, codec="x", time_base="1/30", seq=0))

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


class PublisherProcess:
    """A real ZenohSink in a process of its own, without Ray, publishing ``segments``
    one-second segments of a test pattern, one every ``pace_s``; it ends the stream when
    ``end`` is set, else it idles until killed, as a publisher whose host died.
    ``wait_after``: segments it publishes before waiting for a receiver (None: it never
    waits); a receiver reconnecting to a new publisher takes zenoh's retry delay, and a
    short stream must not end before then."""

    def __init__(self, prefix: str, endpoint: str, segments: int, pattern: str = "smpte",
                 pace_s: float = 0.3, end: bool = False, wait_after: int | None = None
                 ) -> None:
        here = os.path.dirname(os.path.abspath(__file__))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(here), here]))
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), prefix, endpoint, str(segments),
             pattern, str(pace_s), "1" if end else "0",
             "-1" if wait_after is None else str(wait_after)],
            stdout=subprocess.PIPE, text=True, env=env)
        self.published, self.ready_at, self.first_at = 0, None, None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("ready"):
                self.ready_at = time.monotonic()
            elif line.startswith("published"):
                self.published = int(line.split()[1])
                self.first_at = self.first_at or time.monotonic()

    def kill(self) -> None:
        """SIGKILL: no end of stream, no goodbye; zenoh sees the link drop."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def wait(self, timeout: float = 120) -> int:
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()


def _publish(prefix: str, endpoint: str, segments: int, pattern: str, pace_s: float,
             end: bool, wait_after: int) -> None:
    from streams import make_segments

    from actors.types import Caps
    from actors.zenoh.zenoh_sink import ZenohSink

    items = make_segments(frames=30 * segments, rate=30, fragment=1.0, pattern=pattern)
    sink = ZenohSink(prefix, zenoh=ZenohOptions(listen=(endpoint,)))
    sink.negotiate([Caps.segments(Caps.encoded_video("h264", 320, 240, 30),
                                  items[0].meta["codec"], items[0].data)], ["src"])
    sink.start()
    print("ready", flush=True)
    for n, item in enumerate(items[1:]):
        if n == wait_after:
            wait_until(lambda: any(r.ok is not None for r in sink.session.liveliness().get(
                f"{prefix}/receivers/*", timeout=1.0)), "a receiver", 120)
        time.sleep(pace_s)
        sink.handle(item)
        print("published", sink.published, flush=True)
    if end:
        sink.handle_eos()
        sink.close(True)
        return
    time.sleep(3600)


if __name__ == "__main__":
    prefix, endpoint, n, pattern, pace, end, wait_after = sys.argv[1:8]
    _publish(prefix, endpoint, int(n), pattern, float(pace), end == "1", int(wait_after))
