"""VA-API encoding (Intel/AMD) through the system's ffmpeg, which PyAV's wheel lacks.

Raw NV12 frames go to ``ffmpeg -vaapi_device ... -c:v h264_vaapi`` on stdin; the
Annex B stream comes back on stdout and is split into access units at the
access unit delimiters the encoder is asked to emit. B-frames are off, so
packets come out in input order and keep the input timestamps.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
import threading
from fractions import Fraction
from typing import Any

import av
import numpy as np

from actors.media.encoders.base import (
    DEFAULT_CRF,
    EncoderUnavailable,
    VideoCodec,
    VideoEncoderBackend,
    VideoEncoderConfig,
)
from actors.types import Frame, Packet

VAAPI_ENCODERS = {VideoCodec.H264: "h264_vaapi", VideoCodec.H265: "hevc_vaapi"}
# Start codes of IDR slices: H.264 nal_unit_type 5, H.265 types 19 and 20.
IDR_MARKERS = {
    VideoCodec.H264: (b"\x00\x00\x01\x65", b"\x00\x00\x01\x45", b"\x00\x00\x01\x25"),
    VideoCodec.H265: (b"\x00\x00\x01\x26", b"\x00\x00\x01\x28"),
}
AUD = {VideoCodec.H264: b"\x00\x00\x00\x01\x09", VideoCodec.H265: b"\x00\x00\x00\x01\x46"}
READ_CHUNK = 1 << 16  # bytes


def render_nodes() -> list[str]:
    return sorted(glob.glob("/dev/dri/renderD*"))


def system_ffmpeg_encoders() -> str:
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        return ""
    run = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True,
                         timeout=20)
    return run.stdout


def vaapi_unavailable(codec: VideoCodec) -> str | None:
    """Why VA-API cannot encode ``codec`` here, or None if it may."""
    name = VAAPI_ENCODERS.get(codec)
    if name is None:
        return f"VA-API: no {codec.value} encoder wired up (h264 and h265 are)"
    if not render_nodes():
        return ("no VA-API: no render node (/dev/dri/renderD*); "
                "needs an Intel/AMD GPU and its driver")
    if not shutil.which("ffmpeg"):
        return "no VA-API: the system ffmpeg is missing (apt-get install ffmpeg)"
    if name not in system_ffmpeg_encoders():
        return f"no VA-API: the system ffmpeg was built without {name}"
    return None


class VaapiEncoder(VideoEncoderBackend):
    def __init__(self, config: VideoEncoderConfig) -> None:
        reason = vaapi_unavailable(config.codec)
        if reason:
            raise EncoderUnavailable(reason)
        self.config = config
        self.name = VAAPI_ENCODERS[config.codec]
        self.time_base = config.time_base or Fraction(1) / config.framerate
        self._aud = AUD[config.codec]
        rate = config.framerate
        cmd = [
            "ffmpeg", "-hide_banner", "-loglevel", "error",
            "-vaapi_device", render_nodes()[0],
            "-f", "rawvideo", "-pix_fmt", "nv12", "-s", f"{config.width}x{config.height}",
            "-framerate", f"{rate.numerator}/{rate.denominator}", "-i", "pipe:0",
            "-vf", "format=nv12,hwupload", "-c:v", self.name, "-aud", "1", "-bf", "0",
        ]
        if config.gop:
            cmd += ["-g", str(config.gop)]
        if config.bitrate:
            cmd += ["-b:v", str(config.bitrate)]
        else:
            cmd += ["-rc_mode", "CQP", "-qp", str(config.crf or DEFAULT_CRF)]
        cmd += ["-f", config.codec.mp4_tag, "pipe:1"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._queue: list[tuple[int | None, int, dict[str, Any]]] = []
        self.extradata = None  # in-band SPS/PPS; the mp4 muxer builds avcC from them

    def codec(self) -> VideoCodec:
        return self.config.codec

    def encode(self, frame: Frame) -> list[Packet]:
        data = frame.data
        if frame.format != "nv12":
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(data), format=frame.format)
            data = vf.reformat(format="nv12").to_ndarray()
        self._queue.append((frame.pts, frame.duration or 1, frame.meta))
        self.proc.stdin.write(np.ascontiguousarray(data).tobytes())
        return self._take(final=False)

    def flush(self) -> list[Packet]:
        self.proc.stdin.close()
        self._reader.join(timeout=30)
        if self.proc.wait(timeout=30) != 0:
            err = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"{self.name} failed: {err[-1] if err else 'no message'}")
        return self._take(final=True)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()

    def _read(self) -> None:
        while chunk := self.proc.stdout.read1(READ_CHUNK):
            with self._lock:
                self._buf += chunk

    def _take(self, final: bool) -> list[Packet]:
        """Split complete access units off the buffer; each starts with an AUD."""
        with self._lock:
            units = bytes(self._buf).split(self._aud)
            tail = b"" if final else units.pop()
            self._buf = bytearray(self._aud + tail if tail else b"")
        out = []
        for body in (u for u in units if u):
            pts, duration, meta = self._queue.pop(0)
            au = self._aud + body
            idr = any(marker in au for marker in IDR_MARKERS[self.config.codec])
            out.append(Packet(au, pts=pts, dts=pts, duration=duration, time_base=self.time_base,
                              keyframe=idr, meta=meta))
        return out
