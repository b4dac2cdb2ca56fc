"""Warnings of a host process, carried to the driver with its stats instead of its stderr.

An element's warning (an output removed as incomplete, frames lost in a chunk, a publisher
that went away) is for the user at the driver. Written to the actor's stderr it reached
them only through Ray's log forwarding: a log monitor that tails every worker's log file,
started seconds after ray.init() on the embedded Ray, whose lines printed at the end of a
run needed Ray's half-second sleep at exit to get through (and the JSON output never had
them). Here the host keeps them and hands them over with each stats poll and each pool
item's status; the driver logs them under the same logger names, lists them in
``PipelineStats.warnings``, and exits without waiting on the forwarding. Tracebacks still
go to stderr, where Ray's log files keep them.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

ROOT = "parallax"
LIMIT = 1000
"""Warnings kept between two polls; beyond that the oldest go (and are counted)."""


class WarningTap(logging.Handler):
    """Keeps WARNING and above of the ``parallax`` loggers until the driver takes them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._lock_records = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the warning
            message = f"{record.msg!r} % {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            message = f"{message}: {type(exc).__name__}: {exc}"
        with self._lock_records:
            if len(self._records) >= LIMIT:
                del self._records[0]
                self.dropped += 1
            self._records.append({"logger": record.name, "level": record.levelno,
                                  "message": message, "time": record.created})

    def drain(self) -> list[dict[str, Any]]:
        with self._lock_records:
            records, self._records = self._records, []
            dropped, self.dropped = self.dropped, 0
        if dropped:
            records.insert(0, {"logger": f"{ROOT}.host", "level": logging.WARNING,
                               "message": f"{dropped} earlier warning(s) of this process "
                                          "were not kept", "time": records[0]["time"]})
        return records


_tap: WarningTap | None = None


def install() -> WarningTap:
    """In a host's process (once): Parallax warnings go to the tap, not to stderr."""
    global _tap
    if _tap is None:
        _tap = WarningTap()
        logger = logging.getLogger(ROOT)
        logger.addHandler(_tap)
        tracebacks = logging.StreamHandler(sys.stderr)
        tracebacks.addFilter(lambda r: r.exc_info is not None)
        tracebacks.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(tracebacks)
        logger.propagate = False
    return _tap


def drain() -> list[dict[str, Any]]:
    """The warnings logged since the last call (none outside a host's process)."""
    return _tap.drain() if _tap is not None else []


def relog(records: list[dict[str, Any]]) -> list[str]:
    """At the driver: log a host's warnings as if they were logged here; returns them as
    'logger: message' lines."""
    lines = []
    for r in records:
        logging.getLogger(r["logger"]).log(r["level"], "%s", r["message"])
        lines.append(f"{r['logger']}: {r['message']}")
    return lines
