"""SegmentDecoder: fMP4 segments in, raw frames out (FFmpeg's mp4 demuxer and decoders)."""

from __future__ import annotations

import io
import logging
from typing import Any

import av

from actors.element import Transform
from actors.errors import MediaError
from actors.streaming.fmp4 import read_init
from actors.types import ENCODED_SEGMENT, Caps, Frame, Packet

log = logging.getLogger("parallax.segment_decoder")

OUT_FORMAT = "yuv420p"


class SegmentDecoder(Transform):
    """Decodes each media segment against the current init segment.

    Every segment is demuxed on its own (init + moof + mdat), so a damaged one is counted
    and skipped without disturbing the next; one decoder lives across segments so frames
    held back for B-frame reordering come out in order.
    """

    accepts = (ENCODED_SEGMENT,)

    def __init__(self) -> None:
        super().__init__()
        self.init: bytes | None = None
        self.ctx: Any = None
        self.corrupt_segments = 0
        self.frames = 0

    def configure(self, caps_in: Caps | None) -> Caps:
        info = self._load(caps_in.extradata or b"")
        return Caps.raw_video(OUT_FORMAT, info.width, info.height, info.rate or caps_in.rate,
                              time_base=info.time_base)

    def _load(self, init: bytes) -> Any:
        info = read_init(init)
        with av.open(io.BytesIO(init), "r", format="mp4") as container:
            extradata = container.streams.video[0].codec_context.extradata
        ctx = av.CodecContext.create(info.codec, "r")
        if extradata:
            ctx.extradata = extradata
        self.init, self.ctx, self.info = init, ctx, info
        return info

    def start(self) -> None:
        if self.ctx is None and self.init is not None:
            self._load(self.init)

    def process(self, packet: Packet) -> list[Frame]:
        if packet.meta.get("init"):
            if packet.data != self.init:
                out = self._drain()
                info = self._load(packet.data)
                if (info.width, info.height) != (self.caps_out.width, self.caps_out.height):
                    raise MediaError(
                        f"the stream changed size mid-way ({self.caps_out.width}x"
                        f"{self.caps_out.height} -> {info.width}x{info.height}); restart "
                        "the receiver, or add a VideoScaler after the decoder")
                return out
            return []
        try:
            with av.open(io.BytesIO(self.init + packet.data), "r", format="mp4") as container:
                stream = container.streams.video[0]
                out = []
                for pkt in container.demux(stream):
                    if pkt.size:
                        out += self._frames(self.ctx.decode(pkt))
                return out
        except (av.FFmpegError, IndexError) as exc:
            self.corrupt_segments += 1
            log.warning("skipping a segment that does not decode (%d so far): %s",
                        self.corrupt_segments, exc)
            return []

    def _frames(self, decoded: list[Any]) -> list[Frame]:
        out = []
        tb = self.caps_out.time_base
        for vf in decoded:
            if vf.format.name != OUT_FORMAT:
                vf = vf.reformat(format=OUT_FORMAT)
            out.append(Frame(vf.to_ndarray(), OUT_FORMAT, vf.width, vf.height, pts=vf.pts,
                             time_base=tb, meta={"seq": self.frames}))
            self.frames += 1
        return out

    def _drain(self) -> list[Frame]:
        try:
            return self._frames(self.ctx.decode(None)) if self.ctx else []
        except av.FFmpegError:
            return []

    def flush(self) -> list[Frame]:
        return self._drain()

    def results(self) -> dict[str, Any]:
        return {"frames": self.frames, "corrupt_segments": self.corrupt_segments}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["ctx"] = None
        return state
