"""Shared by the MP4 muxers: an output stream for packets encoded elsewhere.

PyAV's ``add_stream`` opens an encoder for the stream when muxing starts, and
the muxer then writes *that* encoder's headers (x264 at its default preset),
not the ones our packets need. A stream made from a template is never opened;
its codec parameters, including the extradata from our caps, are copied to
the muxer as they are.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction
from typing import Any

import av

from actors.errors import ConfigError
from actors.media.encoders import VideoCodec
from actors.types import Caps


def add_encoded_stream(container: Any, caps: Caps) -> Any:
    scratch = av.open(io.BytesIO(), "w", format=container.format.name.split(",")[0])
    template = scratch.add_stream(VideoCodec.parse(caps.codec).mp4_tag,
                                  rate=caps.rate or Fraction(30))
    stream = container.add_stream_from_template(template)
    scratch.close()
    ctx = stream.codec_context
    ctx.width, ctx.height, ctx.pix_fmt = caps.width, caps.height, "yuv420p"
    time_base = caps.time_base or (1 / caps.rate if caps.rate else Fraction(1, 90000))
    ctx.time_base = stream.time_base = time_base
    if caps.rate:
        ctx.framerate = caps.rate
    if caps.extradata:
        ctx.extradata = caps.extradata
    return stream


def check_output_dir(location: str) -> str:
    """The directory an output goes to, which must exist and be writable; returns it."""
    parent = os.path.dirname(os.path.abspath(location))
    if not os.path.isdir(parent):
        raise ConfigError(f"output directory {parent!r} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"output directory {parent!r} is not writable")
    return parent
