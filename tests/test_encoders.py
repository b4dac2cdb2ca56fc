"""Encoder backends: software round trips, Auto's choice, and gated hardware tests."""

from __future__ import annotations

from fractions import Fraction

import av
import pytest

from actors.errors import ConfigError
from actors.media.encoders import (
    EncoderBackend,
    EncoderUnavailable,
    VideoCodec,
    VideoEncoderConfig,
    create_encoder,
)
from actors.media.encoders.factory import precheck
from actors.media.test_pattern import TestPatternSource
from actors.media.video_encoder import VideoEncoder
from actors.types import Caps


def encode_decode(config: VideoEncoderConfig, frames: int = 20) -> tuple[str, int, int]:
    enc = create_encoder(config)
    src = TestPatternSource(pattern="ball", width=config.width, height=config.height,
                            num_frames=frames)
    packets = []
    for _ in range(frames):
        packets += enc.encode(src.produce())
    packets += enc.flush()
    dec = av.CodecContext.create(config.codec.mp4_tag if config.codec != VideoCodec.AV1
                                 else "libdav1d", "r")
    if enc.extradata:
        dec.extradata = enc.extradata
    decoded = sum(len(dec.decode(av.Packet(p.data))) for p in packets)
    decoded += len(dec.decode(None))
    return enc.name, len(packets), decoded


@pytest.mark.parametrize("codec", list(VideoCodec))
def test_software_round_trip(codec):
    name, packets, decoded = encode_decode(
        VideoEncoderConfig(320, 240, Fraction(30), codec=codec, backend="software"))
    assert (packets, decoded) == (20, 20), name


def test_auto_without_hardware_chooses_software_and_says_why():
    if any(precheck(b, VideoCodec.H264) is None for b in
           (EncoderBackend.Nvenc, EncoderBackend.Qsv, EncoderBackend.Vaapi,
            EncoderBackend.V4l2M2M)):
        pytest.skip("this host has an encoder device; Auto may rightly choose it")
    enc = create_encoder(VideoEncoderConfig(320, 240, Fraction(30)))
    assert enc.name == "libx264"
    assert "nvenc: no NVENC" in enc.choice_reason and "qsv:" in enc.choice_reason


def test_missing_backend_says_what_is_missing():
    if precheck(EncoderBackend.Nvenc, VideoCodec.H264) is None:
        pytest.skip("NVENC looks present here")
    with pytest.raises(EncoderUnavailable, match=r"no NVENC.*libnvidia-encode.*H100"):
        create_encoder(VideoEncoderConfig(320, 240, Fraction(30), backend="nvenc"))


def test_vulkan_is_reserved():
    with pytest.raises(EncoderUnavailable, match="not supported yet"):
        create_encoder(VideoEncoderConfig(320, 240, Fraction(30), backend="vulkan"))


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 321}, "even width and height"),
    ({"bitrate": 5}, "bitrate=5"),
    ({"crf": 99}, "crf=99"),
    ({"gop": 0}, "gop=0"),
    ({"codec": "mpeg2"}, "unknown VideoCodec 'mpeg2'"),
])
def test_bad_config(kwargs, message):
    args = {"width": 320, "height": 240, "framerate": Fraction(30), **kwargs}
    with pytest.raises(ConfigError, match=message):
        VideoEncoderConfig(**args)


def test_video_encoder_checks_options_when_built_and_size_at_ready():
    with pytest.raises(ConfigError, match="bitrate=5"):
        VideoEncoder(bitrate=5)  # not at READY, long after the user typed it
    enc = VideoEncoder(width=640, height=360)
    with pytest.raises(ConfigError, match=r"640x360 but its input is 320x240.*VideoScaler"):
        enc.configure(Caps.raw_video("yuv420p", 320, 240, 30))
    caps = VideoEncoder(codec="h265").configure(Caps.raw_video("yuv420p", 320, 240, 25))
    assert (caps.codec, caps.width, caps.height, caps.rate) == ("h265", 320, 240, 25)
    assert caps.extradata  # global headers travel in the caps, for the muxer


def _hardware_case(backend: EncoderBackend) -> pytest.param:
    """A backend to test only where its device is present, skipped with the reason."""
    missing = precheck(backend, VideoCodec.H264)
    return pytest.param(backend, id=backend.value, marks=[
        getattr(pytest.mark, backend.value),
        pytest.mark.skipif(missing is not None, reason=str(missing))])


@pytest.mark.parametrize("backend", [_hardware_case(b) for b in (
    EncoderBackend.Nvenc, EncoderBackend.Qsv, EncoderBackend.Vaapi, EncoderBackend.V4l2M2M)])
def test_hardware_round_trip(backend):
    config = VideoEncoderConfig(640, 360, Fraction(30), backend=backend)
    assert encode_decode(config)[1:] == (20, 20)
