"""The farm against the ffmpeg CLI: 1080p30 H.264 (B-frames) -> 720p bilinear -> x264 veryfast.

In one run, alternating rounds: `ffmpeg` (its own threads) and `ffmpeg -threads 1` (a
per-core reference); `parallax transcode` with --workers 1, 2 and auto, and --no-chunks
(the linear pipeline). Every Parallax figure is a whole `parallax` process, start-up
included, as a user runs it. Prints wall-time ratios against ffmpeg, the steady-state
fps ratio (Parallax's PLAYING time only), and then the costs that decide how the farm
scales: per-chunk work and overhead, the source's demux rate and the stitch+mux rate.

Run: python bench/farm.py [--seconds 60] [--rounds 2] [--chunk-duration 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from inputs import make_1080p_h264

from actors.farm import ChunkStitcher, ChunkTranscoder, PacketSource
from actors.media.encoders import VideoEncoderConfig, create_encoder
from actors.media.mp4_mux import Mp4Mux
from actors.types import EOS, MAIN_PAD

OUT = os.path.join(os.path.dirname(__file__), "out")
FFMPEG_ARGS = ["-vf", "scale=1280:720:flags=bilinear", "-c:v", "libx264", "-preset",
               "veryfast", "-crf", "23"]


def run_ffmpeg(src: str, dst: str, threads: int | None) -> dict:
    extra = ["-threads", str(threads)] if threads else []
    t0 = time.perf_counter()
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", *extra, "-i", src, *FFMPEG_ARGS,
                    *extra, dst], check=True)
    return {"wall": time.perf_counter() - t0}


def run_parallax(src: str, dst: str, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "pipelines.cli", "transcode", src, dst, "-y", "--height", "720",
           "--scale-algorithm", "bilinear", "--preset", "veryfast", "--crf", "23", "--json",
           "--quiet", *extra]
    t0 = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if run.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{run.stderr[-2000:]}")
    stats = json.loads(run.stdout.strip().splitlines()[-1])
    return {"wall": wall, "playing": stats["duration_s"], "frames": stats["frames"]}


def quality(out: str, src: str) -> dict:
    """Size, and PSNR against the source scaled the same way (ffmpeg's psnr filter)."""
    run = subprocess.run(
        ["ffmpeg", "-v", "info", "-i", out, "-i", src, "-lavfi",
         "[1:v]scale=1280:720:flags=bilinear[ref];[0:v][ref]psnr", "-f", "null", "-"],
        capture_output=True, text=True)
    line = next((ln for ln in run.stderr.splitlines() if "PSNR" in ln), "")
    fields = dict(w.split(":", 1) for w in line.split() if ":" in w)
    return {"bytes": os.path.getsize(out), "psnr": float(fields.get("average", 0)),
            "psnr_y": float(fields.get("y", 0))}


def per_chunk_costs(src: str, chunk_s: float) -> dict:
    """In one process, no Ray: demux rate, per-chunk decode+encode, encoder open, stitch+mux."""
    ps = PacketSource(src, chunk_duration=chunk_s)
    caps = ps.configure(None)
    ps.start()
    t0 = time.perf_counter()
    chunks = []
    while (c := ps.produce()) is not EOS:
        chunks.append(c)
    demux_s = time.perf_counter() - t0
    frames = sum(c.frames for c in chunks)
    xcode = ChunkTranscoder(height=720, encoder=VideoEncoderConfig(preset="veryfast", crf=23))
    xcaps = xcode.negotiate([caps], ["src"])
    cfg = xcode.config
    t0 = time.perf_counter()
    for _ in range(5):
        create_encoder(cfg).close()
    open_s = (time.perf_counter() - t0) / 5
    sample = chunks[1:3] or chunks[:1]
    t0 = time.perf_counter()
    encoded = [e for c in sample for e in xcode.process(c)]
    chunk_s_cpu = (time.perf_counter() - t0) / len(sample)
    stitch = ChunkStitcher()
    scaps = stitch.negotiate([xcaps], ["xcode"])
    stitch.next_index = encoded[0].index
    mux = Mp4Mux(os.path.join(OUT, "stitch_only.mp4"))
    mux.negotiate([scaps], ["stitch"])
    mux.start()
    t0 = time.perf_counter()
    n = 0
    for e in encoded:
        for p in stitch.process(e):
            mux.process_pad(MAIN_PAD, p)
            n += 1
    stitch_fps = n / max(time.perf_counter() - t0, 1e-9)
    mux.flush()
    return {"chunks": len(chunks), "frames": frames, "demux_fps": frames / demux_s,
            "chunk_cpu_s": chunk_s_cpu, "frames_per_chunk": frames / len(chunks),
            "encoder_open_s": open_s, "stitch_mux_fps": stitch_fps,
            "chunk_bytes": statistics.mean(c.nbytes for c in chunks),
            "encoded_chunk_bytes": statistics.mean(e.nbytes for e in encoded)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--chunk-duration", type=float, default=None)
    ap.add_argument("--sweep", type=float, nargs="*", default=[2.0, 8.0],
                    help="chunk durations to compare for size and quality (one run each)")
    args = ap.parse_args()
    if not shutil.which("ffmpeg"):
        raise SystemExit("needs the ffmpeg CLI (apt-get install ffmpeg)")
    os.makedirs(OUT, exist_ok=True)
    src = make_1080p_h264(os.path.join(OUT, f"farm_in_{args.seconds}s.mp4"), args.seconds,
                          gop=60)
    frames = 30 * args.seconds
    chunk = ["--chunk-duration", str(args.chunk_duration)] if args.chunk_duration else []
    jobs = {
        "ffmpeg": lambda d: run_ffmpeg(src, d, None),
        "ffmpeg -threads 1": lambda d: run_ffmpeg(src, d, 1),
        "parallax --workers 1": lambda d: run_parallax(src, d, ["--workers", "1", *chunk]),
        "parallax --workers 2": lambda d: run_parallax(src, d, ["--workers", "2", *chunk]),
        "parallax --workers auto": lambda d: run_parallax(src, d, chunk),
        "parallax --no-chunks": lambda d: run_parallax(src, d, ["--no-chunks"]),
    }
    results: dict[str, list[dict]] = {k: [] for k in jobs}
    outputs = {k: os.path.join(OUT, f"farm_out_{i}.mp4") for i, k in enumerate(jobs)}
    for r in range(args.rounds):
        order = list(jobs) if r % 2 == 0 else list(reversed(jobs))
        for name in order:
            results[name].append(jobs[name](outputs[name]))
            print(f"round {r + 1}: {name}: {results[name][-1]}", file=sys.stderr)
    med = {k: {f: statistics.median(x[f] for x in v) for f in v[0]} for k, v in results.items()}
    ff = med["ffmpeg"]["wall"]
    print(f"\n{args.seconds} s 1080p30 H.264 -> 720p x264 veryfast, {os.cpu_count()} CPUs, "
          f"median of {args.rounds}")
    print(f"{'job':<26}{'wall s':>8}{'vs ffmpeg':>11}{'steady fps':>12}{'fps vs ffmpeg':>15}")
    for name, m in med.items():
        fps = frames / m.get("playing", m["wall"])
        print(f"{name:<26}{m['wall']:>8.2f}{m['wall'] / ff:>10.2f}x{fps:>12.1f}"
              f"{fps / (frames / ff):>14.2f}x")
    w1, w2 = med["parallax --workers 1"], med["parallax --workers 2"]
    print(f"2 workers against 1 (steady fps): {w1['playing'] / w2['playing']:.2f}x")
    print("\nquality at the same CRF (size, PSNR against the scaled source):")
    ref = quality(outputs["ffmpeg"], src)
    for name in ("ffmpeg", "parallax --workers auto", "parallax --no-chunks"):
        q = quality(outputs[name], src)
        print(f"  {name:<26}{q['bytes'] / 1e6:>8.2f} MB ({q['bytes'] / ref['bytes']:.3f}x)"
              f"  PSNR {q['psnr']:.2f} dB (Y {q['psnr_y']:.2f})")
    for seconds in args.sweep:
        dst = os.path.join(OUT, f"farm_sweep_{seconds:g}.mp4")
        m = run_parallax(src, dst, ["--chunk-duration", str(seconds)])
        q = quality(dst, src)
        print(f"  --chunk-duration {seconds:<9g}{q['bytes'] / 1e6:>8.2f} MB "
              f"({q['bytes'] / ref['bytes']:.3f}x)  PSNR {q['psnr']:.2f} dB "
              f"(Y {q['psnr_y']:.2f})  "
              f"steady {frames / m['playing']:.1f} fps")
    costs = per_chunk_costs(src, args.chunk_duration or 4.0)
    print("\nper-chunk costs, in one process:")
    for k, v in costs.items():
        print(f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}")


if __name__ == "__main__":
    main()
