"""Audio: kept in sync on every path, copied or encoded, every stream kept or named.

Inputs carry a white flash and a beep at the start of every second (tests/avsync.py);
sync is the beep time minus the flash time, measured by decoding the output.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from fractions import Fraction

import av
import pytest
from avsync import (
    Track,
    av_offsets,
    durations,
    make_av,
    packet_digests,
    starts,
)
from streams import assert_usage_error, parallax
from zenoh_helpers import free_endpoint

from actors.errors import ConfigError
from actors.media.muxing import Interleaver
from actors.streaming.fmp4 import codecs_string
from actors.streaming.fmp4_file_sink import Fmp4FileSink
from actors.types import Packet
from actors.zenoh.link import ZenohOptions
from actors.zenoh.zenoh_source import ZenohSource
from pipelines.audio import AudioOptions
from pipelines.farm import FarmOptions
from pipelines.outputs import OutputOptions
from pipelines.runtime.pipeline import Pipeline
from pipelines.transcode import TranscodeOptions, build_transcode

SYNC_S = 0.025  # the bound: within one AAC frame and change
INPUTS = {
    "aac.mp4": dict(tracks=(Track("aac", language="eng"), Track("aac", 44100, "mono", "fra"))),
    "opus.mkv": dict(tracks=(Track("libopus"),), subtitles="fra"),
    "mp2.ts": dict(tracks=(Track("mp2"),), fmt="mpegts", start_s=1.4, vcodec="mpeg2video"),
    # Matroska keeps no channel layout for PCM: FFmpeg reads "1 channels", no order.
    "pcm.mkv": dict(tracks=(Track("pcm_s16le", 44100, "mono"),)),
}
PATHS = {"farm": FarmOptions(workers=2, chunk_duration=1.0), "linear": None}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("av")
    return {name: make_av(str(d / name), **kw) for name, kw in INPUTS.items()}


def transcode(src: str, dst: str, farm: FarmOptions | None = None, **kw) -> list[str]:
    pipeline = build_transcode(TranscodeOptions(src, dst, height=180, farm=farm, **kw))
    pipeline.run(timeout=120)
    return pipeline.notes


def codecs(path: str) -> list[tuple[str, str | None]]:
    with av.open(path) as c:
        return [(s.codec_context.codec.canonical_name,
                 None if s.metadata.get("language") in (None, "und") else s.metadata["language"])
                for s in c.streams.audio]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", INPUTS)
def test_audio_stays_in_sync_on_every_path(ray_session, inputs, tmp_path, name, path):
    src, out = inputs[name], str(tmp_path / "out.mp4")
    transcode(src, out, PATHS[path])
    tracks = len(INPUTS[name]["tracks"])
    assert len(codecs(out)) == tracks
    for k in range(tracks):
        want, got = av_offsets(src, k), av_offsets(out, k)
        assert len(got) == len(want) == 3, (want, got)  # every flash has its beep
        assert all(abs(g - w) <= SYNC_S for g, w in zip(got, want)), (want, got)
    d_in, d_out = durations(src), durations(out)
    assert abs(d_out["video0"] - d_in["video0"]) < 0.1
    audio_in = [v for k, v in d_in.items() if k.startswith("audio")]
    audio_out = [v for k, v in d_out.items() if k.startswith("audio")]
    assert all(abs(a - b) < 0.1 for a, b in zip(audio_in, audio_out)), (d_in, d_out)
    # Both paths start the output at 0 (the TS input starts at 1.4 s), audio and video
    # moved together; audio may start a priming frame early or late.
    assert starts(out)["video0"] == 0
    assert all(abs(t) < 0.05 for t in starts(out).values()), starts(out)


def test_aac_is_copied_bit_exact_with_its_languages(ray_session, inputs, tmp_path):
    src, out = inputs["aac.mp4"], str(tmp_path / "out.mp4")
    notes = transcode(src, out, PATHS["farm"])
    assert codecs(out) == [("aac", "eng"), ("aac", "fra")]
    for k in range(2):
        assert packet_digests(out, k) == packet_digests(src, k)
    assert "audio stream 1 (aac, eng): copied" in notes


def test_opus_is_copied_and_subtitles_are_named(ray_session, inputs, tmp_path):
    src, out = inputs["opus.mkv"], str(tmp_path / "out.mp4")
    notes = transcode(src, out, PATHS["farm"])
    assert codecs(out) == [("opus", None)]
    assert packet_digests(out) == packet_digests(src)
    assert any(n.startswith("dropping subtitle stream 2 (subrip, fra)") for n in notes), notes


def test_mp2_is_encoded_to_aac(ray_session, inputs, tmp_path):
    out = str(tmp_path / "out.mp4")
    notes = transcode(inputs["mp2.ts"], out, PATHS["linear"])
    assert codecs(out) == [("aac", None)]
    assert notes == ["audio stream 1 (mp2): encoded to aac at 128 kb/s"]


def test_audio_options_pick_streams_and_codecs(ray_session, inputs, tmp_path):
    out = str(tmp_path / "out.mp4")
    notes = transcode(inputs["aac.mp4"], out, PATHS["farm"],
                      audio=AudioOptions("opus", bitrate=96_000, stream=1))
    assert codecs(out) == [("opus", "fra")]
    assert "dropping audio stream 1 (aac, eng): not selected by --audio-stream" in notes
    with av.open(out) as c:
        assert 80_000 < c.streams.audio[0].codec_context.bit_rate < 115_000  # asked 96k
    none = str(tmp_path / "none.mp4")
    transcode(inputs["aac.mp4"], none, PATHS["farm"], audio=AudioOptions("none"))
    assert codecs(none) == []


def test_a_track_that_ends_early_does_not_stall_the_video(ray_session, tmp_path):
    src = make_av(str(tmp_path / "short.mp4"), seconds=3.0, audio_s=1.0)
    for path, farm in PATHS.items():
        out = str(tmp_path / f"{path}.mp4")
        transcode(src, out, farm)
        d = durations(out)
        assert abs(d["video0"] - 3.0) < 0.05 and abs(d["audio1"] - 1.0) < 0.1, (path, d)


def concat_hls(playlist: str) -> str:
    """init + every segment of a VOD playlist, as one fMP4 file a demuxer reads."""
    d = os.path.dirname(playlist)
    with open(playlist) as f:
        lines = f.read().splitlines()
    init = next(ln.split('URI="')[1].rstrip('"') for ln in lines if ln.startswith("#EXT-X-MAP"))
    parts = [init, *(ln for ln in lines if ln and not ln.startswith("#"))]
    out = playlist + ".mp4"
    with open(out, "wb") as f:
        for name in parts:
            with open(os.path.join(d, name), "rb") as part:
                f.write(part.read())
    return out


def assert_in_sync(src: str, out: str, tracks: int) -> None:
    assert len(codecs(out)) == tracks
    for k in range(tracks):
        want, got = av_offsets(src, k), av_offsets(out, k)
        assert len(got) == len(want) == 3, (want, got)
        assert all(abs(g - w) <= SYNC_S for g, w in zip(got, want)), (k, want, got)


@pytest.mark.parametrize("output, path", [("out.m3u8", "farm"), ("out.mp4", "linear")])
def test_fragmented_outputs_carry_the_audio_in_sync(ray_session, inputs, tmp_path, output,
                                                     path):
    src, out = inputs["aac.mp4"], str(tmp_path / output)
    notes = transcode(src, out, PATHS[path], out=OutputOptions(
        fragment_duration=1.0 if output.endswith(".mp4") else None))
    assert notes == ["audio stream 1 (aac, eng): copied", "audio stream 2 (aac, fra): copied"]
    assert_in_sync(src, concat_hls(out) if output.endswith(".m3u8") else out, 2)
    with open(out if output.endswith(".mp4") else concat_hls(out), "rb") as f:
        video, *audio = codecs_string(f.read(64 << 10)).split(",")
    assert video.startswith("avc1.") and audio == ["mp4a.40.2", "mp4a.40.2"]


def test_zenoh_carries_both_tracks_to_the_receiver(ray_session, inputs, tmp_path):
    src, out, endpoint = inputs["mp2.ts"], str(tmp_path / "rx.mp4"), free_endpoint()
    # The receiver listens and the publisher connects to it when it starts: a 3 s file is
    # published in about a second, so the receiver must be there first to hold it open.
    rx = Pipeline("rx")
    rx.add(ZenohSource("t/av", zenoh=ZenohOptions(listen=(endpoint,), connect=()),
                       init_timeout=60), name="src")
    rx.add(Fmp4FileSink(out), name="sink")
    rx.link("src", "sink")
    receiving = threading.Thread(target=rx.run, kwargs={"timeout": 120})
    receiving.start()
    host, port = endpoint.removeprefix("tcp/").rsplit(":", 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the receiver's session listens
        with contextlib.suppress(OSError), socket.create_connection((host, int(port)), 1):
            break
        time.sleep(0.1)
    pub = build_transcode(TranscodeOptions(src, "zenoh:t/av", height=180, out=OutputOptions(
        zenoh=ZenohOptions(listen=(free_endpoint(),), connect=(endpoint,)))))
    pub.run(timeout=120)
    receiving.join(timeout=120)
    assert pub.notes == ["audio stream 1 (mp2): encoded to aac at 128 kb/s"]
    assert rx.results("src")["gaps"] == 0
    assert_in_sync(src, out, 1)


def test_a_batch_keeps_every_file_s_audio_in_sync(ray_session, inputs, tmp_path, capsys):
    from pipelines.cli import main

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code = main(["transcode", *inputs.values(), "--output-dir", str(out_dir),
                 "--workers", "2", "--chunk-duration", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "mp2.ts: audio stream 1 (mp2): encoded to aac at 128 kb/s" in err
    assert "opus.mkv: dropping subtitle stream 2 (subrip, fra)" in err
    for name, kw in INPUTS.items():
        out = str(out_dir / (os.path.splitext(name)[0] + ".mp4"))
        assert_in_sync(inputs[name], out, len(kw["tracks"]))
        assert starts(out)["video0"] == 0


def test_strict_refuses_what_it_would_drop(inputs):
    with pytest.raises(ConfigError, match=r"dropping audio stream 1 .*the output is null"):
        build_transcode(TranscodeOptions(inputs["aac.mp4"], "null",
                                         audio=AudioOptions(strict=True)))
    with pytest.raises(ConfigError, match="subtitle stream 2"):
        build_transcode(TranscodeOptions(inputs["opus.mkv"], "out.mp4",
                                         audio=AudioOptions(strict=True)))


def test_interleaver_orders_by_decode_time_and_forgets_ended_inputs():
    il = Interleaver(["src", "audio_0"])

    def pkt(t: int, rate: int) -> Packet:
        return Packet(b"x", pts=t, dts=t, time_base=Fraction(1, rate))

    v0, v60, v61 = pkt(0, 30), pkt(60, 30), pkt(61, 30)
    a0, a1 = pkt(0, 48000), pkt(48000, 48000)
    assert il.push("src", v0) == []  # audio may still come earlier
    assert il.push("audio_0", a0) == [("src", v0)]
    assert il.push("audio_0", a1) == []  # the video may still come earlier
    assert il.push("src", v60) == [("audio_0", a0), ("audio_0", a1)]
    assert il.end("audio_0") == [("src", v60)]  # an ended input is not waited for
    assert il.push("src", v61) == [("src", v61)]
    assert len(il) == 0


def test_cli_audio_errors_and_overwrite(inputs, tmp_path):
    src = inputs["aac.mp4"]
    out = str(tmp_path / "o.mp4")
    assert_usage_error(parallax("transcode", src, out, "--audio-stream", "7", cwd=tmp_path),
                       "--audio-stream 7", "2 audio stream(s)")
    assert_usage_error(parallax("transcode", src, out, "--audio-bitrate", "0", cwd=tmp_path),
                       "--audio-bitrate 0")
    assert_usage_error(parallax("transcode", src, out, "--audio", "mp3", cwd=tmp_path),
                       "--audio 'mp3'")
    assert_usage_error(parallax("transcode", inputs["mp2.ts"], out, "--audio", "copy",
                                cwd=tmp_path), "mp2", "--audio aac")
    run = parallax("transcode", inputs["opus.mkv"], out, "--workers", "1", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "dropping subtitle stream 2 (subrip, fra)" in run.stderr
    assert "audio stream 1 (opus): copied" in run.stderr
    size = (tmp_path / "o.mp4").stat().st_size
    assert_usage_error(parallax("transcode", src, out, cwd=tmp_path), "exists", "-y")
    assert (tmp_path / "o.mp4").stat().st_size == size  # untouched
    assert parallax("transcode", src, out, "-y", "--no-audio", "--workers", "1",
                    cwd=tmp_path).returncode == 0
    assert codecs(out) == []


def test_an_audio_pad_nobody_takes_or_a_pad_that_is_not_there_is_named(ray_session, inputs):
    """As GStreamer's not-linked: an output pad that nothing takes is refused at prepare,
    and so is a link from a pad the producer does not have."""
    from actors.media.file_source import FileSource
    from actors.media.null_sink import NullSink

    def pipeline(pad: str) -> Pipeline:
        p = Pipeline("pads")
        p.add(FileSource(inputs["aac.mp4"], audio_streams=(1,)), name="src")
        p.add(NullSink(), name="sink")
        p.link("src", "sink", pad=pad)
        return p

    for pad, needle in (("src", "output pad 'audio_0'.*nothing is linked to"),
                        ("audio7", "'src' has no pad 'audio7'; its pads are src, audio_0")):
        p = pipeline(pad)
        try:
            with pytest.raises(ConfigError, match=needle):
                p.prepare()
        finally:
            p.stop(drain=False)
