"""ZenohSource: receive a stream that a ZenohSink publishes, as segments or decoded frames."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from actors.element import Source
from actors.errors import ConfigError, MediaError
from actors.flow import WAIT_SLICE_S
from actors.streaming.fmp4 import check_segment, read_init, sample_count
from actors.streaming.segment_decoder import SegmentDecoder
from actors.types import ENCODED_SEGMENT, EOS, Caps, Packet
from actors.zenoh.link import (
    MAX_SEGMENT_BYTES,
    BadPayload,
    ZenohOptions,
    check_prefix,
    decode_attachment,
    decode_init_attachment,
    init_id,
    keys,
    receivers_key,
    zid_of,
)
from actors.zenoh.publisher_return import PublisherReturn, sender_of

log = logging.getLogger("parallax.zenoh_source")

OUTPUTS = ("segments", "frames")
LOG_FIRST = 5  # malformed samples logged one by one before logging every 100th
MAX_SEQ_JUMP = 100_000  # segments a seq may run ahead of ours (a day of 1 s segments)


@dataclass(frozen=True)
class ZenohSourceSettings:
    prefix: str
    zenoh: ZenohOptions = field(default_factory=ZenohOptions)
    output: str = "segments"
    """segments: fMP4 items for HlsSink/Fmp4FileSink; frames: decoded raw video."""
    init_timeout: float = 30.0
    """Seconds to wait at READY for a publisher to answer the init query."""
    idle_timeout: float | None = None
    """End the stream when no segment arrives for this long, or when a publisher that went
    away without an end of stream has not come back within it (None: wait for ever)."""
    idle_timeout_option: str = "idle_timeout"
    """How the user set idle_timeout, for the log line (the CLI: --idle-timeout)."""
    reorder_window: int = 8
    """Segments held while waiting for a missing one before it is counted as a gap."""
    reorder_timeout: float = 1.0
    """...or seconds waited for it."""
    max_buffered: int = 32
    """Segments held for a slow pipeline; beyond that the zenoh callback waits, which
    pushes back on a BLOCK publisher."""
    max_segment_bytes: int = MAX_SEGMENT_BYTES
    history: int = 8
    """Recent segments asked of the publisher's cache on joining."""

    def __post_init__(self) -> None:
        check_prefix(self.prefix)
        if self.output not in OUTPUTS:
            raise ConfigError(f"output {self.output!r}: use one of {', '.join(OUTPUTS)}")
        for name in ("init_timeout", "reorder_timeout"):
            if not 0 < getattr(self, name) <= 3600:
                raise ConfigError(f"{name}={getattr(self, name)}: must be 0-3600 seconds")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ConfigError(f"idle_timeout={self.idle_timeout}: must be > 0 seconds")
        for name in ("reorder_window", "max_buffered"):
            if not 1 <= getattr(self, name) <= 10_000:
                raise ConfigError(f"{name}={getattr(self, name)}: must be 1-10000")


