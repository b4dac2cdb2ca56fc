"""Shared by the MP4 muxers: output streams for packets encoded elsewhere, and the
interleaving of several inputs by decode time.

PyAV's ``add_stream`` opens an encoder for the stream when muxing starts, and
the muxer then writes *that* encoder's headers (x264 at its default preset),
not the ones our packets need. A stream made from a template is never opened;
its codec parameters, including the extradata from our caps, are copied to
the muxer as they are.
"""

from __future__ import annotations

import heapq
import io
import itertools
import os
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import av

from actors.errors import ConfigError, MediaError
from actors.media.encoders import VideoCodec
from actors.types import ENCODED_AUDIO, ENCODED_VIDEO, MAIN_PAD, Caps, Packet


def add_encoded_stream(container: Any, caps: Caps) -> Any:
    scratch = av.open(io.BytesIO(), "w", format=container.format.name.split(",")[0])
    template = scratch.add_stream(VideoCodec.parse(caps.codec).mp4_tag,
                                  rate=caps.rate or Fraction(30))
    stream = container.add_stream_from_template(template)
    scratch.close()
    ctx = stream.codec_context
    ctx.width, ctx.height, ctx.pix_fmt = caps.width, caps.height, caps.format or "yuv420p"
    if caps.colour is not None:
        caps.colour.apply(ctx)  # the container's colr box says what the VUI says
    time_base = caps.time_base or (1 / caps.rate if caps.rate else Fraction(1, 90000))
    ctx.time_base = stream.time_base = time_base
    if caps.rate:
        ctx.framerate = caps.rate
    if caps.extradata:
        ctx.extradata = caps.extradata
    if caps.codec in ("h265", "hevc"):
        stream.codec_tag = "hvc1"  # Apple players and browsers refuse hev1 in MP4
    return stream


