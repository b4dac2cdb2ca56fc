"""ChunkStitcher: put encoded chunks back into one stream, and prove the seams are clean.

Chunks arrive in order (the pool's edge merges them). Before any packet goes on to the
muxer, the stitcher checks what a player would trip over: each chunk begins where the
previous one ended (no gap, no overlap), carries the parameter sets of the first (one
avcC/hvcC serves the whole file), starts with a keyframe, and keeps decode timestamps
strictly increasing through the seam. An encoder whose delay differs from one chunk to
the next is fixed up at the seam; anything else is an error naming the chunk.
"""

from __future__ import annotations

import logging
from typing import Any

from actors.element import Transform
from actors.errors import MediaError
from actors.farm.chunk import ENCODED_CHUNKS, EncodedChunk
from actors.types import Caps, Packet

log = logging.getLogger("parallax.chunk_stitcher")


class ChunkStitcher(Transform):
    """EncodedChunk in, the packets of a single encoded stream out."""

    accepts = (ENCODED_CHUNKS,)

    def __init__(self) -> None:
        super().__init__()
        self.next_index = 0
        self.next_start: int | None = None
        self.last_dts: int | None = None
        self.frames = 0
        self.decoded = 0
        self.lost: list[dict[str, Any]] = []
        self.corrupt_packets = 0
        self.seams_fixed = 0
        self.workers: dict[str, dict[str, Any]] = {}

    def configure(self, caps_in: Caps | None) -> Caps:
        return Caps.encoded_video(caps_in.codec, caps_in.width, caps_in.height, caps_in.rate,
                                  profile=caps_in.profile, extradata=caps_in.extradata,
                                  time_base=caps_in.time_base).replace(
            format=caps_in.format, colour=caps_in.colour)

    def process(self, chunk: EncodedChunk) -> list[Packet]:
        self._check(chunk)
        packets = self._fix_dts(chunk)
        self.next_index += 1
        self.next_start = chunk.end
        self.frames += len(packets)
        self.decoded += chunk.frames_decoded
        self.corrupt_packets += chunk.corrupt_packets
        if chunk.lost:
            self.lost.append({"chunk": chunk.label, "frames": chunk.lost})
            log.warning("%s: %d frame(s) could not be decoded (%d corrupt packets); the "
                        "rest of the file goes on", chunk.label, chunk.lost,
                        chunk.corrupt_packets)
        key = f"{chunk.worker.get('node', '?')}:{chunk.worker.get('pid', '?')}"
        w = self.workers.setdefault(key, {"chunks": 0, "frames": 0, "decode_s": 0.0,
                                          "encode_s": 0.0})
        w["chunks"] += 1
        w["frames"] += len(packets)
        w["decode_s"] += chunk.worker.get("decode_s", 0.0)
        w["encode_s"] += chunk.worker.get("encode_s", 0.0)
        return packets

    def _check(self, chunk: EncodedChunk) -> None:
        if chunk.index != self.next_index:
            raise MediaError(f"{chunk.label} arrived when chunk {self.next_index} was due: "
                             "chunks were lost or reordered")
        if self.next_start is not None and chunk.start != self.next_start:
            kind = "gap" if chunk.start > self.next_start else "overlap"
            raise MediaError(f"{chunk.label} starts at pts {chunk.start}, but the previous "
                             f"chunk ended at {self.next_start}: a {kind} between chunks")
        if chunk.extradata != self.caps_in.extradata:
            raise MediaError(f"{chunk.label} was encoded with other parameter sets than the "
                             "first chunk (different encoder settings or version on its "
                             "node); every worker must run the same encoder")
        if chunk.packets and not chunk.packets[0].keyframe:
            raise MediaError(f"{chunk.label} does not start with a keyframe")

    def _fix_dts(self, chunk: EncodedChunk) -> list[Packet]:
        """Keep dts strictly increasing across the seam, never above pts."""
        out = []
        fixed = False
        for p in chunk.packets:
            dts = p.dts if p.dts is not None else p.pts
            if self.last_dts is not None and dts <= self.last_dts:
                dts = self.last_dts + 1
                if p.pts is not None and dts > p.pts:
                    raise MediaError(
                        f"{chunk.label}: decode timestamps cannot increase through the seam "
                        f"(pts {p.pts} after dts {self.last_dts}); the encoder's delay is "
                        "longer than one frame")
                fixed = True
            out.append(p if dts == p.dts else Packet(p.data, p.pts, dts, p.duration,
                                                     p.time_base, p.keyframe, p.meta))
            self.last_dts = dts
        self.seams_fixed += fixed
        return out

    def flush(self) -> list[Packet]:
        if self.lost:
            total = sum(x["frames"] for x in self.lost)
            log.warning("%d frame(s) lost in %d chunk(s): %s", total, len(self.lost),
                        ", ".join(x["chunk"] for x in self.lost))
        return []

    def results(self) -> dict[str, Any]:
        return {"chunks": self.next_index, "frames": self.frames, "decoded": self.decoded,
                "lost": sum(x["frames"] for x in self.lost), "lost_in": self.lost,
                "corrupt_packets": self.corrupt_packets, "seams_fixed": self.seams_fixed,
                "workers": dict(self.workers)}
