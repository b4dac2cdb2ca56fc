"""What a ZenohSource does when its publisher goes away without an end of stream, and when
one comes back on the same prefix (README, "When the publisher goes away").

Every ZenohSink holds a liveliness token, ``{prefix}/publishers/{zid}``, for as long as its
session lives; zenoh removes it when the session closes or its process dies. A receiver
whose publisher's token goes before the end of the stream waits (``idle_timeout`` is the
bound) and asks for the init segment again whenever a publisher shows itself. The first
session to answer that query becomes the publisher, exactly as at start-up: a session that
only puts samples is never taken, whatever it claims.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from fractions import Fraction
from typing import Any

from actors.errors import MediaError
from actors.streaming.fmp4 import read_init
from actors.types import Packet
from actors.zenoh.link import (
    BadPayload,
    InitState,
    decode_init_attachment,
    init_id,
    publishers_key,
    zid_of,
)
from actors.zenoh.retime import shift_decode_times, track_timescales

log = logging.getLogger("parallax.zenoh_source")

RETURN_POLL_S = 1.0  # while the publisher is gone, the init is asked for this often too
INIT_QUERY_S = 2.0


def sender_of(sample: Any) -> str | None:
    """The session a sample names in its source_info (None: it names none)."""
    try:
        info = sample.source_info
        return None if info is None else zid_of(info.source_id)
    except Exception:  # a sample built by hand (tests) or an API that changed
        return None


class PublisherReturn:
    """Mixed into ZenohSource, whose lock (``cond``), session, settings, stats and
    reorder buffer it shares; every method named ``*_locked`` runs with ``cond`` held."""

    cond: threading.Condition
    session: Any
    settings: Any
    stats: dict[str, Any]
    buffer: dict[int, tuple[Packet, float]]
    ready: list[Any]
    counters: Any

    def _reset_return(self) -> None:
        self.lost_at: float | None = None
        self.lost_wall: float | None = None
        self.return_gaps: list[float] = []
        self.refused: set[str] = set()
        # While the publisher is gone, samples of sessions that may yet answer the init
        # query: a returning publisher's first segments (its cache's history replies come
        # with its token, before the query can be answered) are kept, not lost.
        self.held: dict[str, list[Any]] = {}
        self.epoch = 0  # publisher sessions taken after the first one
        # epoch -> [track timescales, seconds added to its times (None: not known yet)]
        self.timing: dict[int, list[Any]] = {}
        self.timeline_end = Fraction(0)
        self.wake = threading.Event()
        self.publisher_sub: Any = None
        self.returner: threading.Thread | None = None

    def _watch_publisher(self) -> None:
        prefix = self.settings.prefix
        self.publisher_sub = self.session.liveliness().declare_subscriber(
            f"{publishers_key(prefix)}/*", self._on_publisher_token, history=True)
        self.returner = threading.Thread(target=self._await_return, daemon=True,
                                         name=f"zenoh-return {prefix}")
        self.returner.start()

    def _on_publisher_token(self, sample: Any) -> None:
        # A zenoh thread: only note what happened; the init query runs on our own thread.
        import zenoh

        zid = str(sample.key_expr).rsplit("/", 1)[-1]
        with self.cond:
            if sample.kind == zenoh.SampleKind.DELETE:
                if zid == self.publisher_zid and self.lost_at is None and \
                        self.eos_seq is None and not self.closing:
                    self._lost_locked()
            elif self.lost_at is not None:
                self.wake.set()

    def _lost_locked(self) -> None:
        self.lost_at, self.lost_wall = time.monotonic(), time.time()
        self.stats["publisher_lost"] += 1
        idle = self.settings.idle_timeout
        bound = f"up to {idle:g} s ({self.settings.idle_timeout_option})" if idle \
            else "for it (no idle timeout)"
        log.warning("zenoh:%s: publisher of %s gone at %s; waiting %s", self.settings.prefix,
                    self.settings.prefix, time.strftime("%H:%M:%S",
                                                        time.localtime(self.lost_wall)), bound)
        self.wake.set()

    def _hint_locked(self) -> bool:
        """An init put from another session while ours is gone: a publisher starting up
        (not counted as foreign); it is asked, not believed."""
        if self.lost_at is None:
            return False
        self.wake.set()
        return True

    def _hold_locked(self, sample: Any) -> bool:
        sender = sender_of(sample)
        if self.lost_at is None or sender is None or \
                self._held_count() >= self.settings.max_buffered:
            return False
        self.held.setdefault(sender, []).append(sample)
        self.wake.set()
        return True

    def _held_count(self) -> int:
        return sum(len(v) for v in self.held.values())

    def _discard_held_locked(self, keep: str | None = None) -> list[Any]:
        """Count every held sample but ``keep``'s as foreign; returns ``keep``'s."""
        kept = self.held.pop(keep, []) if keep else []
        for sender, samples in self.held.items():
            for _ in samples:
                self._count_bad("foreign", f"sent by {sender}, which never answered the "
                                           "init query")
        self.held = {}
        return kept

    def _await_return(self) -> None:
        while True:
            self.wake.wait(RETURN_POLL_S)
            self.wake.clear()
            with self.cond:
                if self.closing:
                    return
                if self.lost_at is None:
                    continue
            try:
                self._ask_for_init()
            except Exception:  # the session is closing under us
                if self.closing:
                    return
                log.debug("zenoh:%s: asking for the init", self.settings.prefix,
                          exc_info=True)

    def _ask_for_init(self) -> None:
        for reply in self.session.get(self.init_key, timeout=INIT_QUERY_S):
            if reply.ok is None:
                continue
            zid = zid_of(reply.replier_id)
            if zid is None:  # its samples could not be told from anyone else's
                continue
            try:
                data = reply.ok.payload.to_bytes()
                info = read_init(data)
                scales = track_timescales(data)
                raw = reply.ok.attachment
                state = decode_init_attachment(None if raw is None else raw.to_bytes())
            except (MediaError, BadPayload) as exc:
                if zid not in self.refused:  # asked again every second: say it once
                    self.refused.add(zid)
                    log.warning("zenoh:%s: session %s answered with an unusable init "
                                "segment; still waiting: %s", self.settings.prefix, zid, exc)
                continue
            with self.cond:
                if self.lost_at is None or self.closing:
                    return
                self._resume_locked(zid, data, info, scales, state)
                held = self._discard_held_locked(keep=zid)
            for sample in held:  # now from the publisher: taken as if they came just now
                self._on_segment(sample)
            return

    def _resume_locked(self, zid: str, data: bytes, info: Any, scales: dict[int, int],
                       state: InitState) -> None:
        gap = time.monotonic() - self.lost_at
        self.return_gaps.append(round(gap, 3))
        self.stats["publisher_resumed"] += 1
        self.lost_at = None
        self.last_arrival = time.monotonic()
        prefix = self.settings.prefix
        if zid == self.publisher_zid:  # the link came back, the session never went
            log.warning("zenoh:%s: the publisher is back after %.1f s (same session)",
                        prefix, gap)
            return
        self._deliver_held_locked()
        self.epoch += 1
        self.timing[self.epoch] = [scales, None]
        self.publisher_zid, self.info = zid, info
        self.time_base = state.time_base or info.time_base
        self.init_ids, self.pending_init = {init_id(data)}, None
        if data != self.init:  # sinks take a new init as a new map (HLS: a discontinuity)
            self.init = data
            self.ready.append(Packet(data, time_base=self.time_base,
                                     meta={"init": True, "codec": info.codec_string}))
        # Its seq numbers start again: order and count gaps from where it says it is.
        self.next_seq, self.joined_at = None, state.seq
        if state.ended:
            self.eos_seq = state.seq
            self._drop_token()
        log.warning("zenoh:%s: a publisher is back after %.1f s (session %s, at seq %s); "
                    "taking its init, the stream goes on", prefix, gap, zid, state.seq)
        self.cond.notify_all()

    def _deliver_held_locked(self) -> None:
        """The old session's segments still held go out first, in order: nothing after
        them can fill their holes now, which are gaps."""
        for seq in sorted(self.buffer):
            if self.next_seq is not None and seq > self.next_seq:
                self.counters.drops += seq - self.next_seq
            self.ready.append(self.buffer.pop(seq)[0])
            self.next_seq = seq + 1

    def _retimed(self, item: Packet) -> Packet:
        """A returning session's segment, moved to go on from the end of the output's
        timeline (actors/zenoh/retime.py says why)."""
        tb = item.time_base
        timing = self.timing.get(item.meta.get("epoch", 0))
        if timing is not None:
            if timing[1] is None:
                timing[1] = self.timeline_end - Fraction(item.pts or 0) * tb
            try:
                data = shift_decode_times(item.data, timing[1], timing[0])
            except MediaError as exc:
                log.warning("zenoh:%s: a segment is passed on with its own times: %s",
                            self.settings.prefix, exc)
            else:
                moved = round(timing[1] / tb)
                item = dataclasses.replace(
                    item, data=data, pts=None if item.pts is None else item.pts + moved,
                    dts=None if item.dts is None else item.dts + moved)
        end = Fraction((item.pts or 0) + (item.duration or 0)) * tb
        self.timeline_end = max(self.timeline_end, end)
        return item

    def _return_results(self) -> dict[str, Any]:
        out: dict[str, Any] = {"publisher_gaps_s": list(self.return_gaps)}
        if self.lost_wall is not None:  # the last time it went
            out["publisher_lost_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z",
                                                     time.localtime(self.lost_wall))
        return out

    def _stop_watching(self) -> None:
        self.wake.set()
        if self.publisher_sub is not None:
            try:
                self.publisher_sub.undeclare()
            except Exception:  # the session is already closing
                log.debug("undeclaring the publisher watch", exc_info=True)
            self.publisher_sub = None
