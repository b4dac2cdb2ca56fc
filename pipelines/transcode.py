"""The ready-made transcode pipeline: source -> [rate] -> scale -> encode -> mux."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import av

from actors.element import Element, Placement, Source
from actors.errors import ConfigError
from actors.media.encoders import EncoderBackend, VideoCodec, VideoEncoderConfig
from actors.media.encoders.factory import precheck, try_encode
from actors.media.encoders.pyav_backend import X264_PRESETS
from actors.media.fidelity import bit_depth, depth_note, display_rotation
from actors.media.file_source import FileSource, open_video
from actors.media.test_pattern import TestPatternSource
from actors.media.video_encoder import VideoEncoder
from actors.media.video_rate import VideoRate
from actors.media.video_scaler import VideoScaler
from actors.pacing import DEFAULT_ADAPT, check_adapt
from actors.restart import DEFAULT_MAX_RESTARTS
from actors.types import MAX_DIMENSION, MAX_FRAME_RATE
from pipelines.audio import AudioOptions, AudioPlan, link_audio, plan_audio
from pipelines.farm import AT_DRIVER, FarmOptions, build_farm, farm_refusal
from pipelines.outputs import (
    LOW_LATENCY_WINDOW,
    OutputOptions,
    add_job,
    check_adapt_output,
    check_latency,
    fragment_duration,
    output_kind,
)
from pipelines.runtime.pipeline import Pipeline
from pipelines.runtime.remote import call_on, node_for

TESTSRC = "testsrc"
TESTSRC_DEFAULT_DURATION = 10.0  # seconds, so that a bare `testsrc` ends by itself
# Without a size, `testsrc` shows the pipeline off: moving content at 1080p, scaled to 720p.
# With a size, the pattern defaults to TestPatternSource's (static SMPTE bars).
TESTSRC_DEFAULTS = {"pattern": "ball", "width": 1920, "height": 1080}
TESTSRC_DEFAULT_OUTPUT_HEIGHT = 720  # pixels, for that default size without --width/--height
TESTSRC_KEYS = {"pattern", "size", "width", "height", "rate", "fps", "duration", "frames",
                "format", "live", "timecode"}


def parse_bitrate(text: str | int | None, flag: str = "--bitrate") -> int | None:
    """'4M' -> 4000000, '800k' -> 800000, '2500000' -> 2500000."""
    if text is None or isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", text)
    if not m:
        raise ConfigError(f"{flag} {text!r}: give bits per second, e.g. 4M, 800k or 2500000")
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def parse_testsrc(spec: str) -> TestPatternSource:
    """``testsrc[:key=value,...]`` -> a TestPatternSource (10 s unless told otherwise)."""
    _, _, rest = spec.partition(":")
    opts: dict[str, Any] = {}
    for part in filter(None, rest.split(",")):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in TESTSRC_KEYS:
            raise ConfigError(f"testsrc option {part!r}: use key=value with keys "
                              + ", ".join(sorted(TESTSRC_KEYS)))
        opts[key] = value.strip()
    kw: dict[str, Any] = {}
    try:
        if "size" in opts:
            w, _, h = opts.pop("size").lower().partition("x")
            kw["width"], kw["height"] = int(w), int(h)
        for key in ("width", "height", "frames"):
            if key in opts:
                kw["num_frames" if key == "frames" else key] = int(opts.pop(key))
        for key in ("rate", "fps"):
            if key in opts:
                kw["rate"] = Fraction(opts.pop(key))
        if "duration" in opts:
            kw["duration"] = float(opts.pop("duration"))
    except (ValueError, ZeroDivisionError) as exc:
        raise ConfigError(f"testsrc options {rest!r}: {exc}") from None
    for key in ("live", "timecode"):
        if key in opts:
            kw[key] = opts.pop(key).lower() in ("1", "true", "yes", "on")
    kw.update(opts)  # pattern, format
    if kw.get("num_frames", 1) < 1:  # named as the user wrote it, not as the field is
        raise ConfigError(f"testsrc frames={kw['num_frames']}: must be 1 or more")
    if "num_frames" not in kw and "duration" not in kw:
        kw["duration"] = TESTSRC_DEFAULT_DURATION
    if "width" not in kw and "height" not in kw:
        for key, value in TESTSRC_DEFAULTS.items():
            kw.setdefault(key, value)
    return TestPatternSource(**kw)


def is_testsrc(spec: str) -> bool:
    return spec == TESTSRC or spec.startswith(TESTSRC + ":")


@dataclass(frozen=True)
class TranscodeOptions:
    input: str
    output: str
    width: int | None = None
    height: int | None = None
    scale_algorithm: str = "bilinear"
    codec: str = "h264"
    encoder: str = "auto"
    preset: str | None = None
    bitrate: int | None = None
    crf: int | None = None
    gop: int | None = None
    fps: float | None = None
    fusion: bool = True
    """Run scale, encode and mux in one host; the source keeps its own, so decoding
    overlaps the rest. Measured 1.4-1.8x faster than one host per element on 2 cores
    (bench/README.md): a hop costs more CPU than it saves there."""
    out: OutputOptions = field(default_factory=OutputOptions)
    """Fragmenting, HLS and Zenoh settings of the output."""
    farm: FarmOptions | None = field(default_factory=FarmOptions)
    """Chunked transcoding on a pool of workers (file inputs); None: the linear pipeline."""
    audio: AudioOptions = field(default_factory=AudioOptions)
    """What happens to the input's audio (pipelines/audio.py)."""
    latency: str = "normal"
    """"low": no B-frames or lookahead; a live source keeps at most two frames in flight."""
    source_node: tuple[tuple[str, str], ...] = ()
    """Node labels (hard) of the node that reads the input; (): the driver's node."""
    output_node: tuple[tuple[str, str], ...] = ()
    """Node labels (hard) of the node that writes the output; (): the driver's node."""
    max_restarts: int = DEFAULT_MAX_RESTARTS
    """Live sources: replace an element whose process died, this often a minute; 0: no."""
    adapt: str = DEFAULT_ADAPT
    """Live sources under overload: framerate (drop evenly), resolution or off."""

    def __post_init__(self) -> None:
        for flag, v in (("--width", self.width), ("--height", self.height)):
            if v is not None and not 0 < v <= MAX_DIMENSION:
                raise ConfigError(f"{flag} {v}: must be a positive number of pixels, at "
                                  f"most {MAX_DIMENSION}")
        if self.fps is not None and not 0 < self.fps <= MAX_FRAME_RATE:  # nan, inf too
            raise ConfigError(f"--fps {self.fps:g}: must be more than 0 and at most "
                              f"{MAX_FRAME_RATE} frames per second")
        output_kind(self.output)
        VideoCodec.parse(self.codec)
        EncoderBackend.parse(self.encoder)
        check_latency(self.latency)
        check_adapt(self.adapt)
        check_adapt_output(self.adapt, self.output)
        if self.adapt != DEFAULT_ADAPT and not is_testsrc(self.input):
            raise ConfigError(f"--adapt {self.adapt}: only a live source adapts (record, "
                              "testsrc:live=1); a file is read at the encoder's pace")
        # A path read or written on another node means nothing relative to this shell's
        # directory: a Ray worker there runs in a directory of Ray's.
        if self.source_node and not is_testsrc(self.input) and not os.path.isabs(self.input):
            raise ConfigError(f"--source-node: give the input as an absolute path on that "
                              f"node (got {self.input!r})")
        if (self.output_node and output_kind(self.output) in ("mp4", "hls")
                and not os.path.isabs(self.output)):
            raise ConfigError(f"--output-node: give the output as an absolute path on that "
                              f"node (got {self.output!r})")


