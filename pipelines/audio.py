"""What happens to the streams of an input besides its video: the audio plan.

Decided on the driver before the pipeline starts, from the input file, as ffmpeg
decides its stream mapping: every audio stream the output can carry is kept (copied
when the container takes its codec, else encoded to AAC), and every stream that is not
kept is named in a note (``dropping subtitle stream 2 (subrip, fra)``).

In the farm, audio is never cut into chunks: the source sends the whole file's audio
beside the chunks, and it is muxed with the stitched video (an AAC encoder started per
chunk would put its priming delay, a click, at every seam).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import av

from actors.element import Placement
from actors.errors import ConfigError
from actors.media.audio_transcoder import ENCODERS, AudioTranscoder, default_bitrate
from actors.media.streams import MP4_AUDIO_CODECS, StreamInfo, audio_pad, describe_streams
from actors.types import MAIN_PAD
from pipelines.runtime.pipeline import Pipeline

AUDIO_MODES = ("auto", "copy", "aac", "opus", "none")
ALL = "all"


@dataclass(frozen=True)
class AudioOptions:
    mode: str = "auto"
    """auto: copy what the output can hold, else AAC; copy; aac; opus; none."""
    bitrate: int | None = None
    """Bits per second of each encoded stream; None: 128 kb/s per stereo pair."""
    stream: int | str = ALL
    """Which audio streams: "all", or N for the input's Nth audio stream (ffmpeg's 0:a:N)."""
    strict: bool = False
    """A stream that cannot be kept is an error instead of a note."""

    def __post_init__(self) -> None:
        if self.mode not in AUDIO_MODES:
            raise ConfigError(f"--audio {self.mode!r}: use one of {', '.join(AUDIO_MODES)}")
        if self.stream != ALL and (isinstance(self.stream, bool)
                                   or not isinstance(self.stream, int) or self.stream < 0):
            raise ConfigError(f"--audio-stream {self.stream!r}: give N >= 0 (the Nth audio "
                              "stream of the input) or all")
        if self.mode in ENCODERS:  # checks the bitrate with the encoder's own rules
            AudioTranscoder(self.mode, bitrate=self.bitrate)
        elif self.bitrate is not None:
            AudioTranscoder("aac", bitrate=self.bitrate)


@dataclass(frozen=True)
class AudioTrack:
    stream: StreamInfo
    pad: str
    action: str
    """copy, aac or opus."""
    bitrate: int | None = None

    def describe(self) -> str:
        what = self.stream.describe()
        if self.action == "copy":
            return f"{what}: copied"
        rate = default_bitrate(self.stream.channels or 2) if self.bitrate is None \
            else self.bitrate
        return f"{what}: encoded to {self.action} at {rate // 1000} kb/s"


@dataclass
class AudioPlan:
    tracks: list[AudioTrack] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def indexes(self) -> tuple[int, ...]:
        return tuple(t.stream.index for t in self.tracks)


def plan_audio(path: str, output_kind: str, opts: AudioOptions) -> AudioPlan:
    """What to do with each stream of ``path`` (a readable local file) for this output
    (MP4, fragmented MP4, HLS and Zenoh all hold the same audio codecs)."""
    with av.open(path) as container:
        streams = describe_streams(container)
    plan = AudioPlan()
    first_video = next((s.index for s in streams if s.type == "video"), None)
    audio = [s for s in streams if s.type == "audio"]
    chosen = _select(audio, opts)
    for s in streams:
        if s.index == first_video or s in chosen:
            continue
        if s.type == "audio":  # the user's choice: a note, never an error
            why = "--no-audio" if opts.mode == "none" else "not selected by --audio-stream"
            plan.notes.append(f"dropping {s.describe()}: {why}")
            continue
        why = "only the first video stream is transcoded" if s.type == "video" else \
            "Parallax outputs do not carry this kind of stream yet"
        _drop(plan, opts, f"dropping {s.describe()}: {why}")
    if not chosen:
        return plan
    refusal = _output_refusal(output_kind)
    if refusal:
        for s in chosen:
            _drop(plan, opts, f"dropping {s.describe()}: {refusal}")
        return plan
    for s in chosen:
        action = _action(s, opts)
        if action != "copy" and not _decodable(s.codec):
            _drop(plan, opts, f"dropping {s.describe()}: FFmpeg has no decoder for it")
            continue
        track = AudioTrack(s, audio_pad(len(plan.tracks)), action,
                           None if action == "copy" else opts.bitrate)
        plan.tracks.append(track)
        plan.notes.append(track.describe())
    return plan


def _select(audio: list[StreamInfo], opts: AudioOptions) -> list[StreamInfo]:
    if opts.mode == "none":
        return []
    if opts.stream == ALL:
        return audio
    if opts.stream >= len(audio):
        raise ConfigError(f"--audio-stream {opts.stream}: the input has {len(audio)} audio "
                          f"stream(s){f' (0-{len(audio) - 1})' if audio else ''}")
    return [audio[opts.stream]]


def _output_refusal(kind: str) -> str | None:
    if kind == "null":
        return "the output is null"
    return None


def _action(s: StreamInfo, opts: AudioOptions) -> str:
    if opts.mode in ENCODERS:
        return opts.mode
    if s.codec in MP4_AUDIO_CODECS:
        return "copy"
    if opts.mode == "copy":
        raise ConfigError(f"--audio copy: {s.describe()} cannot be copied into MP4 (it holds "
                          f"{', '.join(sorted(MP4_AUDIO_CODECS))}); use --audio aac")
    return "aac"


def _decodable(codec: str) -> bool:
    try:
        av.codec.Codec(codec, "r")
    except (av.FFmpegError, ValueError):
        return False
    return True


def _drop(plan: AudioPlan, opts: AudioOptions, note: str) -> None:
    if opts.strict:
        raise ConfigError(f"{note} (--strict)")
    plan.notes.append(note)


def link_audio(pipeline: Pipeline, plan: AudioPlan, src: str, mux: str,
               placement: Placement | None = None) -> None:
    """Link the source's audio pads to the muxer, through an encoder where the plan says."""
    for k, track in enumerate(plan.tracks):
        if track.action == "copy":
            pipeline.link(src, mux, pad=track.pad)
            continue
        name = f"audio{k}"
        pipeline.add(AudioTranscoder(track.action, bitrate=track.bitrate), name=name,
                     placement=placement)
        pipeline.link(src, name, pad=track.pad, into=MAIN_PAD)
        pipeline.link(name, mux, into=track.pad)
