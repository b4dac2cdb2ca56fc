"""A publisher that goes away without an end of stream (its process SIGKILLed) and one that
comes back on the same prefix: real sinks in processes of their own, real sessions on
loopback, real H.264; receivers in the shared Ray or as ``parallax receive``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import zenoh
from streams import decode_bytes, make_segments
from zenoh_helpers import PublisherProcess, free_endpoint, wait_for_receiver, wait_until

from actors.streaming.hls import parse_playlist
from actors.streaming.hls_sink import HlsSink
from actors.zenoh.link import ZenohOptions, encode_attachment, keys, publishers_key
from actors.zenoh.retime import shift_decode_times, track_timescales
from actors.zenoh.zenoh_source import ZenohSource
from pipelines.runtime.pipeline import Pipeline

CLI_ENV = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}


def receiver(prefix: str, endpoint: str, sink, **kw) -> Pipeline:
    p = Pipeline("rx")
    p.add(ZenohSource(prefix, zenoh=ZenohOptions(connect=(endpoint,)), reorder_timeout=0.5,
                      **kw), name="src")
    p.add(sink, name="sink")
    p.link("src", "sink")
    return p


def colourful(frame: av.VideoFrame) -> bool:
    """SMPTE bars are saturated; checkers are grey: tells the two publishers apart."""
    rgb = frame.to_ndarray(format="rgb24").astype(np.int16)
    return float(np.abs(rgb[..., 0] - rgb[..., 1]).mean()) > 20


def hls_frames(playlist: Path) -> tuple[list[av.VideoFrame], int]:
    """Every segment decoded against its own map, and the whole stream decoded as one."""
    pl = parse_playlist(playlist.read_text())
    whole, per_segment = b"", 0
    for seg in pl.segments:
        init = (playlist.parent / seg.map_uri).read_bytes()
        data = (playlist.parent / seg.uri).read_bytes()
        per_segment += len(decode_bytes(init + data))
        whole += (init if not whole else b"") + data
    return decode_bytes(whole), per_segment


def test_shifting_decode_times_moves_every_frame():
    """Without Ray: the re-timing a returning publisher's segments get."""
    items = make_segments(frames=60)
    init, seg = items[0].data, items[2].data
    scales = track_timescales(init)
    before = [f.time for f in decode_bytes(init + seg)]
    after = [f.time for f in decode_bytes(init + shift_decode_times(seg, Fraction(10), scales))]
    assert len(after) == 30 and after == pytest.approx([t + 10 for t in before])


def test_a_killed_publisher_is_waited_for_and_a_new_one_resumes(ray_session, tmp_path):
    endpoint, out = free_endpoint(), tmp_path / "hls" / "rx.m3u8"
    out.parent.mkdir()
    first = PublisherProcess("t/back", endpoint, segments=8, pattern="smpte")
    second = None
    try:
        wait_until(lambda: first.ready_at is not None, "the first publisher up")
        rx = receiver("t/back", endpoint, HlsSink(str(out)), idle_timeout=60)
        rx.start()
        wait_until(lambda: rx.results("src")["delivered"] >= 3, "3 segments received")
        first.kill()
        killed = time.monotonic()
        wait_until(lambda: rx.results("src")["publisher_lost"] == 1, "the loss noticed", 30)
        noticed_s = time.monotonic() - killed
        before = rx.results("src")["delivered"]
        # Two segments go out before the receiver is back: they reach it from the new
        # publisher's cache together with its token, before it can answer the init query.
        second = PublisherProcess("t/back", endpoint, segments=4, pattern="checkers",
                                  end=True, wait_after=2)
        wait_until(lambda: second.ready_at is not None, "the second publisher up")
        wait_until(lambda: rx.results("src")["delivered"] > before, "a resumed segment")
        resumed_s = time.monotonic() - second.ready_at
        assert second.wait() == 0
        rx.wait(timeout=120)
    finally:
        first.close()
        if second is not None:
            second.close()
    src = rx.results("src")
    print(f"loss noticed {noticed_s:.3f} s after SIGKILL; first resumed segment "
          f"{resumed_s:.3f} s after the new publisher was up; gaps {src['publisher_gaps_s']}")
    assert src["publisher_lost"] == 1 and src["publisher_resumed"] == 1, src
    assert src["ended"] == "eos" and src["foreign"] == 0 and src["gaps"] == 0, src
    assert src["delivered"] == before + 4, src  # the old publisher's and all of the new's
    frames, per_segment = hls_frames(out)
    assert len(frames) == per_segment == src["delivered"] * 30  # every segment decodes
    kinds = [colourful(f) for f in frames]
    assert kinds == [True] * (before * 30) + [False] * 120  # both publishers, in order
    times = [f.time for f in frames]
    assert times == sorted(set(times))  # the new one's times go on from the old one's
    # ...with no hole: the wait is not in the output's timeline.
    assert times[-1] - times[0] == pytest.approx((len(frames) - 1) / 30, abs=0.01)


