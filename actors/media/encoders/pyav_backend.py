"""Encoders that PyAV opens in-process: software (libx264...), NVENC, QSV and V4L2 M2M.

These all take frames from system memory, so one implementation serves them; the
backends differ in encoder name, pixel format and how presets and quality map.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Any

import av
import numpy as np
from av.codec.context import Flags
from av.video.frame import PictureType

from actors.media.encoders.base import (
    DEFAULT_CRF,
    DEFAULT_PRESET,
    EncoderBackend,
    VideoCodec,
    VideoEncoderBackend,
    VideoEncoderConfig,
    deep_format,
)
from actors.types import Frame, Packet

# SVT-AV1 prints its banner unless told to log errors only; it reads this at first use.
os.environ.setdefault("SVT_LOG", "1")

# x264-style preset names mapped onto other encoders' scales.
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow")
SVT_PRESET = dict(zip(X264_PRESETS, (12, 11, 10, 9, 8, 6, 4, 2, 1)))  # SVT-AV1: 0 slow .. 13
VPX_CPU_USED = dict(zip(X264_PRESETS, (8, 8, 7, 6, 5, 4, 2, 1, 0)))  # libvpx: 0 slow .. 8
NVENC_PRESET = dict(zip(X264_PRESETS, ("p1", "p1", "p2", "p3", "p4", "p4", "p5", "p6", "p7")))

# What each encoder family needs to emit a frame as soon as it has it (B-frames are
# turned off for all of them on the codec context).
LOW_LATENCY: dict[str, dict[str, str]] = {
    "libx264": {"tune": "zerolatency"},  # no lookahead, no B-frames, sliced threads
    "libx265": {"tune": "zerolatency"},
    "libvpx-vp9": {"deadline": "realtime", "lag-in-frames": "0"},
    "libsvtav1": {"svtav1-params": "pred-struct=1"},  # SVT-AV1's low-delay structure
    "nvenc": {"tune": "ll", "zerolatency": "1", "delay": "0"},
    "qsv": {"async_depth": "1"},
}

# Hardware encoders want NV12; the software ones take planar 4:2:0.
PIX_FMT = {EncoderBackend.Qsv: "nv12", EncoderBackend.V4l2M2M: "nv12",
           EncoderBackend.Nvenc: "yuv420p", EncoderBackend.Software: "yuv420p"}


def encoder_options(name: str, cfg: VideoEncoderConfig) -> dict[str, str]:
    """FFmpeg private options for preset and rate control, per encoder."""
    preset = cfg.preset or DEFAULT_PRESET
    crf = cfg.crf if cfg.crf is not None else (None if cfg.bitrate else DEFAULT_CRF)
    opts: dict[str, str] = {}
    if name in ("libx264", "libx265"):
        opts["preset"] = preset
        if crf is not None:
            opts["crf"] = str(crf)
        if name == "libx265":
            opts["x265-params"] = "log-level=error"
    elif name == "libsvtav1":
        opts["preset"] = str(SVT_PRESET.get(preset, preset))
        if crf is not None:
            opts["crf"] = str(crf)
    elif name == "libvpx-vp9":
        opts["deadline"] = "realtime" if preset in X264_PRESETS[:3] else "good"
        opts["cpu-used"] = str(VPX_CPU_USED.get(preset, preset))
        opts["row-mt"] = "1"
        if crf is not None:
            opts["crf"] = str(crf)
            opts["b"] = "0"  # constant quality mode needs b:v 0
    elif name.endswith("_nvenc"):
        opts["preset"] = NVENC_PRESET.get(preset, preset)
        if crf is not None:
            opts.update(rc="vbr", cq=str(crf))
    elif name.endswith("_qsv"):
        opts["preset"] = preset if preset in X264_PRESETS[2:] else "veryfast"
        if crf is not None:
            opts["global_quality"] = str(crf)
    if cfg.low_latency:
        opts.update(LOW_LATENCY.get(name.split("_")[-1] if "_" in name else name, {}))
    return opts


class PyAvEncoder(VideoEncoderBackend):
    """Any FFmpeg encoder that accepts frames in system memory."""

    def __init__(self, config: VideoEncoderConfig, backend: EncoderBackend, name: str) -> None:
        self.config = config
        self.backend = backend
        self.name = name
        self.time_base = config.time_base or Fraction(1) / config.framerate
        self.pix_fmt = (config.deep and deep_format(name)) or PIX_FMT.get(backend, "yuv420p")
        ctx = av.CodecContext.create(name, "w")
        ctx.width, ctx.height = config.width, config.height
        ctx.pix_fmt = self.pix_fmt
        ctx.time_base = self.time_base
        ctx.framerate = config.framerate
        ctx.flags |= Flags.global_header  # SPS/PPS as extradata, for the muxer's avcC
        if config.colour is not None:
            config.colour.apply(ctx)  # libx264/x265/svt write it into the VUI
        if config.gop is not None:
            ctx.gop_size = config.gop
        if config.low_latency:
            ctx.max_b_frames = 0
        if config.bitrate:
            ctx.bit_rate = config.bitrate
        if backend is EncoderBackend.Software:
            ctx.thread_count = config.threads or 0  # 0: one per core
            if config.frame_threads:
                # PyAV opens contexts with slice threads, which libx264 maps to sliced
                # threads: lower latency, less throughput than the frame threads of the CLI.
                ctx.thread_type = "FRAME"
        ctx.options = encoder_options(name, config)
        ctx.open()
        self.ctx = ctx
        self.extradata = bytes(ctx.extradata) if ctx.extradata else None
        self.profile = ctx.profile
        self._frame_ticks = max(1, round(1 / (config.framerate * self.time_base)))
        self._pending: dict[int, tuple[int, dict[str, Any]]] = {}
        self._keyframe_requested = False

    def codec(self) -> VideoCodec:
        return self.config.codec

    def encode(self, frame: Frame) -> list[Packet]:
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.data), format=frame.format)
        if frame.format != self.pix_fmt:
            vf = vf.reformat(format=self.pix_fmt)
        pts = frame.pts if frame.time_base == self.time_base else (
            None if frame.pts is None else round(frame.pts * frame.time_base / self.time_base))
        vf.pts, vf.time_base = pts, self.time_base
        if self._keyframe_requested:
            # libx264/x265 turn a forced I picture into an IDR in a closed-GOP stream.
            vf.pict_type, self._keyframe_requested = PictureType.I, False
        if pts is not None:
            self._pending[pts] = (frame.duration or self._frame_ticks, frame.meta)
        return self._packets(self.ctx.encode(vf))

    def encode_av(self, frame: av.VideoFrame, duration: int | None = None) -> list[Packet]:
        if frame.format.name != self.pix_fmt:
            frame = frame.reformat(format=self.pix_fmt)
        frame.time_base = self.time_base
        if frame.pts is not None:
            self._pending[frame.pts] = (duration or self._frame_ticks, {})
        return self._packets(self.ctx.encode(frame))

    def flush(self) -> list[Packet]:
        return self._packets(self.ctx.encode(None))

    def request_keyframe(self) -> None:
        self._keyframe_requested = True

    def close(self) -> None:
        self.ctx = None  # FFmpeg frees the encoder with the context

    def _packets(self, packets: list[av.Packet]) -> list[Packet]:
        out = []
        for p in packets:
            duration, meta = self._pending.pop(p.pts, (p.duration or self._frame_ticks, {}))
            out.append(Packet(bytes(p), pts=p.pts, dts=p.dts, duration=duration,
                              time_base=self.time_base, keyframe=p.is_keyframe, meta=meta))
        return out