def check_encoder_options(codec: VideoCodec, backend: EncoderBackend, preset: str | None,
                          crf: int | None) -> None:
    """Open the encoder once, tiny, with the user's preset and quality, before any actor
    starts: a rejected option is an error now, with its cause first. Auto is checked
    against the software encoder, whose x264-style names every backend maps from."""
    if preset is not None and not (preset in X264_PRESETS or preset == "placebo"
                                   or re.fullmatch(r"p?\d{1,2}", preset)):
        raise ConfigError(f"--preset {preset!r}: unknown; use one of {', '.join(X264_PRESETS)}"
                          " (each backend maps them onto its own scale), or the encoder's "
                          "own number (SVT-AV1 0-13, NVENC p1-p7)")
    probe_backend = EncoderBackend.Software if backend is EncoderBackend.Auto else backend
    if (preset is not None and preset[-1].isdigit() and probe_backend is EncoderBackend.Software
            and codec in (VideoCodec.H264, VideoCodec.H265)):
        # x264 and x265 would print their own complaint to the terminal, past any capture.
        raise ConfigError(f"--preset {preset!r}: the software {codec.value} encoder takes a "
                          f"name ({', '.join(X264_PRESETS)}); numbers are for SVT-AV1 "
                          "(0-13) and NVENC (p1-p7)")
    with av.logging.Capture():  # the encoder's own complaint is in `reason`; print it once
        reason = try_encode(VideoEncoderConfig(codec=codec, backend=probe_backend,
                                               preset=preset, crf=crf, framerate=30),
                            probe_backend)
    if reason:
        given = " ".join(f for f in (f"--preset {preset}" if preset else "",
                                     f"--crf {crf}" if crf is not None else "") if f)
        raise ConfigError(f"{given}: the {codec.value} encoder refuses it ({reason})")


