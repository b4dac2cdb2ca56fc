"""Transcode 1080p30 H.264 High (B-frames, 20 s) to 720p bilinear + libx264 veryfast.

Same job, same run: the ffmpeg CLI (the anchor), a naive single-process PyAV
loop, and Parallax (unfused and with scale+encode fused). Reports steady-state
fps (PLAYING time only) and whole-command wall time separately; Ray start-up is
its own figure. Also: 720p software encode fps at the default preset.

Run: python bench/transcode_vs_ffmpeg.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

import av
from inputs import make_1080p_h264

from actors.media.null_sink import NullSink
from actors.media.test_pattern import TestPatternSource
from actors.media.video_encoder import VideoEncoder
from pipelines import Pipeline
from pipelines.runtime.connection import ensure_ray
from pipelines.transcode import TranscodeOptions, build_transcode

OUT = os.path.join(os.path.dirname(__file__), "out")


def run_ffmpeg(src: str, dst: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", src, "-vf",
                    "scale=1280:720:flags=bilinear", "-c:v", "libx264", "-preset", "veryfast",
                    "-crf", "23", dst], check=True)
    return time.perf_counter() - t0


def run_naive(src: str, dst: str) -> float:
    t0 = time.perf_counter()
    with av.open(src) as inp, av.open(dst, "w") as out:
        st = out.add_stream("libx264", rate=30)
        st.width, st.height, st.pix_fmt = 1280, 720, "yuv420p"
        st.codec_context.options = {"preset": "veryfast", "crf": "23"}
        for frame in inp.decode(video=0):
            f = frame.reformat(width=1280, height=720, format="yuv420p",
                               interpolation="BILINEAR")
            out.mux(st.encode(f))
        out.mux(st.encode(None))
    return time.perf_counter() - t0


def run_parallax(src: str, dst: str, fusion: bool) -> tuple[float, float]:
    """(steady-state fps, wall seconds from build to teardown) on an already started Ray."""
    t0 = time.perf_counter()
    p = build_transcode(TranscodeOptions(src, dst, height=720, preset="veryfast",
                                         fusion=fusion))
    stats = p.run()
    return stats.frames / stats.running_time, time.perf_counter() - t0


def encode_720p_fps(frames: int = 300) -> float:
    p = Pipeline("enc720")
    p.add(VideoEncoder(), name="encode")
    p.chain(TestPatternSource(pattern="ball", width=1280, height=720, num_frames=frames))
    p.link("testpatternsource0", "encode")
    p.link("encode", p.add(NullSink()))
    stats = p.run()
    return stats.elements["encode"].buffers_in / stats.elements["encode"].total_processing_time


def cli_wall(src: str, dst: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipelines.cli", "transcode", src, dst, "-y", "--height",
                    "720", "--quiet"], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=20)
    args = ap.parse_args()
    if not shutil.which("ffmpeg"):
        sys.exit("the ffmpeg CLI is the anchor: apt-get install ffmpeg")
    os.makedirs(OUT, exist_ok=True)
    src = make_1080p_h264(os.path.join(OUT, f"in_1080p_{args.seconds}s.mp4"), args.seconds)
    frames = 30 * args.seconds
    t_ff = run_ffmpeg(src, os.path.join(OUT, "ffmpeg.mp4"))
    t_naive = run_naive(src, os.path.join(OUT, "naive.mp4"))
    t0 = time.perf_counter()
    ensure_ray(quiet=True)
    t_ray = time.perf_counter() - t0
    fps_unfused, wall_unfused = run_parallax(src, os.path.join(OUT, "px.mp4"), False)
    # fused: scale|encode|mux in one host, the decoder in another (the CLI's default)
    fps_fused, wall_fused = run_parallax(src, os.path.join(OUT, "pxf.mp4"), True)
    enc720 = encode_720p_fps()
    import ray

    ray.shutdown()
    t_cli = cli_wall(src, os.path.join(OUT, "cli.mp4"))
    ff = frames / t_ff
    print(f"job: {frames} frames 1080p30 H.264 High (B-frames) -> 720p bilinear, x264 veryfast")
    print(f"ffmpeg CLI            {ff:7.1f} fps  wall {t_ff:6.2f} s   1.00x")
    print(f"naive PyAV loop       {frames / t_naive:7.1f} fps  wall {t_naive:6.2f} s   "
          f"{frames / t_naive / ff:.2f}x")
    print(f"parallax unfused      {fps_unfused:7.1f} fps  wall {wall_unfused:6.2f} s   "
          f"{fps_unfused / ff:.2f}x (steady state)")
    print(f"parallax fused        {fps_fused:7.1f} fps  wall {wall_fused:6.2f} s   "
          f"{fps_fused / ff:.2f}x (steady state)")
    print(f"parallax CLI, whole command incl. Ray start: wall {t_cli:6.2f} s "
          f"({t_ff / t_cli:.2f}x ffmpeg's wall)")
    print(f"Ray start-up (embedded local): {t_ray:.2f} s")
    print(f"720p libx264 veryfast encode alone: {enc720:.1f} fps (seed's bar: > 15 fps)")


if __name__ == "__main__":
    main()
