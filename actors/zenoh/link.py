"""What ZenohSink and ZenohSource share: session config, the key layout and the attachment
schema. The layout is a public contract (README, "Zenoh streams"):

- ``{prefix}/init``: a queryable answering with the current init segment; also put
  whenever it changes. Attachment: ``{"v": 1, "init": ID, "codec": STR, "time_base": "N/D",
  "seq": N, "ended": BOOL}``, N being the segments published so far (a receiver that joins
  before segment N arrives knows that a missing N is a gap, not the start of its stream),
  and ``ended`` true once the end of the stream was sent (a receiver that subscribed
  after it knows that N segments are all there is).
- ``{prefix}/segment``: one put per media segment. Payload: the moof+mdat bytes.
  Attachment: ``{"v": 1, "seq": INT, "pts": INT, "duration": INT, "time_base": "N/D",
  "keyframe": BOOL, "codec": STR, "init": ID}``. The end of the stream is a put with an
  empty payload and ``{"v": 1, "eos": true, "seq": N}``, N being the segments published.
- ``{prefix}/receivers/{zid}``: a liveliness token each receiver holds until it has the
  end of the stream; the publisher waits (bounded) for these to go before it closes, so
  that a slow receiver still gets the EOS that was queued for it.
- ``{prefix}/publishers/{zid}``: a liveliness token the publisher holds while its session
  lives (zenoh drops it when the session closes or its process dies): a receiver that
  sees it go before the end of the stream knows the publisher is gone, and waits for one
  to come back.

Every put names the publisher's session in zenoh's ``source_info`` (the AdvancedPublisher
does it for segments; the init and end puts set it), and receivers take samples only from
the session that answered their init query. Zenoh does not authenticate that field: it is
a consistency check, and zenoh's authentication and ACL are what keep forgers out.

Payloads are bytes and attachments JSON; nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from actors.errors import ConfigError

SCHEMA_VERSION = 1
DEFAULT_PORT = 7447
DEFAULT_ENDPOINT = f"tcp/127.0.0.1:{DEFAULT_PORT}"
MAX_ATTACHMENT_BYTES = 4096
MAX_SEGMENT_BYTES = 64 << 20  # 64 MiB: a 2 s fragment at 200 Mbps is 50 MB
MAX_SEQ = 2**53
CODEC_RE = re.compile(r"[A-Za-z0-9.-]{1,64}(,[A-Za-z0-9.-]{1,64}){0,7}")  # avc1.64001F,mp4a.40.2
INIT_ID_RE = re.compile(r"[0-9a-f]{16}")
CONGESTION = ("block", "drop")


def init_id(init: bytes) -> str:
    """Short content hash tying segments to the init segment they need."""
    return hashlib.sha256(init).hexdigest()[:16]


def keys(prefix: str) -> tuple[str, str]:
    """(init key, segment key) for a stream prefix."""
    return f"{prefix}/init", f"{prefix}/segment"


def receivers_key(prefix: str) -> str:
    """Where receivers' liveliness tokens live (``{prefix}/receivers/{zid}``)."""
    return f"{prefix}/receivers"


def publishers_key(prefix: str) -> str:
    """Where publishers' liveliness tokens live (``{prefix}/publishers/{zid}``)."""
    return f"{prefix}/publishers"


def zid_of(entity: Any) -> str | None:
    """The session id (hex) of a zenoh EntityGlobalId, or None when there is none."""
    zid = getattr(entity, "zid", None)
    return None if zid is None else str(zid)


def check_prefix(prefix: str) -> str:
    """A prefix names one stream: no wildcards or empty chunks (e.g. 'studio/cam1')."""
    if not prefix or prefix.startswith("/") or prefix.endswith("/") or "//" in prefix:
        raise ConfigError(f"zenoh prefix {prefix!r}: give slash-separated names such as "
                          "'studio/cam1', with no leading, trailing or doubled '/'")
    if any(c in prefix for c in "*$?#") or any(c.isspace() for c in prefix):
        raise ConfigError(f"zenoh prefix {prefix!r}: wildcards (* $), '?', '#' and spaces "
                          "are not allowed; a prefix names one stream")
    return prefix


