"""ChunkTranscoder: decode, change rate, scale and encode one whole chunk, in-process.

The farm's worker. Raw frames never leave the process that decoded them: PyAV frames
go from the decoder through swscale into the encoder, with no numpy round trip. Every
chunk gets a fresh encoder with the same settings, so every chunk starts with an IDR
frame, its GOPs are closed, and its parameter sets are those of every other chunk
(the stitcher checks). The worker checks that it encoded exactly the frames of its
range (Av1an calls a miss a FRAME MISMATCH).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import av
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

from actors.element import Transform
from actors.errors import ConfigError, MediaError
from actors.farm.chunk import COMPRESSED_CHUNKS, ENCODED_CHUNKS, Chunk, EncodedChunk
from actors.media.encoders import VideoEncoderBackend, VideoEncoderConfig, create_encoder
from actors.media.encoders.base import MAX_GOP
from actors.media.fidelity import Rotator, rotated_size, wants_depth
from actors.media.video_scaler import ScaleAlgorithm, aspect_size, even
from actors.types import MAX_DIMENSION, MAX_FRAME_RATE, Caps, parse_rate

log = logging.getLogger("parallax.chunk_transcoder")

DEFAULT_THREADS = 1  # per worker: the pool brings the parallelism, one worker per core


@dataclass(frozen=True)
class ChunkTranscoderSettings:
    width: int | None = None
    """Output width; None keeps the input's (or follows the aspect ratio of ``height``)."""
    height: int | None = None
    algorithm: ScaleAlgorithm | str = ScaleAlgorithm.Bilinear
    fps: Fraction | float | str | None = None
    """Output frame rate; None keeps the input's timestamps, frame for frame."""
    encoder: VideoEncoderConfig = field(default_factory=VideoEncoderConfig)
    """Codec, backend, quality and GOP; size, rate and time base come from the input."""
    threads: int = DEFAULT_THREADS
    """Decoder and encoder threads of one worker."""
    tolerate_errors: bool = False
    """Report a chunk that fails in its EncodedChunk (``error``) instead of failing the run:
    a batch fails that file and goes on with the others."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithm", ScaleAlgorithm.parse(self.algorithm))
        if self.fps is not None:
            object.__setattr__(self, "fps", parse_rate(self.fps, "fps", MAX_FRAME_RATE))
        for label, v in (("width", self.width), ("height", self.height)):
            if v is not None and (not isinstance(v, int) or not 2 <= v <= MAX_DIMENSION):
                raise ConfigError(f"{label}={v!r}: must be a whole number of pixels from 2 "
                                  f"to {MAX_DIMENSION}")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ConfigError(f"threads={self.threads!r}: must be 1 or more")


class ChunkTranscoder(Transform):
    """Chunk in, EncodedChunk out: one chunk at a time, all of it in this process."""

    accepts = (COMPRESSED_CHUNKS,)

    def __init__(self, settings: ChunkTranscoderSettings | None = None, **options: Any) -> None:
        super().__init__()
        self.settings = settings or ChunkTranscoderSettings(**options)
        self.config: VideoEncoderConfig | None = None
        self._spare: VideoEncoderBackend | None = None
        # One for every frame: frame.reformat() makes a new swscale context per frame
        # (0.3 ms of a 1080p->720p frame's 15, measured); this one is reused while the
        # sizes and formats stay the same.
        self._reformatter: VideoReformatter | None = None
        self._streams: dict[tuple, tuple[VideoEncoderConfig, Caps]] = {}
        self._decode_s = 0.0
        self._corrupt = 0
        self._decoded = 0

    def configure(self, caps_in: Caps | None) -> Caps:
        self._close_spare()
        self.config = self._encoder_config(caps_in)
        # Opened once here for the parameter sets the caps carry, then used for the first
        # chunk, so that no encoder is opened only to be thrown away.
        self._spare = create_encoder(self.config)
        caps = self._caps_out(self.config, self._spare, caps_in)
        self._streams = {_stream_key(caps_in): (self.config, caps)}
        return caps

    def _encoder_config(self, stream: Caps) -> VideoEncoderConfig:
        s = self.settings
        w, h = aspect_size(*rotated_size(stream.width, stream.height, stream.rotation),
                           s.width, s.height)
        rate = s.fps or stream.rate
        enc = s.encoder
        gop = enc.gop
        if gop is None and enc.keyframe_interval:
            gop = min(MAX_GOP, max(1, round(enc.keyframe_interval * rate)))
        return replace(enc, width=even(w), height=even(h), framerate=rate,
                       time_base=1 / s.fps if s.fps else stream.time_base, gop=gop,
                       threads=s.threads, frame_threads=s.threads > 1,
                       deep=wants_depth(stream.format, enc.codec), colour=stream.colour)

    @staticmethod
    def _caps_out(config: VideoEncoderConfig, encoder: VideoEncoderBackend,
                  stream: Caps) -> Caps:
        return Caps(kind=ENCODED_CHUNKS, codec=config.codec.value, width=config.width,
                    height=config.height, rate=config.framerate, time_base=encoder.time_base,
                    profile=encoder.profile, extradata=encoder.extradata,
                    slot_size=stream.slot_size, format=encoder.pix_fmt, colour=config.colour)

    def _stream(self, chunk: Chunk) -> tuple[Caps, VideoEncoderConfig, Caps]:
        """(input stream, encoder config, output caps) for this chunk's file: a batch
        sends chunks of many files through one pool."""
        stream = chunk.stream or self.caps_in
        key = _stream_key(stream)
        if key not in self._streams:
            config = self._encoder_config(stream)
            probe = create_encoder(config)  # for its parameter sets; chunks open their own
            self._streams[key] = (config, self._caps_out(config, probe, stream))
            probe.close()
        config, caps = self._streams[key]
        return stream, config, caps

    # -- one chunk ------------------------------------------------------------
    def process(self, chunk: Chunk) -> list[EncodedChunk]:
        if self.config is None:
            raise ConfigError(f"{self.name}: not configured; it must be linked in a pipeline")
        if chunk.cached:
            return [EncodedChunk(chunk.index, chunk.label, [], 0, None, chunk.frames, 0, None,
                                 source=chunk.source, last=chunk.last, cached=True)]
        try:
            return [self._transcode(chunk)]
        except Exception as exc:
            if not self.settings.tolerate_errors:
                raise
            log.warning("%s: %s", chunk.label, exc)
            return [EncodedChunk(chunk.index, chunk.label, [], 0, None, chunk.frames, 0, None,
                                 source=chunk.source, last=chunk.last,
                                 error=f"{type(exc).__name__}: {exc}")]

    def _transcode(self, chunk: Chunk) -> EncodedChunk:
        stream, config, caps = self._stream(chunk)
        t0 = time.perf_counter()
        spare = self._spare if config == self.config else None
        encoder = spare or create_encoder(config)
        if spare is not None:
            self._spare = None
        self._decode_s = 0.0
        self._corrupt = 0
        self._decoded = 0
        try:
            frames = self._decode(chunk, stream)
            if self.settings.fps:
                start, end, todo = self._ticks(chunk, frames)
            else:
                start, end, todo = self._same_rate(chunk, frames, stream)
            packets, fed = [], 0
            rotate = Rotator(stream.rotation)
            if self._reformatter is None:
                self._reformatter = VideoReformatter()
            colour_range = config.colour.range if config.colour else None
            for pts, vf, duration in todo:
                # One swscale thread: the pool already runs a worker per core. The range
                # is stated so that a full-range input stays full range, as signalled.
                out = self._reformatter.reformat(
                    rotate(vf), width=config.width, height=config.height,
                    format=encoder.pix_fmt, interpolation=self.settings.algorithm.swscale,
                    src_color_range=colour_range or None,
                    dst_color_range=colour_range or None, threads=1)
                out.pts = pts
                # The input's picture types must not reach the encoder: libx264 makes a
                # keyframe of every frame that was one (an all-intra input stays all-intra).
                out.pict_type = PictureType.NONE
                packets += encoder.encode_av(out, duration)
                fed += 1
            packets += encoder.flush()
        finally:
            encoder.close()
        if len(packets) != fed:
            raise MediaError(f"{chunk.label}: frame mismatch: {fed} frames went into the "
                             f"encoder and {len(packets)} packets came out")
        if packets and not packets[0].keyframe:
            raise MediaError(f"{chunk.label}: the encoder did not start with a keyframe")
        total = time.perf_counter() - t0
        worker = {"node": socket.gethostname(), "pid": os.getpid(),
                  "decode_s": self._decode_s, "encode_s": total - self._decode_s}
        # Input frames, whatever the output rate: lost frames are lost from the input.
        return EncodedChunk(chunk.index, chunk.label, packets, start, end, chunk.frames,
                            self._decoded, encoder.extradata, worker, self._corrupt,
                            caps=caps, source=chunk.source, last=chunk.last)

    def _decode(self, chunk: Chunk, caps: Caps) -> Iterator[av.VideoFrame]:
        """The chunk's own frames, in presentation order, as the decoder returns them.

        Streamed, so that a worker holds a few frames, not a whole chunk of raw video.
        Corrupt packets are counted and skipped: their frames are reported as lost.
        """
        dec = av.CodecContext.create(caps.codec, "r")
        if caps.extradata:
            dec.extradata = caps.extradata
        dec.width, dec.height = caps.width, caps.height
        if caps.format:  # raw video says nothing about its layout in its packets
            dec.pix_fmt = caps.format
        dec.thread_count = self.settings.threads
        dec.thread_type = "FRAME" if self.settings.threads > 1 else "SLICE"
        last: int | None = None
        for p in [*chunk.packets, None]:
            t = time.perf_counter()
            try:
                if p is None:
                    out = dec.decode(None)
                else:
                    pkt = av.Packet(p.data)
                    pkt.pts, pkt.dts, pkt.time_base = p.pts, p.dts, p.time_base
                    # The last frame of a VFR stream lasts its own packet's duration.
                    pkt.duration = p.duration or 0
                    out = dec.decode(pkt)
            except av.FFmpegError:
                self._corrupt += 1
                out = []
            self._decode_s += time.perf_counter() - t
            for vf in out:
                pts = vf.pts if vf.pts is not None else vf.dts
                if not chunk.owns(pts):
                    continue  # the previous chunk's leading pictures, or the next keyframe
                if last is not None and pts <= last:
                    # A damaged reference frame makes H.264 decoders return frames out of
                    # order; such a frame is lost (reported), not a reason to fail.
                    self._corrupt += not self._corrupt
                    log.warning("%s: the decoder returned pts %d after %d; dropped",
                                chunk.label, pts, last)
                    continue
                last = pts
                self._decoded += 1
                yield vf

    def _same_rate(self, chunk: Chunk, frames: Iterator[av.VideoFrame], stream: Caps
                   ) -> tuple[int, int | None, Iterator[tuple[int, av.VideoFrame, int]]]:
        """Frame for frame, timestamps shifted to start at 0. A frame lasts until the next
        one (exact for VFR); the last one until the chunk's end."""
        origin = chunk.origin
        start = 0 if chunk.start is None else chunk.start - origin
        end = None if chunk.end is None else chunk.end - origin

        def todo() -> Iterator[tuple[int, av.VideoFrame, int]]:
            held = None
            for vf in frames:
                if held is not None:
                    yield held.pts - origin, held, vf.pts - held.pts
                held = vf
            if held is not None:
                last = (chunk.end - held.pts) if chunk.end is not None else None
                yield held.pts - origin, held, last or held.duration or _ticks(stream)

        return start, end, todo()

    def _ticks(self, chunk: Chunk, frames: Iterator[av.VideoFrame]
               ) -> tuple[int, int | None, Iterator[tuple[int, av.VideoFrame, int]]]:
        """With a rate change: tick k is due at k / fps and shows the latest frame then.

        A chunk owns the ticks due inside its range, so every tick is emitted once; the
        last chunk's ticks run to the end of its last frame.
        """
        fps, tb, origin = self.settings.fps, chunk.time_base, chunk.origin

        def tick_at(pts: int) -> int:  # the first tick due at or after pts
            t = (pts - origin) * tb * fps
            return int(t) if t == int(t) else int(t) + 1

        first = 0 if chunk.start is None else tick_at(chunk.start)
        last = None if chunk.end is None else tick_at(chunk.end)

        def todo() -> Iterator[tuple[int, av.VideoFrame, int]]:
            k = first
            held = None
            for vf in frames:
                # every tick before this frame shows the frame held so far
                while held is not None and (last is None or k < last) and \
                        origin + k / fps / tb < vf.pts:
                    yield k, held, 1
                    k += 1
                held = vf
            if held is None:
                return
            stop = last if last is not None else tick_at(
                held.pts + (held.duration or _ticks(chunk.stream or self.caps_in)))
            while k < stop:
                yield k, held, 1
                k += 1

        return first, last, todo()

    def _close_spare(self) -> None:
        if self._spare is not None:
            self._spare.close()
            self._spare = None

    def close(self, ok: bool) -> None:
        self._close_spare()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_spare"] = None  # an open encoder stays in the process that opened it
        state["_reformatter"] = None
        return state



def _stream_key(stream: Caps) -> tuple:
    return (stream.codec, stream.width, stream.height, stream.rate, stream.time_base,
            stream.extradata, stream.format, stream.colour, stream.rotation)


def _ticks(stream: Caps) -> int:
    """One frame's duration in the stream's time base, from its nominal rate."""
    return max(1, round(1 / (stream.rate * stream.time_base)))