class ZenohSource(PublisherReturn, Source):
    """Subscribes to ``{prefix}/segment`` and fetches the init segment by query.

    Segments are delivered in seq order; missing ones are counted as gaps (in ``drops``),
    and malformed samples are counted and logged, never raised. A publisher that goes away
    without an end of stream is waited for, and a returning one taken (publisher_return.py).
    """

    # A stream cannot be received again: what follows it writes to survive a failure, and
    # is replaced, by default, when its process dies (actors/restart.py).
    live = True

    def __init__(self, prefix: str | None = None, settings: ZenohSourceSettings | None = None,
                 **options: Any) -> None:
        super().__init__()
        self.settings = settings or ZenohSourceSettings(prefix=prefix, **options)
        self.session: Any = None
        self.decoder = SegmentDecoder() if self.settings.output == "frames" else None
        self._reset_state()

    def _reset_state(self) -> None:
        self.cond = threading.Condition()
        self.buffer: dict[int, tuple[Packet, float]] = {}
        self.ready: list[Any] = []
        self.next_seq: int | None = None
        self.joined_at: int | None = None
        self.token: Any = None
        self.eos_seq: int | None = None
        self.init: bytes | None = None
        self.init_key = ""
        self.publisher_zid: str | None = None
        self.pending_init: bytes | None = None
        self.last_arrival = time.monotonic()
        self.closing = False
        self.decoded: list[Any] = []
        self.decoder_flushed = False
        self.ended = ""
        self.stats = {"received": 0, "delivered": 0, "samples": 0, "malformed": 0, "late": 0,
                      "mismatched": 0, "bad_init": 0, "foreign": 0, "publisher_lost": 0,
                      "publisher_resumed": 0}
        self._reset_return()

    # -- READY: find the publisher --------------------------------------------
    def configure(self, caps_in: Caps | None) -> Caps:
        s = self.settings
        if self.session is None:
            self.session = s.zenoh.open("subscriber")
        if self.token is None:
            # From now on the publisher waits for us at its end (bounded), so a stream that
            # ends while this pipeline is still starting is not closed under our feet.
            self.token = self.session.liveliness().declare_token(
                f"{receivers_key(s.prefix)}/{self.session.zid()}")
        self.init_key, _ = keys(s.prefix)
        deadline = time.monotonic() + s.init_timeout
        last_error = "no publisher answered"
        while True:
            for reply in self.session.get(self.init_key, timeout=min(2.0, s.init_timeout)):
                if reply.ok is None:
                    continue
                try:
                    self._accept_init(reply.ok.payload.to_bytes(), reply.ok.attachment,
                                      zid_of(reply.replier_id))
                    break
                except (MediaError, BadPayload) as exc:
                    last_error = f"its init segment is unusable: {exc}"
            if self.init is not None:
                break
            if time.monotonic() >= deadline:
                raise MediaError(
                    f"no publisher on zenoh:{s.prefix} answered within {s.init_timeout:g} s "
                    f"({last_error}); check that it runs and that --connect reaches it")
            time.sleep(0.2)
        caps = Caps(kind=ENCODED_SEGMENT, codec=self.info.codec, width=self.info.width,
                    height=self.info.height, rate=self.info.rate, extradata=self.init,
                    codec_string=self.info.codec_string, time_base=self.time_base)
        if self.decoder is not None:
            return self.decoder.negotiate([caps], [self.name])
        return caps

    def ready_timeout(self) -> float:
        return self.settings.init_timeout

    def _accept_init(self, init: bytes, attachment: Any, publisher: str | None) -> None:
        self.info = read_init(init)
        raw = None if attachment is None else attachment.to_bytes()
        self.time_base = decode_init_attachment(raw).time_base or self.info.time_base
        self.init, self.init_ids = init, {init_id(init)}
        self.publisher_zid = publisher
        if publisher is None:
            log.warning("zenoh:%s: the init reply does not name its sender; samples are "
                        "taken from anyone", self.settings.prefix)

    def _foreign(self, sample: Any) -> str | None:
        """Why a sample is not the publisher's, judged by the session id it carries.

        Zenoh does not authenticate ``source_info`` (any peer may write any id there), so
        this catches a third peer that does not bother to lie, and a stray second
        publisher on the same prefix; Zenoh's authentication and ACL are what keep a
        determined forger out.
        """
        if self.publisher_zid is None:
            return None
        sender = sender_of(sample)
        if sender == self.publisher_zid:
            return None
        return (f"sent by {sender or 'an unnamed session'}, not by the publisher "
                f"{self.publisher_zid} whose init was taken")

    # -- PLAYING ---------------------------------------------------------------
    def start(self) -> None:
        import zenoh
        import zenoh.ext as zx

        if self.session is None:  # this copy was made after READY
            self.configure(None)
        s = self.settings
        init_key, segment_key = keys(s.prefix)
        self.last_arrival = time.monotonic()
        # First: a publisher that dies while we still subscribe is then noticed.
        self._watch_publisher()
        self.init_sub = self.session.declare_subscriber(init_key, self._on_init)
        self._join(init_key)
        # A direct callback runs on zenoh's receive thread, so when the pipeline lags and
        # the buffer is full, waiting in it stops reading the socket: a BLOCK publisher
        # slows down and a DROP one drops. zenoh-python's default (indirect) callback
        # queues without bound instead.
        self.subscriber = zx.declare_advanced_subscriber(
            self.session, segment_key, zenoh.handlers.Callback(self._on_segment,
                                                               indirect=False),
            history=zx.HistoryConfig(detect_late_publishers=True, max_samples=s.history))
        self.ready.append(Packet(self.init, time_base=self.time_base,
                                 meta={"init": True, "codec": self.info.codec_string}))
        if self.decoder is not None:
            self.decoder.start()

    def _join(self, init_key: str) -> None:
        """Ask the publisher where the stream is, now that we subscribe: segments from
        there on reach us, so a missing one is a gap; and if it has already ended, that
        count is all there is (its end went out before we listened)."""
        for reply in self.session.get(init_key, timeout=2.0):
            if reply.ok is None or reply.ok.attachment is None:
                continue
            if self.publisher_zid is not None and \
                    zid_of(reply.replier_id) != self.publisher_zid:
                continue  # another peer answering on the prefix knows nothing of our stream
            state = decode_init_attachment(reply.ok.attachment.to_bytes())
            with self.cond:
                self.joined_at = state.seq
                if state.ended and self.eos_seq is None:
                    self.eos_seq = state.seq
                    self._drop_token()
            return

    def _count_bad(self, kind: str, why: str) -> None:
        self.stats[kind] += 1
        n = self.stats[kind]
        if n <= LOG_FIRST or n % 100 == 0:
            log.warning("zenoh:%s: ignored a %s sample (%d so far): %s", self.settings.prefix,
                        kind.replace("_", " "), n, why)

    def _on_init(self, sample: Any) -> None:
        # A zenoh thread, fed by the network: nothing may raise here, whatever arrives.
        foreign = self._foreign(sample)
        if foreign:
            with self.cond:
                if self._hint_locked():
                    return
            self._count_bad("foreign", foreign)
            return
        try:
            data = sample.payload.to_bytes()
            read_init(data)
        except Exception as exc:  # MediaError, and anything a parser did not foresee
            self._count_bad("bad_init", f"{type(exc).__name__}: {exc}")
            return
        with self.cond:
            if data != self.init:
                self.pending_init = data
                self.init_ids.add(init_id(data))

    def _on_segment(self, sample: Any) -> None:
        # A zenoh thread: validate, buffer, and wait (bounded) when the pipeline lags.
        epoch = self.epoch  # judged against this publisher: if another is taken meanwhile,
        foreign = self._foreign(sample)  # the sample belongs to a stream no longer followed
        if foreign:  # before anything else: an end, a seq or bytes only count from it
            with self.cond:
                if self._hold_locked(sample):
                    return
            self._count_bad("foreign", foreign)
            return
        payload = sample.payload
        try:
            meta = decode_attachment(sample.attachment.to_bytes() if sample.attachment
                                     else None)
            data, frames = b"", 0
            if not meta["eos"]:
                if not 0 < len(payload) <= self.settings.max_segment_bytes:
                    raise BadPayload(f"payload of {len(payload)} bytes (limit "
                                     f"{self.settings.max_segment_bytes})")
                data = payload.to_bytes()
                check_segment(data)  # torn or foreign bytes never reach the output
                frames = sample_count(data, self.info.video_track)
        except Exception as exc:  # BadPayload, MediaError, and what no parser foresaw
            self._count_bad("malformed", str(exc) if isinstance(exc, (BadPayload, MediaError))
                            else f"{type(exc).__name__}: {exc}")
            return
        with self.cond:
            if self.epoch != epoch:
                self.stats["late"] += 1
                return
            self.last_arrival = time.monotonic()
            implausible = self._implausible(meta)
            if implausible:
                self._count_bad("malformed", implausible)
                return
            if meta["eos"]:
                self.eos_seq = meta["seq"]
                self._drop_token()  # tells the publisher it may close
                self.cond.notify_all()
                return
            if meta["init"] not in self.init_ids:
                self._count_bad("mismatched", "it belongs to an init segment never received")
                return
            seq = meta["seq"]
            if (self.next_seq is not None and seq < self.next_seq) or seq in self.buffer:
                self.stats["late"] += 1
                return
            while (len(self.buffer) + len(self.ready) >= self.settings.max_buffered
                   and not self.closing):
                self.cond.wait(WAIT_SLICE_S)
            if self.epoch != epoch:
                self.stats["late"] += 1
                return
            self.stats["received"] += 1
            # "samples": the segment's video frames, which progress and summaries count
            # (an audio track's samples are not frames).
            packet = Packet(data, pts=meta["pts"], dts=meta["pts"],
                            duration=meta["duration"], time_base=meta["time_base"],
                            keyframe=meta["keyframe"],
                            meta={"seq": seq, "codec": meta["codec"], "init": False,
                                  "samples": frames, "epoch": self.epoch})
            self.buffer[seq] = (packet, time.monotonic())
            self.cond.notify_all()

    def _implausible(self, meta: dict[str, Any]) -> str | None:
        """Why a sequence number cannot be the publisher's (lock held): one far beyond
        ours would make everything before it a gap; an end before segments already
        received would cut the stream short."""
        ours = self.next_seq if self.next_seq is not None else self.joined_at
        if ours is None and self.buffer:  # the very first segments are still held
            ours = min(self.buffer)
        seq = meta["seq"]
        if ours is not None and seq > ours + MAX_SEQ_JUMP:
            return f"seq {seq} is {seq - ours} ahead of the stream (limit {MAX_SEQ_JUMP})"
        if meta["eos"] and self.buffer and seq <= max(self.buffer):
            return f"an end of stream at seq {seq}, before segments already received"
        if meta["eos"] and self.next_seq is not None and seq < self.next_seq:
            return f"an end of stream at seq {seq}, before segments already delivered"
        return None

    def _release(self) -> None:
        """Move deliverable segments from the reorder buffer to ``ready`` (lock held)."""
        s = self.settings
        if self.pending_init is not None:
            self.init, self.pending_init = self.pending_init, None
            self.ready.append(Packet(self.init, time_base=self.time_base,
                                     meta={"init": True}))
        while self.buffer:
            oldest_seq = min(self.buffer)
            waited = time.monotonic() - min(t for _, t in self.buffer.values())
            if self.next_seq is None:
                # First segments: history replies and live puts race, so wait a moment to
                # start from the oldest one rather than the first to arrive.
                if waited < s.reorder_timeout and len(self.buffer) < s.reorder_window:
                    return
                # Segments from the one published when we joined are ours: a missing
                # first one is a gap, not a later start.
                self.next_seq = oldest_seq if self.joined_at is None \
                    else max(0, min(oldest_seq, self.joined_at))
            if self.next_seq in self.buffer:
                self.ready.append(self.buffer.pop(self.next_seq)[0])
                self.next_seq += 1
                continue
            eos_reached = self.eos_seq is not None and not self.buffer
            if eos_reached or (waited < s.reorder_timeout and
                               len(self.buffer) < s.reorder_window):
                return
            self.counters.drops += oldest_seq - self.next_seq  # reported as gaps
            self.next_seq = oldest_seq

    def _finished(self) -> bool:
        if self.eos_seq is not None and not self.buffer and not self.ready:
            if self.next_seq is None and self.eos_seq > 0 and \
                    time.monotonic() - self.last_arrival < self.settings.reorder_timeout:
                return False  # joined after the end: the cache's replies are on their way
            if self.next_seq is not None and self.next_seq < self.eos_seq:
                self.counters.drops += self.eos_seq - self.next_seq
            self.ended = "eos"
            self._discard_held_locked()
            return True
        idle = self.settings.idle_timeout
        if not idle or self.buffer or self.ready:
            return False
        if self.lost_at is not None:  # the bound counts from the loss
            if time.monotonic() - self.lost_at > idle:
                log.warning("zenoh:%s: no publisher came back within %g s (%s); ending the "
                            "stream", self.settings.prefix, idle,
                            self.settings.idle_timeout_option)
                self.ended = "publisher lost"
                self._discard_held_locked()
                return True
            return False
        if time.monotonic() - self.last_arrival > idle:
            log.warning("zenoh:%s: no segment for %g s; ending the stream",
                        self.settings.prefix, idle)
            self.ended = "idle"
            return True
        return False

    def produce(self) -> Any:
        if self.decoded:
            return self.decoded.pop(0)
        with self.cond:
            self._release()
            if not self.ready:
                if self._finished():
                    return self._end()
                self.cond.wait(WAIT_SLICE_S)
                self._release()
            item = self.ready.pop(0) if self.ready else None
            self.cond.notify_all()
        if item is None:
            return None
        if not item.meta.get("init"):
            item = self._retimed(item)
            self.stats["delivered"] += 1
            self.stats["samples"] += item.meta["samples"]  # video frames, by the truns
        if self.decoder is None:
            return item
        self.decoded = self.decoder.handle(item)
        return self.decoded.pop(0) if self.decoded else None

    def _end(self) -> Any:
        if self.decoder is not None and not self.decoder_flushed:
            self.decoder_flushed = True  # what is left drains through `decoded`, then EOS
            self.decoded = self.decoder.handle_eos()
            if self.decoded:
                return self.decoded.pop(0)
        return EOS

    def _drop_token(self) -> None:
        token, self.token = self.token, None
        if token is not None:
            try:
                token.undeclare()
            except Exception:  # the session is already closing
                log.debug("undeclaring the receiver token", exc_info=True)

    def close(self, ok: bool) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        self._stop_watching()
        self._drop_token()
        for entity in ("subscriber", "init_sub"):
            obj = getattr(self, entity, None)
            if obj is not None:
                try:
                    obj.undeclare()
                except Exception:
                    log.debug("undeclaring %s", entity, exc_info=True)
        if self.session is not None:
            self.session.close()
            self.session = None

    def results(self) -> dict[str, Any]:
        out = dict(self.stats, gaps=self.counters.drops, prefix=self.settings.prefix,
                   ended=self.ended, held=self._held_count(), **self._return_results())
        if self.decoder is not None:
            out.update(self.decoder.results())
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(session=None, cond=None, subscriber=None, init_sub=None, token=None,
                     wake=None, publisher_sub=None, returner=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.cond = threading.Condition()
        self.wake = threading.Event()
