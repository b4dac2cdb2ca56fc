"""Zenoh elements: publish fMP4 segments under a key prefix, and receive them (see link.py)."""

from actors.zenoh.link import ZenohOptions
from actors.zenoh.zenoh_sink import ZenohSink, ZenohSinkSettings
from actors.zenoh.zenoh_source import ZenohSource, ZenohSourceSettings

__all__ = ["ZenohOptions", "ZenohSink", "ZenohSinkSettings", "ZenohSource", "ZenohSourceSettings"]
