"""A third Zenoh peer, in a session of its own, forging samples on a stream's keys: the
receiver refuses them, counts them, still writes every frame the publisher sent, and
``parallax receive`` says so with exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from types import SimpleNamespace
from typing import Any

import pytest
import zenoh
from streams import decode_bytes, make_segments
from zenoh_helpers import RawPublisher, free_endpoint, wait_until

from actors.streaming.fmp4_file_sink import Fmp4FileSink
from actors.zenoh.link import ZenohOptions, encode_attachment, keys
from actors.zenoh.zenoh_source import ZenohSource
from pipelines.runtime.pipeline import Pipeline

GOOD = {"seq": 3, "pts": 90, "duration": 30, "time_base": "1/30", "keyframe": True,
        "codec": "avc1.64001F"}


@pytest.fixture(scope="module")
def items():
    return make_segments(frames=240, rate=30, fragment=1.0)


class Forger:
    """Another session on the publisher's endpoint, putting on its segment key."""

    def __init__(self, prefix: str, endpoint: str, pub: RawPublisher) -> None:
        self.session = ZenohOptions(connect=(endpoint,)).open("subscriber")
        self.segment_key = keys(prefix)[1]
        self.pub, self.sn = pub, 0

    def put(self, payload: bytes, claim: Any = None, **fields: Any) -> None:
        """``claim``: the entity whose id goes in source_info (None: no source_info)."""
        info = None
        if claim is not None:
            self.sn += 1
            info = zenoh.SourceInfo(claim, self.sn)
        self.session.put(self.segment_key, payload, source_info=info,
                         attachment=encode_attachment(**{**GOOD, "init": self.pub.id,
                                                         **fields}))

    def close(self) -> None:
        self.session.close()


def receiver(prefix: str, endpoint: str, out: str) -> Pipeline:
    p = Pipeline("rx")
    p.add(ZenohSource(prefix, zenoh=ZenohOptions(connect=(endpoint,)), reorder_timeout=0.5),
          name="src")
    p.add(Fmp4FileSink(out), name="sink")
    p.link("src", "sink")
    return p


def forge_all(forger: Forger, pub: RawPublisher, media: list[Any]) -> None:
    """Three seqs of seven sent; each forgery would cut, stall or corrupt the stream."""
    own = forger.session.declare_publisher(forger.segment_key)
    try:
        for claim in (None, own.id):  # no sender named, then its own session named
            forger.put(b"", claim, eos=True, seq=3)         # a plausible, early end
            forger.put(media[5].data, claim, seq=50)        # a jump: 46 gaps
            forger.put(media[6].data, claim, seq=3)         # a well-formed wrong segment
    finally:
        own.undeclare()
    # Naming the publisher's session passes the sender check (zenoh does not
    # authenticate source_info); the content checks still refuse these. The entity is
    # the publisher's queryable, not its segment publisher, whose sample numbers a
    # forger could otherwise push ahead so that zenoh drops the real ones.
    forger.put(os.urandom(5000), pub.queryable.id, seq=3)      # garbage, valid attachment
    forger.put(media[3].data[:-100], pub.queryable.id, seq=3)  # a torn segment
    forger.put(media[3].data, pub.queryable.id, seq=10**12)    # 10^12 gaps
    forger.put(b"", pub.queryable.id, eos=True, seq=1)         # an end before received


