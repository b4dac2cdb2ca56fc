"""Restart: what the runtime does when an element's process dies.

File pipelines keep "the first failure stops everything": the input can be read again,
so a silent retry would only hide a fault. A live stream cannot be had again, so its
non-source elements are, by default, replaced when their process dies, and the stream
resumes with a discontinuity (GStreamer and DeepStream leave that to the application).
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.errors import ConfigError

DEFAULT_MAX_RESTARTS = 3
DEFAULT_RESTART_WINDOW_S = 60.0  # seconds over which restarts are counted


@dataclass(frozen=True)
class Restart:
    """Replace an element whose process died, at most ``max_restarts`` times in any
    ``within_s`` seconds; one more death in that window fails the pipeline."""

    max_restarts: int = DEFAULT_MAX_RESTARTS
    within_s: float = DEFAULT_RESTART_WINDOW_S

    def __post_init__(self) -> None:
        if isinstance(self.max_restarts, bool) or not isinstance(self.max_restarts, int) \
                or self.max_restarts < 1:
            raise ConfigError(f"Restart(max_restarts={self.max_restarts!r}): give a number "
                              ">= 1 (or restart=False for no restarts)")
        if not self.within_s > 0:
            raise ConfigError(f"Restart(within_s={self.within_s!r}): must be more than 0 s")

    def allows(self, deaths: list[float], now: float) -> bool:
        """Whether one more restart fits, given the times of the deaths so far."""
        recent = [t for t in deaths if now - t <= self.within_s]
        return len(recent) <= self.max_restarts

    def describe(self) -> str:
        return f"Restart(max_restarts={self.max_restarts}, within_s={self.within_s:g})"
