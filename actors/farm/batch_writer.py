"""BatchWriter: stitch and mux each file of a batch, keep every chunk, and record progress.

Encoded chunks arrive in dispatch order, so one file's chunks come in order and the
files one after another. For each file the writer runs its own ChunkStitcher and Mp4Mux
(written under a temporary name and renamed when complete, as a single transcode is),
and reads the file's audio itself (it runs where the inputs are), feeding it to the
muxer beside the stitched video.
Every new chunk is kept on disk and recorded in the manifest before it is muxed; chunks
an earlier run kept come back from disk. A file that fails (a worker error, a seam that
does not fit) is removed and marked failed with its reason; the batch goes on.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from actors.element import Sink
from actors.errors import ParallaxError
from actors.farm.audio_feed import AudioFeed, AudioSpec
from actors.farm.chunk import ENCODED_CHUNKS, EncodedChunk
from actors.farm.chunk_stitcher import ChunkStitcher
from actors.farm.chunk_store import ChunkStore, lock_dir
from actors.media.file_source import first_pts
from actors.media.mp4_mux import Mp4Mux
from actors.media.muxing import check_writable_dir, decode_time, partial_path
from actors.types import MAIN_PAD, Caps

log = logging.getLogger("parallax.batch_writer")


@dataclass(frozen=True)
class BatchWriterSettings:
    output_dir: str
    outputs: dict[str, str] = field(default_factory=dict)
    """Input path -> output path (inside output_dir)."""
    settings_id: str = ""
    """What the encoding settings hash to: kept chunks are reused only under the same."""
    resume: bool = False
    audio: dict[str, tuple[AudioSpec, ...]] = field(default_factory=dict)
    """Input path -> its audio streams to keep, and how."""


class _File:
    def __init__(self, path: str, output: str) -> None:
        self.path, self.output = path, output
        self.stitcher = ChunkStitcher()
        self.mux: Mp4Mux | None = None
        self.audio: AudioFeed | None = None
        self.failed: str | None = None
        self.chunks = 0


class BatchWriter(Sink):
    """EncodedChunk items of many files in, one MP4 per file out."""

    accepts = (ENCODED_CHUNKS,)

    def __init__(self, settings: BatchWriterSettings | None = None, **options: Any) -> None:
        super().__init__()
        self.settings = settings or BatchWriterSettings(**options)
        self.store: ChunkStore | None = None
        self.current: _File | None = None
        self._lock: int | None = None
        self.status: dict[str, dict[str, Any]] = {
            p: {"output": o, "state": "queued", "chunks": 0, "frames": 0, "reason": None}
            for p, o in self.settings.outputs.items()}

    def configure(self, caps_in: Caps | None) -> Caps:
        check_writable_dir(self.settings.output_dir)
        return caps_in

    def start(self) -> None:
        self._lock = lock_dir(self.settings.output_dir)
        self.store = ChunkStore(self.settings.output_dir, self.settings.settings_id)

    def process(self, chunk: EncodedChunk) -> tuple:
        if self.current is None or self.current.path != chunk.source:
            self._end_current("its chunks stopped before the last one (see the source's "
                              "report)")
            self._begin(chunk.source)
        f = self.current
        if f.failed is None:
            try:
                self._add(f, chunk)
            except (ParallaxError, OSError, ValueError) as exc:
                self._fail(f, f"{chunk.label}: {exc}")
        if chunk.last:
            self._end_current(None)
        return ()

    def _begin(self, path: str) -> None:
        output = self.settings.outputs[path]
        self.current = _File(path, output)
        self.store.begin(path, output, keep=self.settings.resume)
        self.status[path].update(state="running")

    def _add(self, f: _File, chunk: EncodedChunk) -> None:
        if chunk.error:
            raise ValueError(chunk.error)
        if chunk.cached:
            chunk = self.store.get(f.path, chunk.index)
        else:
            self.store.put(f.path, chunk)
        if f.mux is None:
            self._open_output(f, chunk.caps)
        for p in f.stitcher.handle(chunk):
            f.mux.handle(p)
            self._feed_audio(f, decode_time(p))
        f.chunks += 1
        self.status[f.path].update(chunks=f.chunks, frames=f.stitcher.frames)

    def _open_output(self, f: _File, caps: Caps) -> None:
        f.stitcher.negotiate([caps], ["pool"])
        specs = self.settings.audio.get(f.path, ())
        if specs:  # moved as the video is: its output starts at 0
            origin = first_pts(f.path) or 0
            f.audio = AudioFeed(f.path, specs, origin * caps.time_base)
        audio = f.audio.caps if f.audio else {}
        f.mux = Mp4Mux(f.output)
        f.mux.negotiate([f.stitcher.caps_out, *audio.values()],
                        [f.stitcher.name, *(["audio"] * len(audio))], [MAIN_PAD, *audio])
        f.mux.start()

    def _feed_audio(self, f: _File, until: Fraction | None) -> None:
        if f.audio is not None:
            for pad, packet in f.audio.until(until):
                f.mux.handle(packet, pad=pad)

    def _end_current(self, unfinished: str | None) -> None:
        f, self.current = self.current, None
        if f is None:
            return
        if unfinished and f.failed is None:
            self._fail(f, unfinished)
        if f.failed is None and f.mux is None:
            self._fail(f, "no chunk of it could be encoded")
        if f.failed is None:
            try:
                f.stitcher.handle_eos()
                self._feed_audio(f, None)
                f.mux.handle_eos()
            except (ParallaxError, OSError, ValueError) as exc:
                self._fail(f, f"finishing the output: {exc}")
        if f.audio is not None:
            f.audio.close()
        if f.failed is not None:
            self.store.finish(f.path, "failed", f.failed)
            return
        st = f.stitcher.results()
        self.status[f.path].update(state="done", lost=st["lost"], lost_in=st["lost_in"])
        self.store.finish(f.path, "done")

    def _fail(self, f: _File, reason: str) -> None:
        f.failed = reason
        if f.audio is not None:
            f.audio.close()
        if f.mux is not None:
            f.mux.close(False)  # removes the partial output, with a warning
        self.status[f.path].update(state="failed", reason=reason)
        log.warning("%s failed: %s", f.path, reason)

    def flush(self) -> tuple:
        self._end_current("the batch ended before its last chunk")
        return ()

    def close(self, ok: bool) -> None:
        if self.current is not None and self.current.mux is not None:
            self.current.mux.close(False)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def salvage(self) -> str | None:
        removed = []
        for output in self.settings.outputs.values():
            tmp = partial_path(output)
            if os.path.exists(tmp):
                os.remove(tmp)
                removed.append(tmp)
        if not removed:
            return None
        return (f"removed the incomplete output(s) {', '.join(removed)}: the batch writer "
                "stopped before finishing them; the chunks encoded so far are kept, and "
                "--resume goes on from them")

    def results(self) -> dict[str, Any]:
        encoded = {}
        if self.store is not None:
            # This run's files only: a file an earlier run finished keeps its old count.
            mine = {os.path.abspath(p) for p in self.settings.outputs}  # as the store keys
            encoded = {p: e.get("encoded", 0) for p, e in self.store.files.items()
                       if p in mine}
        return {"files": self.status, "encoded": encoded}