def make_source(spec: str, audio: AudioPlan | None = None) -> Source:
    """The linear pipeline's source; a file was opened already (read_input), where the
    source will run."""
    if is_testsrc(spec):
        return parse_testsrc(spec)
    return FileSource(spec, audio_streams=audio.indexes if audio else ())


def read_input(path: str, kind: str, audio: AudioOptions, codec: str, encoder: str,
               farm: bool) -> tuple[AudioPlan, list[str]]:
    """Everything decided from the input file before any actor starts: it opens (fail
    fast), its audio plan and what happens to its video. A plain function of picklable
    arguments, so that it can run on the node that will read the file (call_on)."""
    container, stream = open_video(path)
    try:
        pix_fmt = stream.codec_context.pix_fmt
        rotation = display_rotation(container, stream)
    finally:
        container.close()
    plan = plan_audio(path, kind, audio)
    return plan, video_notes(pix_fmt, rotation, codec, encoder, farm)


def input_report(pipeline: Pipeline) -> dict[str, Any]:
    """Frames decoded from the input against those it should hold, for either path.

    The linear pipeline's FileSource decodes; in the farm the source only demuxes (a
    truncated file holds fewer packets) and the workers decode (corrupt packets lose
    frames), so the stitcher counts what really came through.
    """
    src = pipeline.results("src") or {}
    if "stitch" not in pipeline.graph.nodes:
        return src
    stitched = pipeline.results("stitch") or {}
    expected = src.get("expected")
    decoded = stitched.get("decoded", 0)
    lost = max(0, expected - decoded) if expected else stitched.get("lost", 0)
    return {"decoded": decoded, "expected": expected, "lost": lost,
            "lost_in": stitched.get("lost_in", [])}


def video_notes(pix_fmt: str | None, rotation: int, codec: str, encoder: str,
                farm: bool) -> list[str]:
    """What happens to the input video (its pixel format, its display rotation) besides
    scaling and encoding, said up front: turned upright, or reduced to 8 bits (and why)."""
    notes = []
    if rotation:
        notes.append(f"video: the input is displayed turned {rotation} degrees clockwise; "
                     "its frames are turned upright (as ffmpeg's autorotate does)")
    if farm:
        depth = depth_note(pix_fmt, codec, encoder)
    elif bit_depth(pix_fmt) > 8:
        depth = (f"{bit_depth(pix_fmt)}-bit input encoded as 8-bit: the linear pipeline "
                 "carries 8-bit frames; the farm (without --no-chunks) keeps 10 bits for "
                 "h265 and av1")
    else:
        depth = None
    if depth:
        notes.append(f"video: {depth}")
    return notes


def transcode_path(opts: TranscodeOptions) -> tuple[bool, str]:
    """(farm?, why): the farm for files to whole-file outputs, else the linear pipeline."""
    if opts.farm is None:
        return False, "linear pipeline (--no-chunks)"
    refusal = farm_refusal(opts.output, opts.out, not is_testsrc(opts.input))
    if refusal:
        return False, f"linear pipeline: {refusal}"
    f = opts.farm
    return True, f"farm: {f.workers} worker(s), chunks of about {f.chunk_duration:g} s"


