"""Choosing an encoder: ``create_encoder`` and ``probe``.

A codec being compiled into FFmpeg does not mean it works on this host (an
NVENC-enabled build on a GPU without NVENC, say), so every candidate is really
opened and made to encode one small frame before it is chosen.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import logging
from dataclasses import dataclass, replace
from fractions import Fraction

import av
import numpy as np

from actors.errors import ConfigError
from actors.media.encoders.base import (
    AUTO_ORDER,
    ENCODER_NAMES,
    EncoderBackend,
    EncoderUnavailable,
    VideoCodec,
    VideoEncoderBackend,
    VideoEncoderConfig,
)
from actors.media.encoders.pyav_backend import PyAvEncoder
from actors.media.encoders.vaapi_backend import VaapiEncoder, render_nodes, vaapi_unavailable
from actors.types import Frame

log = logging.getLogger("parallax.encoders")

PROBE_SIZE = (256, 144)  # small, but above the minimum size of hardware encoders
NO_NVENC_GPUS = "H100, H200, A100 and A30 have no NVENC"


@dataclass(frozen=True)
class ProbeResult:
    backend: EncoderBackend
    codec: VideoCodec
    encoder: str
    available: bool
    reason: str


def _nvenc_library() -> bool:
    for name in ("libnvidia-encode.so.1", ctypes.util.find_library("nvidia-encode")):
        if name:
            try:
                ctypes.CDLL(name)
                return True
            except OSError:
                continue
    return False


def precheck(backend: EncoderBackend, codec: VideoCodec) -> str | None:
    """Why ``backend`` cannot encode ``codec`` here, judged without opening it; None if it may."""
    if backend is EncoderBackend.VulkanVideo:
        return "Vulkan Video encoding is not supported yet; use nvenc, qsv, vaapi or software"
    if backend is EncoderBackend.Vaapi:
        return vaapi_unavailable(codec)
    name = ENCODER_NAMES.get(backend, {}).get(codec)
    if name is None:
        return f"{backend.value} has no {codec.value} encoder"
    if name not in av.codecs_available:
        return f"{name}: not compiled into this FFmpeg (PyAV {av.__version__})"
    if backend is EncoderBackend.Nvenc and not _nvenc_library():
        return (f"no NVENC: {name} is compiled in, but libnvidia-encode was not found "
                f"(no NVIDIA driver); note {NO_NVENC_GPUS}")
    if backend is EncoderBackend.Qsv and not render_nodes():
        return f"no QSV: {name} is compiled in, but there is no Intel GPU render node"
    if backend is EncoderBackend.V4l2M2M and not glob.glob("/dev/video*"):
        return f"no V4L2 M2M: {name} is compiled in, but there is no /dev/video* device"
    return None


def open_backend(config: VideoEncoderConfig, backend: EncoderBackend) -> VideoEncoderBackend:
    """Open ``backend`` for ``config`` or raise EncoderUnavailable with the reason."""
    if not config.complete:
        raise ConfigError("an encoder needs width, height and framerate; VideoEncoder takes "
                          "them from its input")
    reason = precheck(backend, config.codec)
    if reason:
        raise EncoderUnavailable(reason)
    if backend is EncoderBackend.Vaapi:
        return VaapiEncoder(config)
    name = ENCODER_NAMES[backend][config.codec]
    try:
        return PyAvEncoder(config, backend, name)
    except (av.FFmpegError, OSError, ValueError) as exc:
        hint = f"; {NO_NVENC_GPUS}" if backend is EncoderBackend.Nvenc else ""
        raise EncoderUnavailable(f"{name}: compiled in, but opening it failed: {exc}{hint}") \
            from None


# Verdicts of try_encode in this process, by probe config. An FFmpeg encoder cannot be
# reused once drained (libx264 fails and others return EOF after flush_buffers; measured),
# so a probe encoder is never the real one; but a process that opens many encoders (a farm
# worker opens one per chunk) probes each backend once, then opens only the real encoder.
_VERDICTS: dict[VideoEncoderConfig, str | None] = {}


def try_encode(config: VideoEncoderConfig, backend: EncoderBackend) -> str | None:
    """Open ``backend`` at a small size and encode one frame; None on success, else why not."""
    w, h = PROBE_SIZE
    small = replace(config, width=w, height=h, bitrate=None, time_base=None, backend=backend)
    if small not in _VERDICTS:
        _VERDICTS[small] = _encode_test_frame(small, backend)
    return _VERDICTS[small]


def _encode_test_frame(small: VideoEncoderConfig, backend: EncoderBackend) -> str | None:
    w, h = small.width, small.height
    try:
        enc = open_backend(small, backend)
    except EncoderUnavailable as exc:
        return str(exc)
    try:
        frame = Frame(np.full((h * 3 // 2, w), 128, np.uint8), "yuv420p", w, h, pts=0,
                      time_base=Fraction(1) / small.framerate, duration=1)
        packets = enc.encode(frame) + enc.flush()
        return None if packets else f"{enc.name}: opened, but produced no packet"
    except Exception as exc:
        return f"{enc.name}: opened, but encoding failed: {exc}"
    finally:
        enc.close()


def create_encoder(config: VideoEncoderConfig) -> VideoEncoderBackend:
    """Open the backend ``config`` asks for; for Auto, the first that really works.

    Auto tries NVENC, QSV, VA-API, V4L2 M2M, then software, and logs its choice and why.
    """
    if config.backend is not EncoderBackend.Auto:
        return open_backend(config, config.backend)
    skipped = []
    for backend in AUTO_ORDER:
        reason = try_encode(config, backend)
        if reason is None:
            enc = open_backend(config, backend)
            why = "; ".join(skipped) or "first choice"
            log.info("encoder: %s (%s backend) for %s; skipped: %s", enc.name, backend.value,
                     config.codec.value, why)
            enc.choice_reason = f"chose {enc.name}; skipped: {why}"
            return enc
        skipped.append(f"{backend.value}: {reason}")
    raise EncoderUnavailable(f"no encoder for {config.codec.value} works here: "
                             + "; ".join(skipped))


def probe(codecs: tuple[VideoCodec, ...] = tuple(VideoCodec)) -> list[ProbeResult]:
    """Every backend x codec, with whether it really encodes here and why (not)."""
    results = []
    for backend in (*AUTO_ORDER, EncoderBackend.VulkanVideo):
        for codec in codecs:
            name = ENCODER_NAMES.get(backend, {}).get(codec, "-")
            if backend is EncoderBackend.VulkanVideo:
                name = f"{codec.mp4_tag}_vulkan"
            cfg = VideoEncoderConfig(*PROBE_SIZE, Fraction(30), codec=codec, backend=backend)
            reason = try_encode(cfg, backend)
            results.append(ProbeResult(backend, codec, name, reason is None,
                                       reason or "encodes a test frame"))
    return results