def run_receive(prefix: str, endpoint: str, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(  # its own process and its own Ray, as on another machine
        [sys.executable, "-m", "pipelines.cli", "receive", f"zenoh:{prefix}", str(out),
         "--connect", endpoint, "--json", "--init-timeout", "120", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=out.parent,
        env=CLI_ENV)


def test_receive_goes_on_across_a_new_publisher_and_exits_0(tmp_path):
    endpoint, out = free_endpoint(), tmp_path / "rx.mp4"
    first = PublisherProcess("t/back-cli", endpoint, segments=20, pace_s=1.0)
    rx = run_receive("t/back-cli", endpoint, out, "--idle-timeout", "60")
    second = None
    try:
        wait_for_receiver("t/back-cli", endpoint)
        start = first.published
        wait_until(lambda: first.published >= start + 3, "3 segments published")
        first.kill()
        second = PublisherProcess("t/back-cli", endpoint, segments=3, pattern="checkers",
                                  end=True, wait_after=0)
        assert second.wait() == 0
        got, err = rx.communicate(timeout=120)
    finally:
        rx.kill()
        first.close()
        if second is not None:
            second.close()
    assert rx.returncode == 0, err
    report = json.loads(got)["zenoh"]
    assert report["publisher_lost"] == 1 and report["publisher_resumed"] == 1, report
    assert len(report["publisher_gaps_s"]) == 1 and report["ended"] == "eos", report
    assert "publisher of t/back-cli gone at" in err and "(--idle-timeout)" in err, err
    assert "went away 1 time(s) and came back" in err, err
    frames = decode_bytes(out.read_bytes())
    assert len(frames) == report["delivered"] * 30
    assert [colourful(f) for f in frames][-90:] == [False] * 90  # the new publisher's
    assert colourful(frames[0])  # ...after the old one's
    times = [f.time for f in frames]
    assert times == sorted(set(times))


def test_receive_reports_a_publisher_that_never_returns_and_exits_1(tmp_path):
    endpoint, out = free_endpoint(), tmp_path / "rx.mp4"
    first = PublisherProcess("t/gone", endpoint, segments=20, pace_s=1.0)
    rx = run_receive("t/gone", endpoint, out, "--idle-timeout", "3")
    try:
        wait_for_receiver("t/gone", endpoint)
        start = first.published
        wait_until(lambda: first.published >= start + 3, "3 segments published")
        first.kill()
        killed = time.monotonic()
        got, err = rx.communicate(timeout=120)
        took = time.monotonic() - killed
    finally:
        rx.kill()
        first.close()
    print(f"receive ended {took:.1f} s after the publisher was killed (--idle-timeout 3)")
    assert rx.returncode == 1, err
    report = json.loads(got)["zenoh"]
    assert report["publisher_lost"] == 1 and report["publisher_resumed"] == 0, report
    assert report["ended"] == "publisher lost" and report["publisher_lost_at"], report
    assert "none came back within 3 s (--idle-timeout)" in err, err
    assert 3 <= took < 60
    assert len(decode_bytes(out.read_bytes())) == report["delivered"] * 30 > 0


class Squatter:
    """A third session on the endpoint after the publisher died: it claims the publisher's
    place (a publisher token, an init put, segments naming itself) but cannot answer the
    init query."""

    def __init__(self, prefix: str, endpoint: str, init: bytes, init_id: str) -> None:
        self.session = ZenohOptions(listen=(endpoint,)).open("publisher")
        init_key, segment_key = keys(prefix)
        self.token = self.session.liveliness().declare_token(
            f"{publishers_key(prefix)}/{self.session.zid()}")
        self.publisher = self.session.declare_publisher(segment_key)
        self.init_key, self.init, self.id, self.sn = init_key, init, init_id, 0

    def info(self) -> zenoh.SourceInfo:
        self.sn += 1
        return zenoh.SourceInfo(self.publisher.id, self.sn)

    def forge(self, items: list) -> None:
        self.session.put(self.init_key, self.init, source_info=self.info())
        for seq, item in enumerate(items):
            self.publisher.put(item.data, source_info=self.info(), attachment=encode_attachment(
                seq=seq, pts=item.pts, duration=item.duration, time_base=item.time_base,
                keyframe=item.keyframe, codec=item.meta["codec"], init=self.id))

    def close(self) -> None:
        self.token.undeclare()
        self.publisher.undeclare()
        self.session.close()


def test_a_session_that_only_puts_samples_is_not_a_returning_publisher(ray_session, tmp_path):
    from actors.zenoh.link import init_id

    endpoint, out = free_endpoint(), tmp_path / "hls" / "rx.m3u8"
    out.parent.mkdir()
    items = make_segments(frames=90, rate=30, fragment=1.0, pattern="checkers")
    first = PublisherProcess("t/squat", endpoint, segments=8)
    second = squatter = None
    try:
        wait_until(lambda: first.ready_at is not None, "the publisher up")
        rx = receiver("t/squat", endpoint, HlsSink(str(out)), idle_timeout=60)
        rx.start()
        wait_until(lambda: rx.results("src")["delivered"] >= 2, "2 segments received")
        first.kill()
        wait_until(lambda: rx.results("src")["publisher_lost"] == 1, "the loss noticed", 30)
        squatter = Squatter("t/squat", endpoint, items[0].data, init_id(items[0].data))
        wait_until(lambda: squatter.publisher.matching_status.matching, "the receiver back")
        time.sleep(0.5)  # its routes settle
        squatter.forge(items[1:])
        # Kept aside, in case their sender answers the init query (a returning publisher's
        # first segments come before it can): it never does.
        wait_until(lambda: rx.results("src")["held"] == 3, "3 forged segments held")
        time.sleep(2.5)  # the receiver asked for the init again, more than once
        src = rx.results("src")
        assert src["publisher_resumed"] == 0 and src["received"] == src["delivered"], src
        assert src["held"] == 3 and src["foreign"] == 0, src
        delivered = src["delivered"]
        squatter.close()
        squatter = None
        second = PublisherProcess("t/squat", endpoint, segments=2, pattern="checkers",
                                  end=True, wait_after=0)
        assert second.wait() == 0
        rx.wait(timeout=120)
    finally:
        first.close()
        for other in (second, squatter):
            if other is not None:
                other.close()
    src = rx.results("src")
    # Refused once another session answered: counted as foreign (receive would exit 1).
    assert src["publisher_resumed"] == 1 and src["foreign"] == 3 and src["held"] == 0, src
    assert src["delivered"] == delivered + 2, src  # nothing forged reached the output
    frames, per_segment = hls_frames(out)
    assert len(frames) == per_segment == src["delivered"] * 30