@dataclass(frozen=True)
class ZenohOptions:
    """How a session is opened. With no config file: peer mode, multicast scouting off,
    and loopback endpoints, so nothing is reachable from other machines by default."""

    connect: tuple[str, ...] | None = None
    listen: tuple[str, ...] | None = None
    config_json5: str | None = None
    """Contents of a zenoh JSON5 config (TLS, auth, ACLs); read where the command runs so
    that every host gets the same settings."""
    config_name: str = "--zenoh-config"

    @classmethod
    def load(cls, config_file: str | None = None, connect: list[str] | None = None,
             listen: list[str] | None = None) -> ZenohOptions:
        text = None
        if config_file:
            try:
                with open(config_file) as f:
                    text = f.read()
            except OSError as exc:
                raise ConfigError(f"--zenoh-config {config_file!r}: {exc.strerror}") from None
        opts = cls(tuple(connect) if connect else None, tuple(listen) if listen else None,
                   text, f"--zenoh-config {config_file!r}" if config_file else "--zenoh-config")
        opts.build("publisher")  # fail now, with one line, rather than inside an actor
        return opts

    def build(self, role: str) -> Any:
        """A zenoh.Config for a 'publisher' (listens) or a 'subscriber' (connects)."""
        import zenoh

        def insert(key: str, value: Any, label: str) -> None:
            try:
                config.insert_json5(key, json.dumps(value))
            except (zenoh.ZError, ValueError) as exc:
                raise ConfigError(f"{label}: {one_line(exc)}") from None

        if self.config_json5 is not None:
            try:
                config = zenoh.Config.from_json5(self.config_json5)
            except (zenoh.ZError, ValueError) as exc:
                raise ConfigError(f"{self.config_name}: invalid zenoh configuration: "
                                  f"{one_line(exc)}") from None
        else:
            config = zenoh.Config()
            insert("mode", "peer", "zenoh mode")
            insert("scouting/multicast/enabled", False, "zenoh scouting")
            publisher = role == "publisher"
            insert("listen/endpoints", [DEFAULT_ENDPOINT if publisher else "tcp/127.0.0.1:0"],
                   "--listen")
            insert("connect/endpoints", [] if publisher else [DEFAULT_ENDPOINT], "--connect")
        if self.listen is not None:
            insert("listen/endpoints", list(self.listen), "--listen")
        if self.connect is not None:
            insert("connect/endpoints", list(self.connect), "--connect")
        return config

    def open(self, role: str) -> Any:
        import zenoh

        config = self.build(role)
        try:
            return zenoh.open(config)
        except zenoh.ZError as exc:
            where = self.listen or ([DEFAULT_ENDPOINT] if role == "publisher" else [])
            raise ConfigError(
                f"cannot open a zenoh session ({one_line(exc)}); is "
                f"another publisher already listening on {', '.join(where) or 'the endpoint'}?"
                " pick another with --listen") from None


def one_line(exc: BaseException, limit: int = 200) -> str:
    """Zenoh's errors span lines (JSON5 carets, source paths); a CLI error is one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    m = re.search(r'msg: "(.*?)"', text)  # JSON5 errors wrap the useful part
    text = m.group(1) if m else text
    text = re.sub(r" at /\S+", "", text)  # Rust source paths mean nothing to users
    return text if len(text) <= limit else text[: limit - 3] + "..."


def encode_attachment(**fields: Any) -> bytes:
    if "time_base" in fields and fields["time_base"] is not None:
        tb = Fraction(fields["time_base"])
        fields["time_base"] = f"{tb.numerator}/{tb.denominator}"
    return json.dumps({"v": SCHEMA_VERSION, **fields}, separators=(",", ":")).encode()


class BadPayload(ValueError):
    """A sample that does not follow the schema; counted and logged, never raised further."""


def _int(doc: dict, key: str, lo: int, hi: int, optional: bool = False) -> int | None:
    v = doc.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise BadPayload(f"attachment field {key!r} must be an integer in [{lo}, {hi}]")
    return v


def parse_time_base(text: Any) -> Fraction:
    if not isinstance(text, str) or not re.fullmatch(r"[1-9]\d{0,9}/[1-9]\d{0,9}", text):
        raise BadPayload("attachment field 'time_base' must look like '1/90000'")
    return Fraction(text)


@dataclass(frozen=True)
class InitState:
    """What an init reply's attachment says of the stream (None where it does not say)."""

    time_base: Fraction | None = None
    seq: int | None = None
    ended: bool = False


def decode_init_attachment(raw: bytes | None) -> InitState:
    """The stream's state from an init reply's attachment; what is missing or malformed is
    left unknown.

    The init segment itself is authoritative (its mdhd timescale); the attachment only
    refines it, so a missing or malformed one is not an error.
    """
    if raw is None or len(raw) > MAX_ATTACHMENT_BYTES:
        return InitState()
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return InitState()
    if not isinstance(doc, dict):
        return InitState()
    try:
        time_base = parse_time_base(doc.get("time_base"))
    except BadPayload:
        time_base = None
    try:
        seq = _int(doc, "seq", 0, MAX_SEQ, optional=True)
    except BadPayload:
        seq = None
    return InitState(time_base, seq, doc.get("ended") is True and seq is not None)


def decode_attachment(raw: bytes | None) -> dict[str, Any]:
    """Validate a segment (or EOS) attachment against the schema and size limits."""
    if raw is None:
        raise BadPayload("no attachment")
    if len(raw) > MAX_ATTACHMENT_BYTES:
        raise BadPayload(f"attachment of {len(raw)} bytes exceeds {MAX_ATTACHMENT_BYTES}")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BadPayload("attachment is not JSON (or nested too deep)") from None
    if not isinstance(doc, dict) or doc.get("v") != SCHEMA_VERSION:
        raise BadPayload(f"attachment is not a version {SCHEMA_VERSION} object")
    if doc.get("eos") is True:
        return {"eos": True, "seq": _int(doc, "seq", 0, MAX_SEQ)}
    out = {
        "eos": False,
        "seq": _int(doc, "seq", 0, MAX_SEQ),
        "pts": _int(doc, "pts", -MAX_SEQ, MAX_SEQ, optional=True),
        "duration": _int(doc, "duration", 0, MAX_SEQ),
        "time_base": parse_time_base(doc.get("time_base")),
    }
    if not isinstance(doc.get("keyframe"), bool):
        raise BadPayload("attachment field 'keyframe' must be true or false")
    out["keyframe"] = doc["keyframe"]
    for key, pattern in (("codec", CODEC_RE), ("init", INIT_ID_RE)):
        v = doc.get(key)
        if not isinstance(v, str) or not pattern.fullmatch(v):
            raise BadPayload(f"attachment field {key!r} is missing or malformed")
        out[key] = v
    return out
