"""Test media, generated with PyAV (never downloaded)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from actors.media.test_pattern import TestPatternSource


def make_video(path: str, codec: str = "libx264", width: int = 320, height: int = 240,
               frames: int = 30, rate: int = 30, bframes: int = 2,
               pts: list[int] | None = None, gop: int | None = None, open_gop: bool = False,
               start: int = 0) -> str:
    """Encode a moving test pattern; ``pts`` (in 1/rate units) makes it variable-rate.

    ``gop`` sets the keyframe interval (frames), ``open_gop`` lets B-frames before a
    keyframe reference the previous GOP, and ``start`` shifts every pts (frames).
    """
    odd = bool(width % 2 or height % 2)
    fmt = "rgba" if odd else "yuv420p"
    pix_fmt = "yuv444p" if odd else "yuv420p"  # 4:4:4 holds odd sizes
    src = TestPatternSource(pattern="ball", width=width, height=height, format=fmt,
                            num_frames=frames, timecode=True)
    with av.open(path, "w") as out:
        st = out.add_stream(codec, rate=rate)
        st.width, st.height, st.pix_fmt = width, height, pix_fmt
        st.time_base = Fraction(1, rate)
        opts = {"preset": "ultrafast", "bf": str(bframes)} if codec == "libx264" else {}
        if codec == "libx265":
            opts = {"preset": "ultrafast", "x265-params": "log-level=error"}
        if codec == "libx264" and bframes:
            opts["preset"] = "veryfast"  # ultrafast turns B-frames off
        if gop:
            st.codec_context.gop_size = gop
            if codec == "libx264":
                opts["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0" + (
                    ":open-gop=1" if open_gop else "")
            elif codec == "libx265":
                opts["x265-params"] = (f"log-level=error:keyint={gop}:min-keyint={gop}:"
                                       f"scenecut=0:open-gop={int(open_gop)}:bframes={bframes}")
        st.codec_context.options = opts
        for i in range(frames):
            f = src.produce()
            vf = av.VideoFrame.from_ndarray(f.data, format=fmt).reformat(format=pix_fmt)
            vf.pts = (pts[i] if pts else i) + start
            vf.time_base = Fraction(1, rate)
            out.mux(st.encode(vf))
        out.mux(st.encode(None))
    return path


def make_audio_only(path: str) -> str:
    with av.open(path, "w") as out:
        st = out.add_stream("aac", rate=44100)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1024
            out.mux(st.encode(frame))
        out.mux(st.encode(None))
    return path


def probe_video(path: str) -> dict:
    """Frame count, duration, size and frame times of the first video stream, by decoding."""
    with av.open(path) as c:
        st = c.streams.video[0]
        times = [float(f.pts * f.time_base) for f in c.decode(st)]
        return {"frames": len(times), "width": st.codec_context.width,
                "height": st.codec_context.height, "codec": st.codec_context.name,
                "duration": float(st.duration * st.time_base) if st.duration else None,
                "times": times}


def corrupt_packets(path: str, out: str, indices: list[int], fill: bytes = b"\xff") -> list[int]:
    """Copy ``path`` to ``out`` with the bytes of some video packets (by decode-order index)
    overwritten by ``fill``. Sizes stay, so the container is still valid; the codec data is
    not. Returns the pts of the packets damaged."""
    with av.open(path) as c:
        packets = [(p.pos, bytes(p), p.pts) for p in c.demux(video=0) if p.size]
    with open(path, "rb") as f:
        data = bytearray(f.read())
    damaged = []
    for i in indices:
        pos, payload, pts = packets[i]
        assert pos is not None and data[pos:pos + len(payload)] == payload, (
            f"packet {i}: its bytes are not stored as one run at offset {pos}")
        data[pos:pos + len(payload)] = (fill * len(payload))[: len(payload)]
        damaged.append(pts)
    with open(out, "wb") as f:
        f.write(data)
    return damaged
