"""VideoEncoder: the element over a VideoEncoderBackend (software or hardware)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.element import Transform
from actors.encoders import (
    EncoderBackend,
    VideoCodec,
    VideoEncoderBackend,
    VideoEncoderConfig,
    create_encoder,
)
from actors.errors import ConfigError
from actors.types import RAW_VIDEO, Caps, Frame, Packet

DEFAULT_FRAMERATE = 30  # fps, when the input caps carry no rate


@dataclass(frozen=True)
class VideoEncoderSettings:
    codec: VideoCodec = VideoCodec.H264
    backend: EncoderBackend = EncoderBackend.Auto
    bitrate: int | None = None
    """Bits per second; None encodes at constant quality (crf)."""
    crf: int | None = None
    gop: int | None = None
    """Frames between keyframes; None lets the encoder choose."""
    preset: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "codec", VideoCodec.parse(self.codec))
        object.__setattr__(self, "backend", EncoderBackend.parse(self.backend))


class VideoEncoder(Transform):
    """Encodes raw frames into packets. The backend is opened (and probed) at READY."""

    accepts = (RAW_VIDEO,)

    def __init__(self, settings: VideoEncoderSettings | None = None, **options: Any) -> None:
        super().__init__()
        self.settings = settings or VideoEncoderSettings(**options)
        self.backend: VideoEncoderBackend | None = None

    def configure(self, caps_in: Caps | None) -> Caps:
        s = self.settings
        rate = caps_in.rate or DEFAULT_FRAMERATE
        config = VideoEncoderConfig(caps_in.width, caps_in.height, rate, s.codec, s.backend,
                                    s.bitrate, s.crf, s.gop, s.preset, caps_in.time_base)
        if self.backend is not None:
            self.backend.close()
        self.backend = create_encoder(config)
        return Caps.encoded_video(s.codec.value, caps_in.width, caps_in.height, rate,
                                  profile=self.backend.profile, extradata=self.backend.extradata,
                                  time_base=self.backend.time_base)

    def process(self, frame: Frame) -> list[Packet]:
        if self.backend is None:
            raise ConfigError(f"{self.name}: not configured; it must be linked in a pipeline")
        return self.backend.encode(frame)

    def flush(self) -> list[Packet]:
        return self.backend.flush() if self.backend else []

    def close(self, ok: bool) -> None:
        if self.backend is not None:
            self.backend.close()

    def results(self) -> dict[str, Any]:
        b = self.backend
        return {"encoder": b.name if b else None,
                "choice": getattr(b, "choice_reason", None) if b else None}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["backend"] = None  # an open encoder stays in the process that opened it
        return state
