"""Parallax runtime: pipelines of elements as Ray actors with bounded credit windows."""

from pipelines.pipeline import Pipeline, State
from pipelines.stats import EdgeStats, ElementStats, PipelineStats, Progress

__all__ = ["EdgeStats", "ElementStats", "Pipeline", "PipelineStats", "Progress", "State"]
