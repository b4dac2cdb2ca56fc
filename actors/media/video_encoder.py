"""VideoEncoder: the element over a VideoEncoderBackend (software or hardware)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from actors.element import Transform
from actors.errors import ConfigError
from actors.media.encoders import VideoEncoderBackend, VideoEncoderConfig, create_encoder
from actors.media.encoders.base import MAX_GOP
from actors.types import RAW_VIDEO, Caps, Frame, Packet

DEFAULT_FRAMERATE = 30  # fps, when the input caps carry no rate


class VideoEncoder(Transform):
    """Encodes raw frames into packets. The backend is opened (and probed) at READY.

    Takes a VideoEncoderConfig, or its fields as keywords; size and rate left as None
    come from the input caps.
    """

    accepts = (RAW_VIDEO,)

    def __init__(self, config: VideoEncoderConfig | None = None, **options: Any) -> None:
        super().__init__()
        self.config = config or VideoEncoderConfig(**options)
        self.backend: VideoEncoderBackend | None = None
        self._announce = False  # the next packet starts a stream of new caps

    def configure(self, caps_in: Caps | None) -> Caps:
        c = self.config
        if (c.width, c.height) not in ((None, None), (caps_in.width, caps_in.height)):
            raise ConfigError(
                f"'{self.name}' is set to {c.width}x{c.height} but its input is "
                f"{caps_in.width}x{caps_in.height}; put a VideoScaler before it")
        rate = c.framerate or caps_in.rate or DEFAULT_FRAMERATE
        gop = c.gop
        if gop is None and c.keyframe_interval:
            gop = min(MAX_GOP, max(1, round(c.keyframe_interval * rate)))
        config = replace(c, width=caps_in.width, height=caps_in.height, framerate=rate,
                         time_base=caps_in.time_base, gop=gop,
                         colour=c.colour or caps_in.colour)
        if self.backend is not None:
            self.backend.close()
        self.backend = create_encoder(config)
        return Caps.encoded_video(config.codec.value, caps_in.width, caps_in.height, rate,
                                  profile=self.backend.profile, extradata=self.backend.extradata,
                                  time_base=self.backend.time_base).replace(
            format=self.backend.pix_fmt, colour=config.colour)

    def process(self, frame: Frame) -> list[Packet]:
        if self.backend is None:
            raise ConfigError(f"{self.name}: not configured; it must be linked in a pipeline")
        flushed: list[Packet] = []
        if (frame.width, frame.height) != (self.caps_in.width, self.caps_in.height):
            flushed = self._resize(frame.width, frame.height)
        packets = self.backend.encode(frame)
        if self._announce and packets:
            # The muxer learns of the new stream from its first packet (a keyframe).
            packets[0] = replace(packets[0], meta={**packets[0].meta, "caps": self.caps_out})
            self._announce = False
        return flushed + packets

    def _resize(self, width: int, height: int) -> list[Packet]:
        """Frames of another size (an adapting live source): finish the stream so far,
        then a new encoder, and so new parameter sets, for the new size."""
        flushed = self.backend.flush()
        self.caps_in = self.caps_in.replace(width=width, height=height)
        self.caps_out = self.configure(self.caps_in)
        self._announce = True
        return flushed

    def flush(self) -> list[Packet]:
        return self.backend.flush() if self.backend else []

    def request_keyframe(self) -> None:
        if self.backend is not None:
            self.backend.request_keyframe()

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
