"""FragmentedMp4Mux and the box reader: real x264/x265/AV1/VP9 fragments decoded by PyAV."""

from __future__ import annotations

import io
import re

import av
import pytest
from streams import decode_bytes, make_segments, parallax, run_direct

from actors.errors import MediaError
from actors.streaming.fmp4 import BoxSplitter, codec_string, iter_boxes, read_init, sample_count
from actors.streaming.fmp4_file_sink import Fmp4FileSink
from actors.streaming.fragmented_mp4_mux import FragmentedMp4Mux
from actors.testing import ListSource
from actors.types import Caps


@pytest.fixture(scope="module")
def items():
    return make_segments(frames=150, rate=30, fragment=1.0)


def test_init_first_then_media_segments(items):
    init, media = items[0], items[1:]
    assert init.meta["init"] is True
    assert [b.type for b in iter_boxes(init.data)] == [b"ftyp", b"moov"]
    for seg in media:
        kinds = [b.type for b in iter_boxes(seg.data)]
        assert kinds == [b"moof", b"mdat"], kinds
    assert [s.meta["seq"] for s in media] == list(range(len(media)))


def test_init_plus_all_fragments_decode_every_frame(items):
    frames = decode_bytes(b"".join(i.data for i in items))
    assert len(frames) == 150
    assert sum(s.meta["samples"] for s in items[1:]) == 150


def test_init_plus_middle_fragment_decodes_with_its_timestamps(items):
    init, seg = items[0], items[4]  # the fourth media segment
    frames = decode_bytes(init.data + seg.data)
    assert len(frames) == seg.meta["samples"] == 30
    assert frames[0].key_frame
    first = float(frames[0].pts * frames[0].time_base)
    assert first == pytest.approx(float(seg.pts * seg.time_base), abs=1e-6)
    assert first == pytest.approx(3.0, abs=0.1)  # the fourth second of the stream
    last = float(frames[-1].pts * frames[-1].time_base)
    assert last - first == pytest.approx(float(seg.duration * seg.time_base) - 1 / 30, abs=1e-6)


@pytest.mark.parametrize("fragment, gop", [(1.0, None), (2.0, None), (1.0, 15)])
def test_fragment_durations_within_one_gop_of_the_setting(fragment, gop):
    items = make_segments(frames=180, rate=30, fragment=fragment, gop=gop)
    gop_s = (gop or fragment * 30) / 30
    durations = [float(s.duration * s.time_base) for s in items[1:]]
    for d in durations[:-1]:  # the last one ends with the stream
        assert fragment - 1e-6 <= d <= fragment + gop_s + 1e-6, durations
    assert sum(durations) == pytest.approx(6.0, abs=1e-6)
    assert all(s.keyframe for s in items[1:])


@pytest.mark.parametrize("codec, pattern", [
    ("h264", r"avc1\.64[0-9A-F]{4}"), ("h265", r"hvc1\.1\.6\.L\d+\.[0-9A-F]+"),
    ("av1", r"av01\.0\.\d\dM\.08"), ("vp9", r"vp09\.00\.\d\d\.08")])
def test_rfc6381_codec_strings(codec, pattern):
    items = make_segments(frames=10, rate=30, fragment=1.0, codec=codec, size=(192, 108))
    assert items[0].meta["codec"] == codec_string(items[0].data)
    assert re.fullmatch(pattern, items[0].meta["codec"]), items[0].meta["codec"]
    assert len(decode_bytes(b"".join(i.data for i in items))) == 10


def test_avc_codec_string_matches_the_sps(items):
    with av.open(io.BytesIO(items[0].data)) as c:
        avcc = c.streams.video[0].codec_context.extradata
    assert items[0].meta["codec"] == f"avc1.{avcc[1]:02X}{avcc[2]:02X}{avcc[3]:02X}"


def test_splitter_handles_any_chunking(items):
    stream = b"".join(i.data for i in items)
    splitter = BoxSplitter()
    segments = []
    for pos in range(0, len(stream), 777):  # boxes arrive cut at arbitrary points
        segments += splitter.feed(stream[pos:pos + 777])
    assert splitter.init == items[0].data
    assert segments == [i.data for i in items[1:]]
    assert [sample_count(s) for s in segments] == [i.meta["samples"] for i in items[1:]]


@pytest.mark.parametrize("garbage, needle", [
    (b"", "init segment of 0 bytes"), (b"\x00" * 64, "ftyp and moov"),
    (b"\x00\x00\x00\x10ftypisom\x00\x00\x00\x00" + b"\x00\x00\x00\x08moov", "not fragmented"),
    (bytes(range(256)) * 8, "ftyp and moov")])
def test_read_init_rejects_garbage(garbage, needle):
    with pytest.raises(MediaError, match=needle):
        read_init(garbage)


def test_read_init_describes_the_stream(items):
    info = read_init(items[0].data)
    assert (info.codec, info.width, info.height) == ("h264", 320, 240)
    assert info.codec_string == items[0].meta["codec"]


def test_self_initializing_first_segment_without_separate_init():
    from actors.media.test_pattern import TestPatternSource
    from actors.media.video_encoder import VideoEncoder

    out = run_direct(TestPatternSource(width=160, height=120, num_frames=60, format="yuv420p"),
                     VideoEncoder(keyframe_interval=1.0),
                     FragmentedMp4Mux(fragment_duration=1.0, separate_init=False))
    assert not any(o.meta["init"] for o in out)
    assert [b.type for b in iter_boxes(out[0].data)][:2] == [b"ftyp", b"moov"]
    assert len(decode_bytes(b"".join(o.data for o in out))) == 60


def test_fmp4_file_sink_keeps_what_is_complete_when_the_run_fails(items, tmp_path, caplog):
    path = tmp_path / "partial.mp4"
    sink = Fmp4FileSink(str(path))
    caps = Caps.segments(Caps.encoded_video("h264", 320, 240, 30), items[0].meta["codec"],
                         items[0].data)
    sink.negotiate([caps], ["mux"])
    sink.start()
    for item in items[:3]:  # init and two fragments, then the pipeline fails
        sink.handle(item)
    sink.close(ok=False)
    assert path.exists() and "holds 2 complete fragments" in caplog.text
    assert len(decode_bytes(path.read_bytes())) == 60


def test_fmp4_file_sink_in_a_ray_pipeline(ray_session, items, tmp_path):
    from pipelines.runtime.pipeline import Pipeline

    p = Pipeline("fmp4-file")
    caps = Caps.segments(Caps.encoded_video("h264", 320, 240, 30), items[0].meta["codec"],
                         items[0].data)
    src = p.add(ListSource(items, caps=caps))
    p.link(src, p.add(Fmp4FileSink(str(tmp_path / "out.mp4")), name="sink"))
    p.run()
    assert p.results("sink")["segments"] == len(items) - 1
    assert len(decode_bytes((tmp_path / "out.mp4").read_bytes())) == 150


def test_cli_fragmented_mp4(tmp_path):
    out = tmp_path / "frag.mp4"
    run = parallax("transcode", "testsrc:duration=3,size=320x240", str(out),
                   "--fragment-duration", "1", "--quiet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    data = out.read_bytes()
    kinds = [b.type for b in iter_boxes(data)]
    assert kinds[:2] == [b"ftyp", b"moov"] and kinds.count(b"moof") == 3
    assert len(decode_bytes(data)) == 90
