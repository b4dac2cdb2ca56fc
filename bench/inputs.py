"""Benchmark inputs, generated once into bench/out/ by the ffmpeg CLI (never downloaded)."""

from __future__ import annotations

import os
import subprocess


def make_1080p_h264(path: str, seconds: int, gop: int | None = None) -> str:
    """1080p30 H.264 High with B-frames, from FFmpeg's testsrc2 with a light film grain, so
    that encoders work about as hard as on camera footage (a flat synthetic pattern
    encodes several times faster and makes every ratio look better than it is).
    ``gop``: frames between keyframes (None: x264's default, 250)."""
    if os.path.exists(path):
        return path
    gop_args = ["-g", str(gop)] if gop else []
    tmp = f"{path}.tmp.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=1920x1080:rate=30:duration={seconds}",
                    "-vf", "noise=alls=6:allf=t+u", "-c:v", "libx264", "-preset", "veryfast",
                    "-profile:v", "high", "-bf", "3", *gop_args, tmp], check=True)
    os.replace(tmp, path)
    return path