def test_a_third_peer_cannot_corrupt_or_cut_the_stream_short(ray_session, items, tmp_path):
    endpoint, out = free_endpoint(), tmp_path / "rx.mp4"
    pub = RawPublisher("t/forged", endpoint, items[0].data)
    forger = Forger("t/forged", endpoint, pub)
    media = items[1:]
    try:
        rx = receiver("t/forged", endpoint, str(out))
        rx.start()
        pub.wait_for_subscriber()
        for seq in range(3):
            pub.segment(media[seq], seq)
        wait_until(lambda: rx.results("src")["delivered"] == 3, "3 segments delivered")
        # Forged and real samples come from different sessions, so nothing orders them:
        # the publisher goes on once the receiver has counted every forgery.
        forge_all(forger, pub, media)
        wait_until(lambda: rx.results("src")["foreign"] + rx.results("src")["malformed"]
                   == 10, "10 forgeries counted")
        for seq in range(3, 7):
            pub.segment(media[seq], seq)
        pub.eos(7)
        rx.wait(timeout=60)
    finally:
        forger.close()
        pub.close()
    r = rx.results("src")
    assert r["foreign"] == 6 and r["malformed"] == 4, r
    assert r["gaps"] == 0 and r["delivered"] == 7, r
    assert len(decode_bytes(out.read_bytes())) == 7 * 30  # nothing forged was written


def test_receive_exits_1_naming_the_forgeries_and_keeps_every_frame(items, tmp_path):
    endpoint, out = free_endpoint(), tmp_path / "rx.mp4"
    pub = RawPublisher("t/forged-cli", endpoint, items[0].data)
    forger = Forger("t/forged-cli", endpoint, pub)
    media = items[1:]
    rx = subprocess.Popen(  # its own process and its own Ray, as on another machine
        [sys.executable, "-m", "pipelines.cli", "receive", "zenoh:t/forged-cli", str(out),
         "--connect", endpoint, "--stats-json", "--init-timeout", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    err: list[str] = []
    written = [0]  # items the receiver's sink has taken, from its --stats-json lines

    def read() -> None:
        for line in rx.stderr:
            err.append(line)

    def read_stats() -> None:
        for line in rx.stdout:
            sink = json.loads(line).get("elements", {}).get("sink") or {}
            written[0] = sink.get("buffers_in", written[0])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    threading.Thread(target=read_stats, daemon=True).start()
    try:
        pub.wait_for_subscriber(timeout=120)
        for seq in range(3):
            pub.segment(media[seq], seq)
        # Forged samples come over another session, which nothing orders against the
        # publisher's: forge once the receiver has the init and the 3 segments, or a
        # forged end could arrive first and be a plausible one.
        wait_until(lambda: written[0] >= 4, "3 segments written by the receiver")
        forge_all(forger, pub, media)
        # One session's puts arrive in order, so once the last forgery is logged (the
        # worker's log reaches the CLI's stderr) all of them were counted.
        wait_until(lambda: "ignored a malformed sample (4 so far)" in "".join(err),
                   "the forgeries logged by the receiver")
        for seq in range(3, 7):
            pub.segment(media[seq], seq)
        pub.eos(7)
        code = rx.wait(timeout=120)
        reader.join(timeout=10)
    finally:
        rx.kill()
        forger.close()
        pub.close()
    err = "".join(err)
    assert code == 1, err
    assert "6 foreign" in err and "4 malformed" in err, err
    assert "gaps" not in err.split("error:")[-1], err
    assert len(decode_bytes(out.read_bytes())) == 7 * 30


def test_only_the_session_that_answered_the_init_counts():
    """Without Ray: a sample naming no sender or another session is refused before it is
    read, whatever it says; the publisher's own end is taken."""
    from test_fuzz import sample

    def sent_by(zid: str | None) -> Any:
        s = sample(b"", encode_attachment(eos=True, seq=0))
        s.source_info = None if zid is None else \
            SimpleNamespace(source_id=SimpleNamespace(zid=zid), source_sn=0)
        return s

    src = ZenohSource("t/unit")
    src._accept_init(make_segments(frames=30)[0].data, None, "aa" * 16)
    src._on_segment(sent_by(None))
    src._on_segment(sent_by("bb" * 16))
    assert src.stats["foreign"] == 2 and src.eos_seq is None
    src._on_segment(sent_by("aa" * 16))
    assert src.stats["foreign"] == 2 and src.eos_seq == 0
