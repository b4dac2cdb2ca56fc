"""Test helpers for streaming: drive elements in-process and cut real fMP4 segments."""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
from typing import Any

import av

from actors.element import Element
from actors.media.test_pattern import TestPatternSource
from actors.media.video_encoder import VideoEncoder
from actors.streaming.fragmented_mp4_mux import FragmentedMp4Mux
from actors.types import EOS


def run_direct(*elements: Element) -> list[Any]:
    """Run a linear chain in this process (no Ray): source first, returns the last outputs."""
    caps = elements[0].negotiate([], [])
    for prev, el in itertools.pairwise(elements):
        caps = el.negotiate([caps], [prev.name])
    for el in elements:
        el.start()
    out: list[Any] = []

    def push(items: list[Any], start: int) -> None:
        for el in elements[start:]:
            items = [o for it in items for o in el.handle(it)]
        out.extend(items)

    while (item := elements[0].handle_produce()) is not EOS:
        if item is not None:
            push([item], 1)
    for i, el in enumerate(elements[1:], start=1):
        push(el.handle_eos(), i + 1)
    for el in elements:
        el.close(True)
    return out


def make_segments(frames: int = 90, rate: int = 30, fragment: float = 1.0,
                  gop: int | None = None, codec: str = "h264", size: tuple = (320, 240),
                  pattern: str = "ball") -> list[Any]:
    """Encoded fMP4 items: the init item first, then media segments."""
    src = TestPatternSource(width=size[0], height=size[1], rate=rate, num_frames=frames,
                            format="yuv420p", pattern=pattern)
    enc = VideoEncoder(codec=codec, backend="software", gop=gop,
                       keyframe_interval=None if gop else fragment)
    return run_direct(src, enc, FragmentedMp4Mux(fragment_duration=fragment))


def decode_bytes(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data)) as c:
        return list(c.decode(video=0))


def parallax(*args: str, timeout: float = 300, **kw: Any) -> subprocess.CompletedProcess:
    """The CLI in a fresh process with its own embedded Ray, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, **kw)


def assert_usage_error(run: subprocess.CompletedProcess, *needles: str) -> None:
    assert run.returncode == 2, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    assert "Traceback" not in run.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
