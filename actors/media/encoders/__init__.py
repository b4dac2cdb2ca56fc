"""Video encoder backends behind one interface (the plan's VideoEncoderBackend)."""

from actors.media.encoders.base import (
    EncoderBackend,
    EncoderUnavailable,
    VideoCodec,
    VideoEncoderBackend,
    VideoEncoderConfig,
)
from actors.media.encoders.factory import ProbeResult, create_encoder, probe

__all__ = [
    "EncoderBackend", "EncoderUnavailable", "ProbeResult", "VideoCodec", "VideoEncoderBackend",
    "VideoEncoderConfig", "create_encoder", "probe",
]
