"""Video encoder backends behind one interface (the plan's VideoEncoderBackend)."""

from actors.encoders.base import (
    EncoderBackend,
    EncoderUnavailable,
    VideoCodec,
    VideoEncoderBackend,
    VideoEncoderConfig,
)
from actors.encoders.factory import ProbeResult, create_encoder, probe

__all__ = [
    "EncoderBackend", "EncoderUnavailable", "ProbeResult", "VideoCodec", "VideoEncoderBackend",
    "VideoEncoderConfig", "create_encoder", "probe",
]
