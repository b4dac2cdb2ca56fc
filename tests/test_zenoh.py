"""Zenoh sink and source: real sessions on loopback, each in its own process (Ray hosts,
or a CLI process with its own Ray), plus a raw publisher that breaks the rules on purpose."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from fractions import Fraction

import pytest
from streams import assert_usage_error, decode_bytes, make_segments, parallax
from zenoh_helpers import GatedSource, RawPublisher, free_endpoint, wait_until

from actors.errors import ConfigError, MediaError, PipelineError
from actors.streaming.fmp4 import iter_boxes
from actors.streaming.fmp4_file_sink import Fmp4FileSink
from actors.testing import CollectSink
from actors.types import Caps, Packet
from actors.zenoh.link import (
    BadPayload,
    ZenohOptions,
    check_prefix,
    decode_attachment,
    encode_attachment,
)
from actors.zenoh.zenoh_sink import ZenohSink
from actors.zenoh.zenoh_source import ZenohSource
from pipelines.outputs import OutputOptions
from pipelines.runtime.pipeline import Pipeline
from pipelines.transcode import TranscodeOptions, build_transcode

GOOD = {"seq": 3, "pts": 90, "duration": 30, "time_base": "1/30", "keyframe": True,
        "codec": "avc1.64001F", "init": "0123456789abcdef"}


@pytest.fixture(scope="module")
def items():
    return make_segments(frames=240, rate=30, fragment=1.0)


def segment_caps(items):
    return Caps.segments(Caps.encoded_video("h264", 320, 240, 30), items[0].meta["codec"],
                         items[0].data)


# -- the schema ---------------------------------------------------------------
def test_attachment_round_trip():
    doc = decode_attachment(encode_attachment(**GOOD))
    assert doc["seq"] == 3 and doc["time_base"] == Fraction(1, 30)
    assert decode_attachment(encode_attachment(eos=True, seq=7)) == {"eos": True, "seq": 7}


@pytest.mark.parametrize("raw, needle", [
    (None, "no attachment"), (b"\xff\xfe", "not JSON"), (b"[1, 2]", "version 1"),
    (json.dumps({**GOOD, "v": 2}).encode(), "version 1"),
    (json.dumps({**GOOD, "v": 1, "seq": -1}).encode(), "'seq'"),
    (json.dumps({**GOOD, "v": 1, "seq": "3"}).encode(), "'seq'"),
    (json.dumps({**GOOD, "v": 1, "keyframe": 1}).encode(), "'keyframe'"),
    (json.dumps({**GOOD, "v": 1, "time_base": "1/0"}).encode(), "'time_base'"),
    (json.dumps({**GOOD, "v": 1, "codec": "../../etc"}).encode(), "'codec'"),
    (json.dumps({**GOOD, "v": 1, "init": "x" * 16}).encode(), "'init'"),
    (json.dumps({**GOOD, "v": 1, "pad": "x" * 5000}).encode(), "exceeds"),
])
def test_attachment_schema_rejects(raw, needle):
    with pytest.raises(BadPayload, match=needle):
        decode_attachment(raw)


@pytest.mark.parametrize("prefix", ["", "/a", "a/", "a//b", "a/*", "a/**", "a b", "a$b"])
def test_bad_prefixes(prefix):
    with pytest.raises(ConfigError, match="zenoh prefix"):
        check_prefix(prefix)


def test_bad_zenoh_config(tmp_path):
    bad = tmp_path / "bad.json5"
    bad.write_text("{ mode: 'peer', listen: { endpoints: [ }")
    with pytest.raises(ConfigError, match="invalid zenoh configuration"):
        ZenohOptions.load(str(bad))
    with pytest.raises(ConfigError, match="No such file"):
        ZenohOptions.load(str(tmp_path / "missing.json5"))
    with pytest.raises(ConfigError, match="--connect"):
        ZenohOptions.load(connect=["not-an-endpoint"])


def test_default_session_is_loopback_without_multicast():
    config = ZenohOptions().build("publisher")
    assert json.loads(config.get_json("listen/endpoints")) == ["tcp/127.0.0.1:7447"]
    assert json.loads(config.get_json("scouting/multicast/enabled")) is False
    sub = ZenohOptions().build("subscriber")
    assert json.loads(sub.get_json("connect/endpoints")) == ["tcp/127.0.0.1:7447"]
    assert json.loads(sub.get_json("listen/endpoints")) == ["tcp/127.0.0.1:0"]


# -- receiving from a raw publisher -------------------------------------------
def receiver(prefix, endpoint, sink, **kw):
    p = Pipeline("rx")
    p.add(ZenohSource(prefix, zenoh=ZenohOptions(connect=(endpoint,)), **kw), name="src")
    p.add(sink, name="sink")
    p.link("src", "sink")
    return p


def test_malformed_out_of_order_and_missing_segments_are_counted(ray_session, items, tmp_path):
    endpoint, out = free_endpoint(), tmp_path / "rx.mp4"
    pub = RawPublisher("t/bad", endpoint, items[0].data)
    try:
        rx = receiver("t/bad", endpoint, Fmp4FileSink(str(out)), reorder_timeout=0.5)
        rx.start()
        pub.wait_for_subscriber()
        media = items[1:]
        pub.segment(media[0], 0)
        pub.raw(b"junk", None)                                      # no attachment
        pub.raw(b"junk", b"{not json")                               # bad JSON
        pub.raw(b"junk", json.dumps({**GOOD, "v": 1, "seq": "x"}).encode())  # bad field
        pub.raw(b"", encode_attachment(**{**GOOD, "init": pub.id}))  # empty payload
        pub.raw(b"\x00" * 100, None, key=pub.init_key)               # garbage init
        pub.segment(media[2], 2)                                     # out of order...
        pub.segment(media[1], 1)                                     # ...repaired
        pub.segment(media[1], 1)                                     # duplicate
        pub.segment(media[3], 3)
        pub.segment(media[5], 5)                                     # 4 never comes
        pub.segment(media[6], 6)
        pub.segment(media[7], 7)
        pub.eos(8)
        rx.wait(timeout=60)
    finally:
        pub.close()
    r = rx.results("src")
    assert r["malformed"] == 4 and r["bad_init"] == 1 and r["late"] == 1, r
    assert r["gaps"] == 1 and r["delivered"] == 7, r
    assert rx.stats().elements["src"].drops == 1
    frames = decode_bytes(out.read_bytes())
    assert len(frames) == 7 * 30
    times = [round(float(f.pts * f.time_base), 3) for f in frames]
    assert times == sorted(times)  # delivered in seq order despite arrival order


def test_no_publisher_is_a_clear_error(ray_session, tmp_path):
    rx = receiver("t/none", free_endpoint(), CollectSink(), init_timeout=1.0)
    with pytest.raises((PipelineError, MediaError), match="no publisher on zenoh:t/none"):
        rx.run()


# -- sink to source ----------------------------------------------------------
def test_transcode_publish_and_receive_cli_give_the_same_frames(ray_session, tmp_path):
    endpoint, out = free_endpoint(), tmp_path / "got.mp4"
    rx = subprocess.Popen(  # its own process and its own Ray, as on another machine
        [sys.executable, "-m", "pipelines.cli", "receive", "zenoh:t/cli", str(out),
         "--connect", endpoint, "--json", "--init-timeout", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    try:
        pub = build_transcode(TranscodeOptions(
            "testsrc:duration=5,size=320x240,live=1", "zenoh:t/cli",
            out=OutputOptions(zenoh=ZenohOptions(listen=(endpoint,)))))
        time.sleep(3)  # a receiver that connects before or after the first segment both work
        sent = pub.run()
        published = pub.results("mux")["frames"]
        got, err = rx.communicate(timeout=120)
        assert rx.returncode == 0, err
    finally:
        rx.kill()
    assert published >= 100  # a live source on a loaded 2-core box may drop a few
    assert len(decode_bytes(out.read_bytes())) == published
    # Both summaries count frames, not the segments that carried them.
    assert sent.frames == published
    assert json.loads(got)["frames"] == published
    assert f"done: {published} frames" in err


def test_late_joiner_gets_the_init_and_decodes_from_its_first_segment(ray_session, tmp_path):
    endpoint = free_endpoint()
    pub = build_transcode(TranscodeOptions(
        "testsrc:duration=120,size=320x240,live=1", "zenoh:t/late",
        out=OutputOptions(zenoh=ZenohOptions(listen=(endpoint,)))))
    pub.start()
    try:
        # Joins once three segments are out, and the stream ends once the receiver has
        # two: each step waits on what happened, so a slow machine only takes longer
        # (a fixed 4 s join into a 7 s stream found no publisher left on a loaded box).
        wait_until(lambda: pub.results("sink")["segments"] >= 3, "3 segments published")
        rx = receiver("t/late", endpoint, CollectSink(), output="frames", history=1)
        rx.start()
        wait_until(lambda: rx.results("src")["delivered"] >= 2, "2 segments received")
    finally:
        pub.end_stream()
    rx.wait(timeout=120)
    pub.wait(timeout=120)
    frames = rx.results("sink")["items"]
    src = rx.results("src")
    assert src["gaps"] == 0 and src["corrupt_segments"] == 0, src
    assert frames and frames[0].time > 1.5  # it joined mid-stream...
    # ...and decoded every frame of every segment it got. A live source on a loaded 2-core
    # machine drops frames (the receiver starting up is such a load), so a 1 s segment
    # holds up to 30 frames: count what the segments hold instead of assuming 30.
    assert src["delivered"] >= 2 and len(frames) == src["samples"]
    assert src["samples"] <= src["delivered"] * 30
    times = [f.time for f in frames]
    assert times == sorted(set(times))
    assert src["delivered"] < pub.results("sink")["segments"]


def padded(segment: bytes, size: int) -> bytes:
    """A segment's moof with an mdat of ``size`` random bytes: big, and still shaped as a
    segment (receivers check the boxes, not what the samples hold)."""
    moof = next(b for b in iter_boxes(segment) if b.type == b"moof")
    return segment[moof.start:moof.end] + struct.pack(">I4s", 8 + size, b"mdat") + \
        os.urandom(size)


@pytest.mark.parametrize("congestion", ["block", "drop"])
def test_block_against_drop_under_a_slow_receiver(ray_session, items, tmp_path, congestion):
    endpoint, gate = free_endpoint(), str(tmp_path / "go")
    big = [Packet(padded(items[1].data, 1 << 20), pts=i * 30, duration=30,
                  time_base=items[1].time_base, keyframe=True,
                  meta={"codec": items[0].meta["codec"]}) for i in range(40)]
    pub = Pipeline("pub")
    pub.add(GatedSource(big, gate, caps=segment_caps(items)), name="src")
    pub.add(ZenohSink("t/cc", zenoh=ZenohOptions(listen=(endpoint,)), congestion=congestion,
                      cache=0), name="sink")
    pub.link("src", "sink")
    pub.start()
    rx = receiver("t/cc", endpoint, CollectSink(keep=False, delay_s=0.05), max_buffered=2,
                  history=1)
    rx.start()
    time.sleep(1.5)  # the receiver subscribes
    t0 = time.monotonic()
    open(gate, "w").close()
    pub.wait(timeout=120)
    publish_s = time.monotonic() - t0
    rx.wait(timeout=120)
    src = rx.results("src")
    assert src["delivered"] + src["gaps"] == 40, src
    if congestion == "block":
        assert src["gaps"] == 0 and src["delivered"] == 40
        assert publish_s > 40 * 0.05 * 0.5  # the publisher waited for the receiver
    else:
        assert src["gaps"] > 0, src  # the slow receiver lost segments...
        assert rx.stats().elements["src"].drops == src["gaps"]  # ...and they are counted


def test_a_receiver_that_never_confirms_eos_delays_the_publisher_only_to_its_bound(
        ray_session, items, tmp_path):
    endpoint, gate = free_endpoint(), str(tmp_path / "go")
    pub = Pipeline("pub")
    pub.add(GatedSource(items[1:4], gate, caps=segment_caps(items)), name="src")
    pub.add(ZenohSink("t/stuck", zenoh=ZenohOptions(listen=(endpoint,)), drain_timeout=1.0),
            name="sink")
    pub.link("src", "sink")
    pub.start()
    # A forged receiver: it holds a token under the receivers key and never lets go.
    forged = ZenohOptions(connect=(endpoint,)).open("subscriber")
    token = forged.liveliness().declare_token("t/stuck/receivers/forged")
    try:
        time.sleep(0.5)
        open(gate, "w").close()
        t0 = time.monotonic()
        pub.wait(timeout=60)
        waited = time.monotonic() - t0
    finally:
        token.undeclare()
        forged.close()
    assert pub.results("sink")["segments"] == 3
    assert waited >= 1.0  # it did wait for the receiver, then gave up


def test_a_receiver_that_joins_after_the_end_gets_the_cache_and_ends(ray_session, items,
                                                                      tmp_path):
    endpoint, gate = free_endpoint(), str(tmp_path / "go")
    pub = Pipeline("pub")
    pub.add(GatedSource(items[1:5], gate, caps=segment_caps(items)), name="src")
    pub.add(ZenohSink("t/after", zenoh=ZenohOptions(listen=(endpoint,)), drain_timeout=60),
            name="sink")
    pub.link("src", "sink")
    pub.start()
    # Another receiver keeps the publisher up after its end, as a slow one would.
    other = ZenohOptions(connect=(endpoint,)).open("subscriber")
    token = other.liveliness().declare_token("t/after/receivers/other")
    try:
        time.sleep(0.5)
        open(gate, "w").close()
        time.sleep(3)  # every segment and the end of the stream are out
        rx = receiver("t/after", endpoint, CollectSink(), history=8)
        rx.run(timeout=60)  # ends: the init reply says the stream has ended
    finally:
        token.undeclare()
        other.close()
    pub.wait(timeout=60)
    src = rx.results("src")
    assert src["delivered"] == 4 and src["gaps"] == 0, src


def test_cli_receive_errors(tmp_path):
    assert_usage_error(parallax("receive", "t/x", "out.mp4", cwd=tmp_path), "zenoh:PREFIX")
    assert_usage_error(parallax("receive", "zenoh:t/x", "out.avi", cwd=tmp_path), ".avi")
    assert_usage_error(parallax("receive", "zenoh:t/*", "out.mp4", cwd=tmp_path), "wildcard")
    run = parallax("receive", "zenoh:t/nobody", "out.mp4", "--init-timeout", "1",
                   "--connect", free_endpoint(), cwd=tmp_path)
    assert_usage_error(run, "no publisher on zenoh:t/nobody")
    assert not (tmp_path / "out.mp4").exists()