def check_writable_dir(directory: str, what: str = "output directory") -> str:
    """``directory``, which must exist and take new files; ``what`` names it in the error."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ConfigError(f"{what} {directory!r} is a file, not a directory; choose a "
                          "directory")
    if not os.path.isdir(directory):
        raise ConfigError(f"{what} {directory!r} does not exist; create it first")
    # Creating a file needs search (x) as well as write permission on the directory; a
    # read-only mount fails this even for root.
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {directory!r} is not writable; fix its permissions or "
                          "write somewhere else")
    return directory


def nothing_to_write(location: str) -> MediaError:
    """The error of an output that got no video at all, so none is left behind: an empty
    MP4 or playlist would look like a result."""
    return MediaError(f"no video frame reached {location!r}: the input had none, or every "
                      "one was lost (see the warnings); nothing was written")


def check_output_path(output: str, inputs: Iterable[str] = ()) -> None:
    """``output`` can be written as a file: it is not a directory, nor one of ``inputs``."""
    if os.path.isdir(output):
        raise ConfigError(f"output {output!r} is a directory; name a file in it, e.g. "
                          f"{os.path.join(output, 'out.mp4')!r}")
    for path in inputs:
        try:
            same = os.path.samefile(path, output)
        except OSError:  # either does not exist (yet)
            same = False
        if same:
            raise ConfigError(f"output {output!r} is the input {path!r}: writing it would "
                              "destroy what is being read; choose another output")


def check_output_dir(location: str) -> str:
    """The directory the output file ``location`` goes to, checked as above, and that a
    file of that name can be created there; returns the directory.

    Creating one is the only test that sees what permissions do not: a name too long, a
    read-only or pseudo file system (/proc, /sys), no space left. Checked before the first
    frame, so that a bad location fails in a second, not after the whole transcode.
    """
    parent = check_writable_dir(os.path.dirname(os.path.abspath(location)))
    check_output_path(location)
    # The probe is the writer's own partial file, so that a name is refused only when the
    # writer could not make it either (a random suffix would cost 9 characters of the limit).
    probe = partial_path(location)
    try:
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:  # a crashed run's leftover: the writer replaces it
            os.close(os.open(probe, os.O_WRONLY | os.O_APPEND))
        else:
            os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"cannot write {location!r}: {exc.strerror}; choose another "
                          "name or place") from None
    return parent


def partial_path(location: str) -> str:
    """Where a file is written until it is complete: hidden, beside the target."""
    head, tail = os.path.split(location)
    return os.path.join(head, f".{tail}.part")


def add_audio_stream(container: Any, caps: Caps) -> Any:
    """An output audio stream for packets as ``caps`` describes them (copied or encoded
    elsewhere), made from a template so that no encoder is opened for it."""
    scratch = av.open(io.BytesIO(), "w", format=container.format.name.split(",")[0])
    try:
        template = scratch.add_stream(caps.codec, rate=caps.sample_rate)
    except (av.FFmpegError, ValueError) as exc:
        scratch.close()
        raise ConfigError(f"audio codec {caps.codec!r}: FFmpeg cannot describe it for "
                          f"this container ({exc})") from None
    stream = container.add_stream_from_template(template)
    scratch.close()
    ctx = stream.codec_context
    ctx.sample_rate = caps.sample_rate
    if caps.layout:
        ctx.layout = caps.layout
    if caps.extradata:
        ctx.extradata = caps.extradata
    if caps.bit_rate:
        ctx.bit_rate = caps.bit_rate
    stream.time_base = caps.time_base or Fraction(1, caps.sample_rate)
    if caps.language:
        stream.metadata["language"] = caps.language
    return stream


def split_inputs(name: str, inputs: dict[str, Caps]) -> tuple[Caps, dict[str, Caps]]:
    """A muxer's inputs as (video on the main pad, audio by pad in pad order: the track
    order players and ffmpeg show); ConfigError for anything else."""
    video = inputs.get(MAIN_PAD)
    if video is None or video.kind != ENCODED_VIDEO:
        raise ConfigError(f"'{name}': link the encoded video to its main pad; it has "
                          f"{', '.join(sorted(inputs))}")
    audio = {p: inputs[p] for p in sorted(inputs) if p != MAIN_PAD}
    for pad, caps in audio.items():
        if caps.kind != ENCODED_AUDIO:
            raise ConfigError(f"'{name}': pad {pad!r} takes audio, not {caps.describe()}")
    return video, audio


def decode_time(packet: Packet) -> Fraction:
    t = packet.dts if packet.dts is not None else packet.pts
    return (t or 0) * packet.time_base


class Interleaver:
    """Orders packets of several inputs by decode time, as a muxer wants them.

    A packet is released once every input that has not ended has one queued, so the
    earliest is known; an input that ends early is no longer waited for (it must not
    stall the others). Memory is what one input runs ahead of the slowest, which the
    pipeline's windows bound.
    """

    def __init__(self, inputs: list[str]) -> None:
        self.open = set(inputs)
        self.queued: dict[str, int] = dict.fromkeys(inputs, 0)
        self.heap: list[tuple[Fraction, int, str, Packet]] = []
        self.order = itertools.count()

    def push(self, pad: str, packet: Packet) -> list[tuple[str, Packet]]:
        heapq.heappush(self.heap, (decode_time(packet), next(self.order), pad, packet))
        self.queued[pad] += 1
        return self._ready()

    def end(self, pad: str) -> list[tuple[str, Packet]]:
        self.open.discard(pad)
        return self._ready()

    def drain(self) -> list[tuple[str, Packet]]:
        self.open.clear()
        return self._ready()

    def _ready(self) -> list[tuple[str, Packet]]:
        out = []
        while self.heap and all(self.queued[p] for p in self.open):
            _, _, pad, packet = heapq.heappop(self.heap)
            self.queued[pad] -= 1
            out.append((pad, packet))
        return out

    def __len__(self) -> int:
        return len(self.heap)