def node_placements(opts: TranscodeOptions) -> tuple[Placement, Placement]:
    """(where the input is read, where the output is written): the driver's node, or one
    live node with the labels of --source-node / --output-node (a PlacementError naming
    the selector when no node has them)."""
    def at(flag: str, labels: tuple[tuple[str, str], ...]) -> Placement:
        if not labels:
            return AT_DRIVER
        return node_for(f"{flag} {','.join(f'{k}={v}' for k, v in labels)}", dict(labels))

    return at("--source-node", opts.source_node), at("--output-node", opts.output_node)


def build_transcode(opts: TranscodeOptions, local: bool = True) -> Pipeline:
    """The transcode pipeline. ``local``: inputs and encoders are on this machine."""
    codec, backend = VideoCodec.parse(opts.codec), EncoderBackend.parse(opts.encoder)
    if local and backend is not EncoderBackend.Auto:
        reason = precheck(backend, codec)
        if reason:
            raise ConfigError(f"--encoder {backend.value}: {reason}")
    if opts.preset is not None or opts.crf is not None:
        check_encoder_options(codec, backend, opts.preset, opts.crf)
    farm, _ = transcode_path(opts)
    source_at, output_at = node_placements(opts)
    audio, notes = AudioPlan(), []
    if not is_testsrc(opts.input):
        # Read where the source will run (this node unless --source-node), before any
        # actor starts: a missing or unreadable input fails fast, naming that node.
        audio, notes = call_on(source_at, read_input, opts.input, output_kind(opts.output),
                               opts.audio, opts.codec, opts.encoder, farm)
    if farm:
        encoder = VideoEncoderConfig(codec=codec, backend=backend, bitrate=opts.bitrate,
                                     crf=opts.crf, gop=opts.gop, preset=opts.preset,
                                     low_latency=opts.latency == "low")
        pipeline = build_farm(opts.input, opts.output, encoder, opts.width, opts.height,
                              opts.scale_algorithm, opts.fps, opts.out, opts.farm, local,
                              audio, source_at, output_at)
        pipeline.notes = notes + audio.notes
        return pipeline
    stages: list[tuple[str, Element]] = [("src", make_source(opts.input, audio))]
    if opts.adapt != DEFAULT_ADAPT:
        if not stages[0][1].live:
            raise ConfigError(f"--adapt {opts.adapt}: only a live source adapts (record, "
                              "testsrc:live=1); a file is read at the encoder's pace")
        src = stages[0][1]
        stages[0] = ("src", TestPatternSource(replace(src.settings, adapt=opts.adapt)))
    if opts.fps:
        stages.append(("rate", VideoRate(opts.fps)))
    width, height = opts.width, opts.height
    source = stages[0][1]
    if (width is None and height is None and isinstance(source, TestPatternSource)
            and (source.settings.width, source.settings.height)
            == (TESTSRC_DEFAULTS["width"], TESTSRC_DEFAULTS["height"])):
        height = TESTSRC_DEFAULT_OUTPUT_HEIGHT
    stages.append(("scale", VideoScaler.new(width, height, "yuv420p",
                                            opts.scale_algorithm)))
    stages.append(("encode", VideoEncoder(
        codec=codec, backend=backend, bitrate=opts.bitrate, crf=opts.crf, gop=opts.gop,
        preset=opts.preset, low_latency=opts.latency == "low",
        keyframe_interval=fragment_duration(opts.output, opts.out, live=source.live))))
    # A file is read where the source runs and the output written where the muxer runs
    # (both the driver's node unless pinned by label), as in the farm. Rate, scale and
    # encode stay with the source: raw frames are too big to cross a network, and
    # elements placed alike fuse into one host; only encoded packets go to the muxer.
    placements = {name: source_at for name in ("rate", "scale", "encode")}
    placements.update(mux=output_at, sink=output_at)
    if not is_testsrc(opts.input) or opts.source_node:
        placements["src"] = source_at
    low = opts.latency == "low" and source.live
    pipeline = add_job(Pipeline("transcode", fusion=opts.fusion), stages, opts.output, opts.out,
                       placements=placements,
                       source_window=LOW_LATENCY_WINDOW if low else None,
                       max_restarts=opts.max_restarts)
    link_audio(pipeline, audio, "src", "mux")
    pipeline.notes = notes + audio.notes
    return pipeline
