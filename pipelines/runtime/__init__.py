"""The engine: hosts elements in Ray actors, links them with credit windows, watches and measures.

This package is the only place in Parallax that imports ray.
"""

from pipelines.runtime.connection import ensure_ray, shutdown_ray
from pipelines.runtime.pipeline import Pipeline, State
from pipelines.runtime.stats import EdgeStats, ElementStats, PipelineStats, PoolStats, Progress

__all__ = [
    "EdgeStats", "ElementStats", "Pipeline", "PipelineStats", "PoolStats", "Progress", "State",
    "ensure_ray", "shutdown_ray",
]
