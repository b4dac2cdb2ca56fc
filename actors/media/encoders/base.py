"""The encoder family's shared interface: codecs, backends, config and VideoEncoderBackend."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from actors.errors import ConfigError
from actors.types import Colour, Frame, NamedEnum, Packet

DEFAULT_PRESET = "veryfast"  # libx264/libx265 speed preset; hardware backends map their own
DEFAULT_CRF = 23  # constant quality when no bitrate is given (x264's default)
MAX_BITRATE = 1_000_000_000  # 1 Gbps: anything above is a typo, not a setting
MAX_GOP = 10_000  # frames
MAX_THREADS = 256


class VideoCodec(NamedEnum):
    H264 = "h264"
    H265 = "h265"
    AV1 = "av1"
    VP9 = "vp9"

    @property
    def mp4_tag(self) -> str:
        """The name FFmpeg's muxers use for this codec."""
        return {"h264": "h264", "h265": "hevc", "av1": "av1", "vp9": "vp9"}[self.value]


class EncoderBackend(NamedEnum):
    Auto = "auto"
    Software = "software"
    Nvenc = "nvenc"
    Qsv = "qsv"
    Vaapi = "vaapi"
    V4l2M2M = "v4l2m2m"
    VulkanVideo = "vulkan"


# FFmpeg encoder names per backend and codec; a missing pair is unsupported.
ENCODER_NAMES: dict[EncoderBackend, dict[VideoCodec, str]] = {
    EncoderBackend.Software: {VideoCodec.H264: "libx264", VideoCodec.H265: "libx265",
                              VideoCodec.AV1: "libsvtav1", VideoCodec.VP9: "libvpx-vp9"},
    EncoderBackend.Nvenc: {VideoCodec.H264: "h264_nvenc", VideoCodec.H265: "hevc_nvenc",
                           VideoCodec.AV1: "av1_nvenc"},
    EncoderBackend.Qsv: {VideoCodec.H264: "h264_qsv", VideoCodec.H265: "hevc_qsv",
                         VideoCodec.AV1: "av1_qsv", VideoCodec.VP9: "vp9_qsv"},
    EncoderBackend.Vaapi: {VideoCodec.H264: "h264_vaapi", VideoCodec.H265: "hevc_vaapi",
                           VideoCodec.AV1: "av1_vaapi", VideoCodec.VP9: "vp9_vaapi"},
    EncoderBackend.V4l2M2M: {VideoCodec.H264: "h264_v4l2m2m", VideoCodec.H265: "hevc_v4l2m2m"},
}

# 10-bit 4:2:0 as the encoders take it: planar for the software ones, P010 for NVENC/QSV.
DEEP_FORMATS = ("yuv420p10le", "p010le")


def deep_format(encoder_name: str) -> str | None:
    """The 10-bit 4:2:0 format ``encoder_name`` takes in this FFmpeg build, if any."""
    try:
        formats = {f.name for f in av.codec.Codec(encoder_name, "w").video_formats or ()}
    except (ValueError, av.FFmpegError):
        return None
    return next((f for f in DEEP_FORMATS if f in formats), None)


# What Auto tries, best first: dedicated hardware, then the CPU.
AUTO_ORDER = (EncoderBackend.Nvenc, EncoderBackend.Qsv, EncoderBackend.Vaapi,
              EncoderBackend.V4l2M2M, EncoderBackend.Software)


