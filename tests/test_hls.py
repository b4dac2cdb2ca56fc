"""HlsSink: playlists that parse, durations that add up, keyframe starts, a rolling window."""

from __future__ import annotations

import os

import pytest
from streams import assert_usage_error, decode_bytes, make_segments, parallax

from actors.errors import ConfigError
from actors.streaming.hls import parse_playlist
from actors.streaming.hls_sink import HlsSink
from actors.types import Caps


@pytest.fixture(scope="module")
def items():
    return make_segments(frames=240, rate=30, fragment=1.0)  # 8 one-second segments


def write_hls(items, path, check_each=False, **settings):
    sink = HlsSink(str(path), **settings)
    caps = Caps.segments(Caps.encoded_video("h264", 320, 240, 30), items[0].meta["codec"],
                         items[0].data)
    sink.negotiate([caps], ["mux"])
    sink.start()
    seen = []
    for item in items:
        sink.handle(item)
        if check_each and path.exists():
            seen.append(parse_playlist(path.read_text()))  # readers always see a whole file
    return sink, seen


def test_vod_playlist(items, tmp_path):
    path = tmp_path / "show.m3u8"
    sink, seen = write_hls(items, path, check_each=True)
    assert all(not pl.ended and pl.playlist_type == "EVENT" for pl in seen)
    sink.handle_eos()
    text = path.read_text()
    pl = parse_playlist(text)
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:7\n")
    assert pl.ended and pl.playlist_type == "VOD" and pl.media_sequence == 0
    assert len(pl.segments) == 8 and {s.map_uri for s in pl.segments} == {"show-init.mp4"}
    assert sum(s.duration for s in pl.segments) == pytest.approx(8.0, abs=1e-5)
    assert pl.target_duration >= max(s.duration for s in pl.segments)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temp files left
    init = (tmp_path / "show-init.mp4").read_bytes()
    total = 0
    for seg in pl.segments:
        frames = decode_bytes(init + (tmp_path / seg.uri).read_bytes())
        assert frames[0].key_frame, f"{seg.uri} does not start with a keyframe"
        assert len(frames) / 30 == pytest.approx(seg.duration, abs=1e-5)
        total += len(frames)
    assert total == 240


def test_live_window_rolls_and_deletes(items, tmp_path):
    path = tmp_path / "live.m3u8"
    sink, seen = write_hls(items, path, check_each=True, mode="live", window=3)
    assert max(len(pl.segments) for pl in seen) == 3
    assert [pl.media_sequence for pl in seen][-3:] == [3, 4, 5]
    pl = parse_playlist(path.read_text())
    assert [s.uri for s in pl.segments] == ["live00005.m4s", "live00006.m4s", "live00007.m4s"]
    on_disk = sorted(f for f in os.listdir(tmp_path) if f.endswith(".m4s"))
    # One segment beyond the window stays for clients still fetching it.
    assert on_disk == ["live00004.m4s", *[s.uri for s in pl.segments]]
    assert sink.results()["deleted"] == 4
    sink.handle_eos()
    assert parse_playlist(path.read_text()).ended


def test_stopped_early_still_ends_the_playlist(items, tmp_path, caplog):
    path = tmp_path / "cut.m3u8"
    sink, _ = write_hls(items[:4], path)
    sink.close(ok=False)
    pl = parse_playlist(path.read_text())
    assert pl.ended and len(pl.segments) == 3
    assert "ends after 3 segments" in caplog.text


def test_new_init_mid_stream_is_a_discontinuity(items, tmp_path):
    other = make_segments(frames=30, rate=30, fragment=1.0, size=(160, 120))
    path = tmp_path / "two.m3u8"
    sink, _ = write_hls(items[:3] + other, path)
    sink.handle_eos()
    text = path.read_text()
    assert "#EXT-X-DISCONTINUITY" in text and 'URI="two-init-1.mp4"' in text
    pl = parse_playlist(text)
    assert [s.map_uri for s in pl.segments] == ["two-init.mp4", "two-init.mp4", "two-init-1.mp4"]


def test_live_init_files_leave_with_the_last_segment_using_them(items, tmp_path):
    other = make_segments(frames=30, rate=30, fragment=1.0, size=(160, 120))
    stream = items[:2]
    for _ in range(10):  # a publisher restarting with other settings, again and again
        stream += other[:2] + items[:2]
    path = tmp_path / "live.m3u8"
    sink, _ = write_hls(stream, path, mode="live", window=2)
    inits = sorted(f for f in os.listdir(tmp_path) if f.startswith("live-init"))
    pl = parse_playlist(path.read_text())
    used = {s.map_uri for s in pl.segments}
    # What the window maps to, plus at most the one a client may still be fetching.
    assert used <= set(inits) and len(inits) <= len(used) + 1, (inits, used)
    assert sink.init_versions == 20


@pytest.mark.parametrize("kwargs, needle", [
    ({"location": "x.mp4"}, ".m3u8"), ({"location": "x.m3u8", "window": 0}, "window"),
    ({"location": "x.m3u8", "mode": "event"}, "hls mode"),
    ({"location": "x.m3u8", "init_name": "../init.mp4"}, "plain file name")])
def test_bad_settings(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        HlsSink(**kwargs)


def test_missing_directory_is_a_clear_error(items, tmp_path):
    sink = HlsSink(str(tmp_path / "nope" / "x.m3u8"))
    with pytest.raises(ConfigError, match="does not exist"):
        sink.configure(None)


def test_cli_writes_hls(tmp_path):
    run = parallax("transcode", "testsrc:duration=5,size=320x240", str(tmp_path / "s.m3u8"),
                   "--quiet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    pl = parse_playlist((tmp_path / "s.m3u8").read_text())
    assert pl.ended and len(pl.segments) == 3  # 2 s fragments by default: 2 + 2 + 1
    assert sum(s.duration for s in pl.segments) == pytest.approx(5.0, abs=1e-5)


def test_cli_rejects_bad_hls_options(tmp_path):
    assert_usage_error(parallax("transcode", "testsrc", "x.m3u8", "--hls-window", "0",
                                cwd=tmp_path), "window")
    assert_usage_error(parallax("transcode", "testsrc", "x.m3u8", "--fragment-duration",
                                "-1", cwd=tmp_path), "fragment-duration")
    assert_usage_error(parallax("transcode", "testsrc", "x.m3u8", "--fragment-duration",
                                "600", cwd=tmp_path), "--fragment-duration 600", "at most 60")


def test_two_playlists_in_one_directory_keep_their_own_init(items, tmp_path):
    small = make_segments(frames=30, rate=30, fragment=1.0, size=(160, 120))
    for name, segments in (("a", items[:2]), ("b", small)):
        sink, _ = write_hls(segments, tmp_path / f"{name}.m3u8")
        sink.handle_eos()
    for name, size in (("a", None), ("b", (160, 120))):
        pl = parse_playlist((tmp_path / f"{name}.m3u8").read_text())
        init = (tmp_path / pl.segments[0].map_uri).read_bytes()
        frames = decode_bytes(init + (tmp_path / pl.segments[0].uri).read_bytes())
        assert frames and (size is None or (frames[0].width, frames[0].height) == size)
    assert (tmp_path / "a-init.mp4").read_bytes() != (tmp_path / "b-init.mp4").read_bytes()
