"""ZenohSink: publish fMP4 segments over Zenoh (key layout in actors/zenoh_link.py)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from actors.element import Sink
from actors.errors import ConfigError
from actors.types import ENCODED_SEGMENT, Caps, Packet
from actors.zenoh.link import (
    CONGESTION,
    ZenohOptions,
    check_prefix,
    encode_attachment,
    init_id,
    keys,
    publishers_key,
    receivers_key,
)

log = logging.getLogger("parallax.zenoh_sink")

POLL_S = 0.1


@dataclass(frozen=True)
class ZenohSinkSettings:
    prefix: str
    zenoh: ZenohOptions = field(default_factory=ZenohOptions)
    congestion: str = "block"
    """block: a slow receiver slows the pipeline and nothing is lost. drop: for live
    streams; zenoh drops what a slow link cannot take, and receivers count the gaps."""
    cache: int = 8
    """Recent segments kept for late joiners (zenoh.ext AdvancedPublisher cache)."""
    drain_timeout: float = 10.0
    """After EOS, seconds to wait for every receiver to confirm it (a slow receiver may
    still be reading queued segments); closing sooner would discard what is queued."""

    def __post_init__(self) -> None:
        check_prefix(self.prefix)
        if self.congestion not in CONGESTION:
            raise ConfigError(f"congestion {self.congestion!r}: use one of "
                              f"{', '.join(CONGESTION)}")
        if not 0 <= self.cache <= 1000:
            raise ConfigError(f"zenoh cache {self.cache}: must be 0-1000 segments")
        if not 0 <= self.drain_timeout <= 3600:
            raise ConfigError(f"drain_timeout={self.drain_timeout}: must be 0-3600 seconds")


class ZenohSink(Sink):
    """Publishes each media segment as one put; answers init queries from its queryable."""

    accepts = (ENCODED_SEGMENT,)

    def __init__(self, prefix: str | None = None, settings: ZenohSinkSettings | None = None,
                 **options: Any) -> None:
        super().__init__()
        self.settings = settings or ZenohSinkSettings(prefix=prefix, **options)
        self.session: Any = None
        self.init: bytes | None = None
        self.init_id = ""
        self.ended = False
        self.published = 0
        self.bytes = 0
        self.control_sn = 0
        self.lock = threading.Lock()

    def configure(self, caps_in: Caps | None) -> Caps:
        return caps_in

    def start(self) -> None:
        import zenoh
        import zenoh.ext as zx

        s = self.settings
        self.session = s.zenoh.open("publisher")
        self.init_key, segment_key = keys(s.prefix)
        cc = zenoh.CongestionControl.BLOCK if s.congestion == "block" else \
            zenoh.CongestionControl.DROP
        self.publisher = zx.declare_advanced_publisher(
            self.session, segment_key, congestion_control=cc,
            cache=zx.CacheConfig(max_samples=s.cache) if s.cache else None,
            publisher_detection=True,
            sample_miss_detection=zx.MissDetectionConfig(heartbeat=1.0))
        self.queryable = self.session.declare_queryable(self.init_key, self._answer)
        if self.caps_in is not None and self.caps_in.extradata:
            self._set_init(self.caps_in.extradata)
        # Last, so that a receiver waiting for its publisher to come back can ask for the
        # init as soon as it sees this; zenoh drops it when the session or process ends.
        self.token = self.session.liveliness().declare_token(
            f"{publishers_key(s.prefix)}/{self.session.zid()}")

    def _init_attachment(self) -> bytes:
        caps = self.caps_in
        return encode_attachment(init=self.init_id, codec=caps.codec_string or "",
                                 time_base=caps.time_base, seq=self.published,
                                 ended=self.ended)

    def _answer(self, query: Any) -> None:
        # Runs on a zenoh thread: answer from what is published now, never block.
        with self.lock:
            init, attachment = self.init, self._init_attachment() if self.init else None
        if init is not None:
            query.reply(self.init_key, init, attachment=attachment)

    def _set_init(self, init: bytes) -> None:
        if init == self.init:
            return
        with self.lock:
            self.init, self.init_id = init, init_id(init)
        self._control_put(self.init_key, init, self._init_attachment())

    def _control_put(self, key: str, payload: bytes, attachment: bytes) -> None:
        """A put outside the AdvancedPublisher (init changes, the end), signed with our
        session's id as its samples are: receivers take only what names the session that
        answered their init query. The queryable's entity id keeps these apart from the
        publisher's sample numbers, which zenoh's subscriber uses to drop duplicates."""
        import zenoh

        info = zenoh.SourceInfo(self.queryable.id, self.control_sn)
        self.control_sn += 1
        # Sent with BLOCK whatever the mode: a receiver must learn of a new init or the end.
        self.session.put(key, payload, attachment=attachment, source_info=info,
                         congestion_control=zenoh.CongestionControl.BLOCK)

    def process(self, packet: Packet) -> tuple:
        if packet.meta.get("init"):
            self._set_init(packet.data)
            return ()
        if self.init is None:
            raise ConfigError(f"'{self.name}': a media segment came before any init segment")
        attachment = encode_attachment(
            seq=self.published, pts=packet.pts, duration=packet.duration or 0,
            time_base=packet.time_base, keyframe=packet.keyframe,
            codec=packet.meta.get("codec") or self.caps_in.codec_string, init=self.init_id)
        self.publisher.put(packet.data, attachment=attachment)
        self.published += 1
        self.bytes += len(packet.data)
        return ()

    def flush(self) -> tuple:
        self._control_put(keys(self.settings.prefix)[1], b"",
                          encode_attachment(eos=True, seq=self.published))
        self.ended = True  # init replies now say so, for receivers that subscribe late
        self._await_receivers()
        return ()

    def _await_receivers(self) -> None:
        """Wait until every receiver dropped its liveliness token, i.e. got the EOS: a put
        only queues, and closing the session discards what a slow link has not taken."""
        s = self.settings
        key = f"{receivers_key(s.prefix)}/**"
        deadline = time.monotonic() + s.drain_timeout
        while True:
            waiting = [r for r in self.session.liveliness().get(key, timeout=1.0)
                       if r.ok is not None]
            if not waiting:
                return
            if time.monotonic() >= deadline:
                log.warning("zenoh:%s: %d receiver(s) had not got the end of the stream "
                            "%g s after it was sent; closing anyway", s.prefix,
                            len(waiting), s.drain_timeout)
                return
            time.sleep(POLL_S)

    def close(self, ok: bool) -> None:
        if self.session is None:
            return
        for entity in ("token", "queryable", "publisher"):
            obj = getattr(self, entity, None)
            if obj is not None:
                try:
                    obj.undeclare()
                except Exception:  # already gone with a closing session
                    log.debug("undeclaring %s", entity, exc_info=True)
        self.session.close()
        self.session = None

    def results(self) -> dict[str, Any]:
        return {"prefix": self.settings.prefix, "segments": self.published,
                "bytes": self.bytes, "congestion": self.settings.congestion}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(session=None, lock=None, publisher=None, queryable=None, token=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()
