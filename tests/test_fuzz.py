"""Network input, fuzzed: whatever a peer sends, parsing it raises only the errors the
receiver counts (MediaError for init segments, BadPayload for attachments), and the
receiver's callbacks never raise at all. Seeded, so a failure reproduces."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from streams import make_segments

from actors.errors import MediaError
from actors.streaming.fmp4 import complete_prefix, read_init, sample_count
from actors.zenoh.link import (
    BadPayload,
    decode_attachment,
    decode_init_attachment,
    encode_attachment,
    init_id,
)
from actors.zenoh.zenoh_source import ZenohSource

MUTATIONS = 10_000
SEED = 20261129


@pytest.fixture(scope="module")
def stream():
    items = make_segments(frames=60, rate=30, fragment=1.0)
    return items[0].data, items[1].data


def mutate(rng: random.Random, data: bytes) -> bytes:
    """Flip, delete, insert or truncate a few times, as a fuzzer's havoc stage does."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op, i = rng.random(), rng.randrange(len(b) + 1)
        if op < 0.5 and b:
            b[min(i, len(b) - 1)] = rng.randrange(256)
        elif op < 0.7:
            del b[i:i + rng.randint(1, 16)]
        elif op < 0.9:
            b[i:i] = rng.randbytes(rng.randint(1, 16))
        else:
            del b[i:]
    return bytes(b)


ATTACHMENT = encode_attachment(seq=3, pts=90, duration=30, time_base="1/30", keyframe=True,
                               codec="avc1.64001F,mp4a.40.2", init="0123456789abcdef")


def test_parsers_raise_only_what_the_receiver_counts(stream):
    init, segment = stream
    rng = random.Random(SEED)
    for _ in range(MUTATIONS):
        with _only(MediaError):
            read_init(mutate(rng, init))
        with _only(BadPayload):
            decode_attachment(mutate(rng, ATTACHMENT))
        decode_init_attachment(mutate(rng, ATTACHMENT))  # never raises: all is optional
        torn = mutate(rng, segment)
        sample_count(torn, 1)
        complete_prefix(init + torn)


def test_deeply_nested_attachments_are_malformed_not_a_crash():
    deep = b"[" * 2000 + b"]" * 2000
    assert len(deep) <= 4096
    with pytest.raises(BadPayload, match="nested too deep"):
        decode_attachment(deep)
    src = ZenohSource("fuzz/x")
    src._on_segment(sample(b"x", deep))
    assert src.stats["malformed"] == 1


class _only:
    """Like pytest.raises, but also passes when nothing is raised."""

    def __init__(self, allowed: type[BaseException]) -> None:
        self.allowed = allowed

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is None or issubclass(kind, self.allowed):
            return True
        raise AssertionError(f"{kind.__name__} escaped the parser: {exc}") from exc


PUBLISHER = "0123456789abcdef0123456789abcdef"  # the session id the init reply named


def sample(payload: bytes, attachment: bytes | None) -> SimpleNamespace:
    """What a zenoh Sample looks like to the callbacks: payload and attachment bytes, sent
    by the publisher's session."""
    def wrap(b: bytes | None) -> SimpleNamespace | None:
        return None if b is None else SimpleNamespace(to_bytes=lambda: b)

    class Payload(bytes):
        def to_bytes(self) -> bytes:
            return bytes(self)

    sender = SimpleNamespace(source_id=SimpleNamespace(zid=PUBLISHER), source_sn=0)
    return SimpleNamespace(payload=Payload(payload), attachment=wrap(attachment),
                           source_info=sender)


def test_receiver_callbacks_count_and_never_raise(stream):
    init, segment = stream
    rng = random.Random(SEED + 1)
    src = ZenohSource("fuzz/x", max_buffered=MUTATIONS)
    src._accept_init(init, None, PUBLISHER)
    calls = eos = 0
    good = encode_attachment(seq=0, pts=0, duration=30, time_base="1/30", keyframe=True,
                             codec="avc1.64001F", init=init_id(init))
    for i in range(MUTATIONS // 5):
        src._on_init(sample(mutate(rng, init), None))
        before = src.eos_seq
        attachment = mutate(rng, ATTACHMENT) if i % 2 else good.replace(b'"seq":0',
                                                                       f'"seq":{i}'.encode())
        src._on_segment(sample(mutate(rng, segment), attachment))
        calls += 1
        eos += src.eos_seq != before
    st = src.stats
    # Every sample is accounted for: kept, late, or counted as bad; none raised.
    assert st["received"] + st["late"] + st["malformed"] + st["mismatched"] + eos == calls
    assert st["malformed"] > 0 and st["received"] > 0
