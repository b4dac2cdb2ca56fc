"""Parallax pipelines: the runtime (pipelines.runtime) and the ready-made jobs built on it."""

from pipelines.runtime import EdgeStats, ElementStats, Pipeline, PipelineStats, Progress, State

__all__ = ["EdgeStats", "ElementStats", "Pipeline", "PipelineStats", "Progress", "State"]
