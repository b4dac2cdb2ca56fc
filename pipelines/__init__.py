"""Parallax pipelines: the runtime (pipelines.runtime) and the ready-made jobs built on it.

The runtime's names load on first use (PEP 562), so that the ``parallax`` command's entry
point (pipelines/entry.py) starts without importing Ray and can answer a Ctrl-C during
the imports like any other.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EdgeStats", "ElementStats", "Pipeline", "PipelineStats", "Progress", "State"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pipelines import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
