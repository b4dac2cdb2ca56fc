"""The farm: a file cut into GOP chunks, transcoded on a pool of workers, stitched back.

Every input is generated here: a moving ball with each frame's number drawn in its corner
(``read_timecode`` reads it back), so that every output frame can be held against *its*
source frame. Each farm output is also held against the linear pipeline's (``farm=None``)
output of the same input. Chunks are small (0.5 s, GOPs of 15 frames or less) so that every
input is cut into several chunks, and every seam is crossed.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from farm_cases import (
    CASES,
    CHUNK_S,
    DURATION_TOL,
    FARM,
    FRAGMENTS_INPUT,
    ONE_GOP_INPUT,
    PSNR_MIN,
    RATE,
    RATE_INPUT,
    TIME_TOL,
    VFR_PTS,
    Transcodes,
    chunk_start,
    chunks_of,
    decode,
    increasing,
    input_span,
    leading_pictures,
    like_output,
    mp4_duration,
    output_size,
    packets,
    psnr,
    seconds,
    timecode,
    transcode,
)
from media import corrupt_packets, make_video
from streams import assert_usage_error, decode_bytes, parallax

from actors.streaming.fmp4 import BoxSplitter, iter_boxes, sample_count
from actors.streaming.hls import parse_playlist
from pipelines.farm import FarmOptions
from pipelines.outputs import OutputOptions

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture(scope="module")
def transcodes(tmp_path_factory):
    return Transcodes(tmp_path_factory.mktemp("farm"))


# -- 1. frame-exact, against the source and the linear path --------------------------------
@pytest.mark.parametrize("name", CASES)
def test_frame_exact(transcodes, name):
    """Same frames, same times (from 0), same size as the linear path, each output frame
    showing its own source frame."""
    case = CASES[name]
    src_path = transcodes.source(case)
    farm, linear = transcodes.run(name, farm=True), transcodes.run(name, farm=False)
    # The input is what the case says, and the farm really cut it into several chunks.
    assert farm.results["src"]["chunks"] >= 3, farm.results["src"]
    if case.open_gop:
        assert leading_pictures(src_path) > 0, "the input has no open GOPs"
    src, got, lin = decode(src_path), decode(farm.path), decode(linear.path)
    n = case.frames
    assert len(src) == n, "the source does not decode to the frames it was made of"

    assert len(got) == n == len(lin)
    assert farm.report["decoded"] == n and farm.report["lost"] == 0, farm.report
    assert farm.results["stitch"]["frames"] == n

    # Timestamps: the source's, shifted to start at 0 (the MPEG-TS input starts at 1.4 s),
    # on both paths.
    t0 = seconds(src[0])
    want = [seconds(f) - t0 for f in src]
    assert seconds(got[0]) == 0 and seconds(lin[0]) == 0
    assert [seconds(f) for f in got] == pytest.approx(want, abs=TIME_TOL)
    assert [seconds(f) for f in lin] == pytest.approx(want, abs=TIME_TOL)

    size = output_size(case)
    assert (got[0].width, got[0].height) == size == (lin[0].width, lin[0].height)

    # Each output frame is its own source frame: by the number drawn in it...
    scale = round(src[0].height / got[0].height)
    assert [timecode(f, scale) for f in got] == list(range(n))
    assert [timecode(f, scale) for f in lin] == list(range(n))
    # ... and by its pixels: close to its source frame scaled as the worker scales it,
    # further from the neighbours (so that the measure tells frames apart).
    for i, frame in enumerate(got):
        picture = frame.to_ndarray(format="yuv420p")
        own = psnr(picture, like_output(src[i], frame))
        assert own >= PSNR_MIN, f"frame {i}: {own:.1f} dB against its source frame"
        for j in (i - 1, i + 1):
            if 0 <= j < n:
                other = psnr(picture, like_output(src[j], frame))
                assert other < own, f"frame {i} is closer to source frame {j}"


@pytest.mark.parametrize("name", list(CASES))
def test_duration_equals_the_input(transcodes, name):
    """The output lasts as long as the input, as a player counts it (the MP4 movie header)."""
    case = CASES[name]
    farm, linear = transcodes.run(name, farm=True), transcodes.run(name, farm=False)
    want = input_span(transcodes.source(case))
    # Every input's last frame lasts 1/30 s.
    last = VFR_PTS[-1] if name == "vfr" else case.frames - 1
    assert want == pytest.approx((last + 1) / RATE, abs=TIME_TOL)
    assert mp4_duration(linear.path) == pytest.approx(want, abs=DURATION_TOL)
    assert mp4_duration(farm.path) == pytest.approx(want, abs=DURATION_TOL)


# -- 2. seams ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CASES)
def test_seams(transcodes, name):
    """Decode timestamps strictly increase through every seam, and every chunk starts with
    a keyframe at the time its range starts."""
    case = CASES[name]
    src_path = transcodes.source(case)
    farm = transcodes.run(name, farm=True)
    pk, tb = packets(farm.path)
    assert len(pk) == case.frames
    dts = [d for _, d, _, _ in pk]
    assert increasing(dts), f"dts not strictly increasing: {dts}"
    assert all(d <= p for p, d, _, _ in pk), "a packet is decoded after it is shown"
    assert pk[0][3], "the output does not start with a keyframe"

    chunks = chunks_of(src_path)
    assert len(chunks) == farm.results["src"]["chunks"] >= 3
    keys = [float(p * tb) for p, _, _, k in pk if k]
    for chunk in chunks[1:]:
        start = chunk_start(chunk)
        assert any(abs(k - start) < TIME_TOL for k in keys), (
            f"{chunk.label}: no keyframe at {start:.3f} s; keyframes at {keys}")


def test_output_keyframes_only_at_chunk_starts(transcodes):
    """A chunk must start with a keyframe; elsewhere the encoder's settings decide (x264:
    one per 250 frames), as in the linear output. The VFR input's GOPs (8 frames, 0.27 to
    0.4 s) are shorter than a chunk, so its chunks hold keyframes after their first."""
    name = "vfr"
    chunks = chunks_of(transcodes.source(CASES[name]))
    starts = [chunk_start(c) for c in chunks]
    pk, _ = packets(transcodes.source(CASES[name]))
    assert sum(k for *_, k in pk) > len(chunks), "every input keyframe starts a chunk"
    linear, tb_linear = packets(transcodes.run(name, farm=False).path)
    assert [float(p * tb_linear) for p, _, _, k in linear if k] == [0.0]
    farm, tb_farm = packets(transcodes.run(name, farm=True).path)
    keys = [float(p * tb_farm) for p, _, _, k in farm if k]
    assert keys == pytest.approx(starts, abs=TIME_TOL)


def test_the_last_chunks_taper_so_that_the_workers_finish_together(tmp_path):
    """Near the end a chunk is at most half of what is left: 10 s in 1 s GOPs with 4 s
    chunks end 4, 3, 2, 1 s (not 4, 4, 2: two workers would finish a chunk apart), and
    every frame still belongs to exactly one chunk. A file shorter than two chunks is
    split too, so that more than one worker has work."""
    path = make_video(str(tmp_path / "taper.mp4"), frames=300, gop=30)
    chunks = chunks_of(path, 4.0)
    assert [chunk_start(c) for c in chunks] == pytest.approx([0, 4, 7, 9], abs=TIME_TOL)
    assert [c.frames for c in chunks] == [120, 90, 60, 30]
    assert [chunk_start(c) for c in chunks_of(path, 20.0)] == pytest.approx([0, 5, 8, 9])


def test_more_workers_get_shorter_last_chunks(tmp_path):
    """With 4 workers what is left is shared by 4 near the end: 10 s in 1 s GOPs with 4 s
    chunks give 3, 2, 2, 1, 1, 1 s (the last round ends within a GOP of the others), not
    the 4, 3, 2, 1 s of two workers, where one worker would encode the first 4 s while
    the others finish early. The runtime tells the source its pool's size: a farm of 4
    cuts what chunks_of cuts for 4, and every frame is still encoded once."""
    path = make_video(str(tmp_path / "taper4.mp4"), frames=300, gop=30)
    chunks = chunks_of(path, 4.0, consumers=4)
    assert [chunk_start(c) for c in chunks] == pytest.approx([0, 3, 5, 7, 8, 9], abs=TIME_TOL)
    assert sum(c.frames for c in chunks) == 300
    out = str(tmp_path / "taper4_out.mp4")
    run = transcode(path, out, farm=FarmOptions(workers=4, chunk_duration=4.0))
    assert run.results["src"]["chunks"] == len(chunks)
    assert len(run.stats.pools["xcode"].replicas) == 4
    assert run.results["stitch"]["frames"] == 300, run.results["stitch"]


def test_fragmented_mp4_every_fragment_starts_with_a_keyframe(transcodes, tmp_path):
    src = transcodes.source(FRAGMENTS_INPUT)
    out = str(tmp_path / "frag.mp4")
    transcode(src, out, out=OutputOptions(fragment_duration=1.0), farm=FARM)
    data = Path(out).read_bytes()
    assert [b.type for b in iter_boxes(data)][:2] == [b"ftyp", b"moov"]
    splitter = BoxSplitter()
    fragments = splitter.feed(data)
    assert splitter.init is not None and len(fragments) >= 3
    numbers, starts = [], []
    for i, fragment in enumerate(fragments):
        # Each fragment decodes on its own, from its first sample: it starts with a keyframe.
        frames = decode_bytes(splitter.init + fragment)
        assert frames and frames[0].key_frame, f"fragment {i} does not start with a keyframe"
        assert len(frames) == sample_count(fragment), f"fragment {i}: frames lost"
        numbers += [timecode(f) for f in frames]
        starts.append(seconds(frames[0]))
    assert numbers == list(range(FRAGMENTS_INPUT.frames))
    durations = np.diff([*starts, FRAGMENTS_INPUT.frames / RATE])
    for d in durations[:-1]:  # at least the setting, and within one GOP (<= 1 s) of it
        assert 1.0 - TIME_TOL <= d <= 2.0 + TIME_TOL, durations
    pk, _ = packets(out)
    dts = [d for _, d, _, _ in pk]
    assert len(pk) == FRAGMENTS_INPUT.frames and increasing(dts), dts


def test_hls_every_segment_starts_with_a_keyframe(transcodes, tmp_path):
    src = transcodes.source(FRAGMENTS_INPUT)
    playlist = tmp_path / "hls" / "show.m3u8"
    playlist.parent.mkdir()
    transcode(src, str(playlist), out=OutputOptions(fragment_duration=1.0), farm=FARM)
    pl = parse_playlist(playlist.read_text())
    assert pl.ended and len(pl.segments) >= 3
    init = (playlist.parent / pl.segments[0].map_uri).read_bytes()
    numbers = []
    for seg in pl.segments:
        frames = decode_bytes(init + (playlist.parent / seg.uri).read_bytes())
        assert frames and frames[0].key_frame, f"{seg.uri} does not start with a keyframe"
        assert len(frames) / RATE == pytest.approx(seg.duration, abs=1e-5)
        numbers += [timecode(f) for f in frames]
    assert numbers == list(range(FRAGMENTS_INPUT.frames))
    assert sum(s.duration for s in pl.segments) == pytest.approx(FRAGMENTS_INPUT.frames / RATE,
                                                                abs=1e-5)


# -- 3. rate change ------------------------------------------------------------------------
@pytest.mark.parametrize("fps, with_linear", [(15, True), (24, False)], ids=["15", "24"])
def test_rate_change(transcodes, fps, with_linear):
    """Tick k at k / fps shows the latest source frame then: every other frame at 15 fps.
    At 24 fps the seams (every 28 frames, 0.933 s) fall between ticks."""
    assert len(chunks_of(transcodes.source(RATE_INPUT))) >= 3
    farm = transcodes.rate(fps, farm=True)
    got = decode(farm.path)
    n = RATE_INPUT.frames * fps // RATE
    want = [k * RATE // fps for k in range(n)]  # 15 fps: 0, 2, 4, ...
    assert len(got) == n
    assert [seconds(f) for f in got] == pytest.approx([k / fps for k in range(n)], abs=TIME_TOL)
    assert [timecode(f) for f in got] == want
    assert mp4_duration(farm.path) == pytest.approx(RATE_INPUT.frames / RATE, abs=DURATION_TOL)
    if with_linear:  # the linear path's VideoRate follows the same rule
        lin = decode(transcodes.rate(fps, farm=False).path)
        assert len(lin) == n
        assert [timecode(f) for f in lin] == want


def test_rate_change_loses_no_frames(transcodes):
    """Every source frame was decoded, so input_report (what the CLI's 'input truncated or
    damaged' warning reads) reports none lost, as it does for the linear path."""
    assert transcodes.rate(15, farm=False).report["lost"] == 0
    farm = transcodes.rate(15, farm=True)
    assert farm.results["stitch"]["lost"] == 0
    assert farm.report["lost"] == 0, farm.report


# -- 4. the pool ---------------------------------------------------------------------------
def test_pool_spreads_chunks_over_replicas(transcodes):
    run = transcodes.run("h264_bframes_mp4", farm=True)
    pool = run.stats.pools["xcode"]
    chunks = run.results["src"]["chunks"]
    assert chunks >= 3
    assert len(pool.replicas) == FARM.workers
    assert len({r["pid"] for r in pool.replicas}) == FARM.workers  # separate processes
    assert all(r["items"] >= 1 for r in pool.replicas), pool.replicas
    assert pool.items == chunks == run.results["stitch"]["chunks"]
    assert pool.lost == pool.requeued == 0
    # The stitcher saw each chunk come from the replica the pool sent it to.
    by_pid = {int(k.rsplit(":", 1)[1]): w["chunks"]
              for k, w in run.results["stitch"]["workers"].items()}
    assert by_pid == {r["pid"]: r["items"] for r in pool.replicas}
    assert run.report["lost"] == 0 and run.report["decoded"] == CASES["h264_bframes_mp4"].frames


# -- 5. bad input through the CLI ----------------------------------------------------------
@pytest.mark.parametrize("args, needles", [
    (["--workers", "0"], ["--workers 0", ">= 1"]),
    (["--workers", "-1"], ["--workers -1", ">= 1"]),
    (["--chunk-duration", "-1"], ["--chunk-duration", "more than 0"]),
    (["--chunk-duration", "0"], ["--chunk-duration", "more than 0"]),
    (["--chunk-duration", "601"], ["--chunk-duration", "at most 600"]),
    (["--chunk-duration", "inf"], ["--chunk-duration", "finite"]),
    (["--workers", "100000"], ["--workers 100000", "at most"]),  # not 100,000 processes
    (["--fps", "1e9"], ["--fps", "at most 1000"]),
])
def test_cli_rejects_bad_farm_options(transcodes, tmp_path, args, needles):
    out = tmp_path / "out.mp4"
    src = transcodes.source(CASES["h264_bframes_mp4"])
    assert_usage_error(parallax("transcode", src, str(out), *args, cwd=tmp_path), *needles)
    assert not out.exists()


@pytest.mark.parametrize("output", ["out.mp4", "out.m3u8"])
def test_cli_unwritable_output_directory(transcodes, unwritable_dir, tmp_path, output):
    src = transcodes.source(CASES["h264_bframes_mp4"])
    run = parallax("transcode", src, str(unwritable_dir / output), "--workers", "2",
                   "--chunk-duration", str(CHUNK_S), "--quiet", cwd=tmp_path)
    assert_usage_error(run, "not writable", str(unwritable_dir))
    assert os.listdir(unwritable_dir) == []


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI's main() in this process, on the session's Ray (a subprocess would start a
    Ray of its own, ~10 s each): (exit code, stdout, stderr)."""
    from pipelines.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_missing_output_directory(transcodes, tmp_path, capsys):
    """The output directory check as root can meet it: exit 2, one error line."""
    src = transcodes.source(CASES["h264_bframes_mp4"])
    missing = tmp_path / "missing"
    code, _, err = cli(capsys, "transcode", src, str(missing / "out.mp4"), "--workers", "2",
                       "--chunk-duration", str(CHUNK_S), "--quiet")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "does not exist" in lines[0] and str(missing) in lines[0]
    assert not missing.exists()


def test_cli_single_gop_input_is_one_chunk(transcodes, tmp_path, capsys):
    src = transcodes.source(ONE_GOP_INPUT)
    pk, _ = packets(src)
    assert sum(k for _, _, _, k in pk) == 1, "the input has keyframes after its first"
    out = tmp_path / "out.mp4"
    code, stdout, err = cli(capsys, "transcode", src, str(out), "--workers", "2",
                            "--chunk-duration", str(CHUNK_S), "--json", "--quiet")
    assert code == 0, err
    assert "error" not in err and "warning" not in err, err
    stats = json.loads(stdout.strip().splitlines()[-1])
    pool = stats["pools"]["xcode"]
    assert pool["items"] == 1 and sorted(r["items"] for r in pool["replicas"]) == [0, 1]
    got = decode(str(out))
    assert [timecode(f) for f in got] == list(range(ONE_GOP_INPUT.frames))
    assert [seconds(f) for f in got] == pytest.approx(
        [i / RATE for i in range(ONE_GOP_INPUT.frames)], abs=TIME_TOL)
    assert mp4_duration(str(out)) == pytest.approx(ONE_GOP_INPUT.frames / RATE,
                                                   abs=DURATION_TOL)


# -- 6. a damaged input --------------------------------------------------------------------
def chunk_range(label: str) -> tuple[float, float]:
    """'chunk 1 (0.500-1.000 s of x.mp4)' -> (0.5, 1.0); '... (1.500 s-end ...' -> (1.5, inf)."""
    m = re.search(r"\((\d+\.\d+)(?:-(\d+\.\d+))? s(-end)?", label)
    assert m, f"no time range in {label!r}"
    return float(m.group(1)), float(m.group(2)) if m.group(2) else math.inf


@pytest.mark.parametrize("damaged", [
    pytest.param(range(16, 22), id="inter_frames"),  # six B/P frames of the second GOP
    pytest.param(range(15, 16), id="keyframe"),  # the second GOP's keyframe
])
def test_damaged_packets_lose_frames_of_their_chunk_only(transcodes, tmp_path, damaged):
    case = CASES["h264_bframes_mp4"]
    clean = transcodes.source(case)
    bad = str(tmp_path / "damaged.mp4")
    damaged_pts = corrupt_packets(clean, bad, list(damaged))
    # Only codec data changed: the container is whole, and still lists every packet.
    assert Path(bad).stat().st_size == Path(clean).stat().st_size
    assert len(packets(bad)[0]) == case.frames

    out = str(tmp_path / "out.mp4")
    run = transcode(bad, out, farm=FARM)  # damage is no reason to fail the whole run
    rep, stitched = run.report, run.results["stitch"]
    n = case.frames
    assert rep["expected"] == n and rep["lost"] > 0, rep
    got = decode(out)
    assert len(got) == rep["decoded"] == n - rep["lost"]
    assert stitched["lost"] == rep["lost"] and stitched["corrupt_packets"] >= 1, stitched
    assert rep["lost_in"] and sum(x["frames"] for x in rep["lost_in"]) == rep["lost"]
    assert all("damaged.mp4" in x["chunk"] for x in rep["lost_in"]), rep["lost_in"]
    # The writer's warning came to the driver with its stats, not through Ray's logs.
    lost = [w for w in run.stats.warnings if w.startswith("parallax.chunk_stitcher: ")
            and f"{rep['lost']} frame(s) lost in" in w]
    assert len(lost) == 1, run.stats.warnings

    # The damage lies in the reported ranges, and the ranges are not the whole file.
    ranges = [chunk_range(x["chunk"]) for x in rep["lost_in"]]
    _, tb = packets(bad)

    def damaged_range(t: float) -> bool:
        return any(a - TIME_TOL <= t < b - TIME_TOL for a, b in ranges)

    for pts in damaged_pts:
        assert damaged_range(float(pts * tb)), f"damage at {float(pts * tb):.3f} s: {ranges}"
    # Every frame outside them is there, in place, and is its clean source frame.
    src = decode(clean)
    want = [i for i, f in enumerate(src) if not damaged_range(seconds(f))]
    assert len(want) >= n // 2
    kept = [f for f in got if not damaged_range(seconds(f))]
    assert [timecode(f) for f in kept] == want
    assert [seconds(f) for f in kept] == pytest.approx([seconds(src[i]) for i in want],
                                                       abs=TIME_TOL)
    for frame, i in zip(kept, want):
        assert psnr(frame.to_ndarray(format="yuv420p"), like_output(src[i], frame)) >= PSNR_MIN


def test_cli_prints_a_workers_warning_once_and_lists_it_in_json(transcodes, tmp_path):
    """A whole `parallax` process, which ends Ray without waiting on its log forwarding:
    the writer's lost-frames warning still reaches the user, once, and the JSON."""
    bad = str(tmp_path / "damaged.mp4")
    corrupt_packets(transcodes.source(CASES["h264_bframes_mp4"]), bad, [16, 17, 18])
    run = parallax("transcode", bad, str(tmp_path / "out.mp4"), "--workers", "2",
                   "--chunk-duration", str(CHUNK_S), "--json", "--quiet", timeout=300)
    assert run.returncode == 0, run.stderr
    stats = json.loads(run.stdout.strip().splitlines()[-1])
    lost = [w for w in stats["warnings"] if "frame(s) lost in 1 chunk(s)" in w]
    assert len(lost) == 1 and lost[0].startswith("parallax.chunk_stitcher: "), stats
    assert run.stderr.count("frame(s) lost in 1 chunk(s)") == 1, run.stderr
    assert "Traceback" not in run.stderr
