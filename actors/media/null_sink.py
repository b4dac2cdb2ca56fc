"""NullSink: counts and discards what reaches it (GStreamer's fakesink, FFmpeg's -f null)."""

from __future__ import annotations

from typing import Any

from actors.element import Sink
from actors.types import item_nbytes


class NullSink(Sink):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.nbytes = 0

    def process(self, item: Any) -> tuple:
        self.count += 1
        self.nbytes += item_nbytes(item)
        return ()

    def results(self) -> dict[str, Any]:
        return {"count": self.count, "bytes": self.nbytes}