@dataclass(frozen=True)
class VideoEncoderConfig:
    width: int | None = None
    """None: the input's (VideoEncoder fills size and rate in from its caps)."""
    height: int | None = None
    framerate: Fraction | None = None
    codec: VideoCodec = VideoCodec.H264
    backend: EncoderBackend = EncoderBackend.Auto
    bitrate: int | None = None
    """Bits per second; None encodes at constant quality (crf)."""
    crf: int | None = None
    """Constant rate factor, 0-51 (lower is better); default 23 when no bitrate is set."""
    gop: int | None = None
    """Frames between keyframes; None lets the encoder choose (x264: 250)."""
    keyframe_interval: float | None = None
    """Seconds between keyframes, used when gop is None (fragmented outputs set it to the
    fragment duration so that every fragment starts on a keyframe)."""
    preset: str | None = None
    """Speed/quality preset, passed to the encoder (x264: ultrafast ... veryslow)."""
    time_base: Fraction | None = None
    """Timestamps' unit; None uses 1/framerate."""
    threads: int | None = None
    """Encoder threads (software encoders); None: one per core, FFmpeg's default."""
    frame_threads: bool = False
    """Frame threads (throughput: the farm) instead of slice threads (latency: live)."""
    deep: bool = False
    """Encode 10-bit 4:2:0 where the encoder can (a 10-bit input kept 10-bit); else 8-bit."""
    colour: Colour | None = None
    """The input's colour description, signalled in the bitstream (VUI) and container."""
    low_latency: bool = False
    """Encode each frame as it comes: no B-frames, no lookahead (x264/x265 zerolatency,
    NVENC's low-latency tuning, libvpx realtime with no lag), for live pipelines."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "codec", VideoCodec.parse(self.codec))
        object.__setattr__(self, "backend", EncoderBackend.parse(self.backend))
        if self.width is not None and self.height is not None and (
                self.width < 2 or self.height < 2 or self.width % 2 or self.height % 2):
            raise ConfigError(
                f"encoder size {self.width}x{self.height}: 4:2:0 encoding needs an even width "
                "and height; scale to an even size first"
            )
        if self.framerate is not None and self.framerate <= 0:
            raise ConfigError(f"framerate={self.framerate}: must be > 0")
        if self.bitrate is not None and not 1000 <= self.bitrate <= MAX_BITRATE:
            raise ConfigError(f"bitrate={self.bitrate}: must be 1k to 1G bits per second")
        if self.crf is not None and not 0 <= self.crf <= 63:
            raise ConfigError(f"crf={self.crf}: must be 0-51 (x264/x265) or 0-63 (AV1/VP9)")
        if self.gop is not None and not 1 <= self.gop <= MAX_GOP:
            raise ConfigError(f"gop={self.gop}: must be 1-{MAX_GOP} frames")
        if self.threads is not None and not 1 <= self.threads <= MAX_THREADS:
            raise ConfigError(f"threads={self.threads}: must be 1-{MAX_THREADS}")
        if self.keyframe_interval is not None and not 0 < self.keyframe_interval <= 60:
            raise ConfigError(f"keyframe_interval={self.keyframe_interval}: must be "
                              "0-60 seconds")

    @property
    def complete(self) -> bool:
        return None not in (self.width, self.height, self.framerate)


class VideoEncoderBackend:
    """One way of encoding frames (the plan's trait). Implementations wrap FFmpeg encoders."""

    name: str = ""
    """The FFmpeg encoder used, e.g. "libx264"."""
    extradata: bytes | None = None
    """Global headers (SPS/PPS), for the muxer's avcC/hvcC."""
    profile: str | None = None
    time_base: Fraction = Fraction(1, 90000)
    """The unit of the packets' timestamps."""
    pix_fmt: str = "yuv420p"
    """The pixel format the encoder takes (and the stream is in)."""

    def encode(self, frame: Frame) -> list[Packet]:
        raise NotImplementedError

    def encode_av(self, frame: Any, duration: int | None = None) -> list[Packet]:
        """Encode a PyAV VideoFrame whose pts is in this encoder's time base.

        Backends that run FFmpeg in-process take it as it is; the others get a Frame.
        """
        return self.encode(Frame(frame.to_ndarray(), frame.format.name, frame.width,
                                 frame.height, pts=frame.pts, time_base=self.time_base,
                                 duration=duration))

    def flush(self) -> list[Packet]:
        raise NotImplementedError

    def request_keyframe(self) -> None:
        """Make the next frame a keyframe (an IDR), where the encoder allows it (a muxer
        downstream was replaced and can only start at one). A no-op by default: the next
        scheduled keyframe then serves."""

    def codec(self) -> VideoCodec:
        raise NotImplementedError

    def close(self) -> None:
        """Release the encoder (and its device)."""


class EncoderUnavailable(ConfigError):
    """A backend that this host cannot run, with the reason."""
