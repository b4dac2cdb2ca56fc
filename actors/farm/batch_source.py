"""BatchPacketSource: the chunks of many files, longest first, through one shared pool.

Each file is cut by its own PacketSource; this source only strings them together. A
file that cannot be read is reported (``results()["failed"]``) and skipped: one bad
file fails that file, not the batch. Chunks an earlier run already encoded (``done``)
still flow, marked ``cached`` and without their packets, so that the writer takes them
from disk in their turn and the pool spends nothing on them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from actors.element import Source
from actors.errors import MediaError
from actors.farm.chunk import Chunk
from actors.farm.packet_source import DEFAULT_CHUNK_DURATION, PacketSource
from actors.media.file_source import open_video
from actors.types import EOS, Caps

log = logging.getLogger("parallax.batch_source")


@dataclass(frozen=True)
class BatchPacketSourceSettings:
    paths: tuple[str, ...]
    """The inputs, on the node where the source runs."""
    chunk_duration: float = DEFAULT_CHUNK_DURATION
    done: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """Per input, the chunk indices an earlier run kept on disk."""


class BatchPacketSource(Source):
    """Emits Chunk items of every input in turn, each tagged with its input and stream."""

    def __init__(self, settings: BatchPacketSourceSettings | None = None, **options: Any) -> None:
        super().__init__()
        self.settings = settings or BatchPacketSourceSettings(**options)
        self.order: list[str] = []
        self.failed: dict[str, str] = {}
        self.expected = 0
        self.chunks = 0
        self.cached = 0
        self._chunks: Iterator[Chunk] | None = None

    def configure(self, caps_in: Caps | None) -> Caps:
        durations = {}
        for path in self.settings.paths:
            try:
                container, stream = open_video(path)
            except MediaError as exc:
                self.failed[path] = str(exc)
                continue
            durations[path] = float(container.duration or 0)
            rate = stream.average_rate or stream.guessed_rate or 30
            self.expected += stream.frames or round(durations[path] / 1e6 * float(rate))
            container.close()
        # Longest first: the pool's tail is then the short files, which balance it.
        self.order = sorted(durations, key=lambda p: -durations[p])
        if not self.order:
            raise MediaError("none of the inputs can be read: " + "; ".join(
                self.failed.values()))
        # The first file's caps configure the workers; every chunk carries its own stream.
        first = PacketSource(self.order[0], chunk_duration=self.settings.chunk_duration)
        caps = first.configure(None)
        first.close(True)
        return caps

    def frames_total(self) -> int | None:
        return self.expected or None

    def start(self) -> None:
        self._chunks = self._all()

    def produce(self) -> Any:
        chunk = next(self._chunks, None)
        if chunk is None:
            return EOS
        self.chunks += 1
        self.cached += chunk.cached
        return chunk

    def _all(self) -> Iterator[Chunk]:
        for path in self.order:
            # Not sized by self.consumers: a chunk's index names it in the manifest, so
            # the cut must not change when --resume runs with another --workers.
            src = PacketSource(path, chunk_duration=self.settings.chunk_duration)
            try:
                src.configure(None)
                src.start()
            except MediaError as exc:
                self.failed[path] = str(exc)
                continue
            done = set(self.settings.done.get(path, ()))
            held: Chunk | None = None
            try:
                while (chunk := src.produce()) is not EOS:
                    if held is not None:
                        yield self._mark(held, done)
                    held = chunk
            except MediaError as exc:
                self.failed[path] = str(exc)
                held = None
            finally:
                src.close(True)
            if held is not None:
                held.last = True
                yield self._mark(held, done)

    @staticmethod
    def _mark(chunk: Chunk, done: set[int]) -> Chunk:
        if chunk.index in done:
            return replace(chunk, packets=[], cached=True)
        return chunk

    def results(self) -> dict[str, Any]:
        return {"order": self.order, "failed": self.failed, "chunks": self.chunks,
                "cached": self.cached, "expected": self.expected}
