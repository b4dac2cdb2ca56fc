"""Parallax elements: plain Python classes, hosted by the runtime in Ray actors."""

from actors.element import Element, Placement, Sink, Source, Transform
from actors.errors import (
    BudgetError,
    CapsError,
    ConfigError,
    MediaError,
    ParallaxError,
    PipelineError,
    PlacementError,
)
from actors.flow import Block, Drop, FlowPolicy, FlowSignal, RingBuffer
from actors.types import EOS, Caps, Frame, Packet

__all__ = [
    "EOS", "Block", "BudgetError", "Caps", "CapsError", "ConfigError", "Drop", "Element",
    "FlowPolicy", "FlowSignal", "Frame", "MediaError", "Packet", "ParallaxError",
    "PipelineError", "Placement", "PlacementError", "RingBuffer", "Sink", "Source", "Transform",
]
