"""The record pipeline: screen capture -> scale -> encode -> MP4, HLS or Zenoh."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.capture.screen_capture import ScreenCaptureSource
from actors.media.encoders import EncoderBackend, VideoCodec
from actors.media.video_encoder import VideoEncoder
from actors.media.video_scaler import VideoScaler
from actors.pacing import DEFAULT_ADAPT, DEFAULT_MAX_STALL_S, check_adapt
from actors.restart import DEFAULT_MAX_RESTARTS
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
from pipelines.transcode import check_encoder_options


@dataclass(frozen=True)
class RecordOptions:
    output: str
    fps: float = 30.0
    monitor: int = 1
    region: tuple[int, int, int, int] | None = None
    width: int | None = None
    height: int | None = None
    codec: str = "h264"
    encoder: str = "auto"
    preset: str | None = None
    duration: float | None = None
    display: str | None = None
    out: OutputOptions = field(default_factory=OutputOptions)
    max_stall: float | None = DEFAULT_MAX_STALL_S
    """Seconds in which the encoder and output finish nothing before the run fails."""
    latency: str = "normal"
    """"low": the encoder emits every frame at once (no B-frames, no lookahead) and the
    capture keeps at most two frames in flight."""
    max_restarts: int = DEFAULT_MAX_RESTARTS
    """Replace an element whose process died, this often a minute; 0: never."""
    adapt: str = DEFAULT_ADAPT
    """Under overload: framerate (drop evenly), resolution (smaller steps) or off."""

    def __post_init__(self) -> None:
        output_kind(self.output)
        VideoCodec.parse(self.codec)
        EncoderBackend.parse(self.encoder)
        check_latency(self.latency)
        check_adapt(self.adapt)
        check_adapt_output(self.adapt, self.output)


def build_record(opts: RecordOptions) -> Pipeline:
    """Capture keeps its own host, so grabbing overlaps encoding; the rest is fused."""
    if opts.preset is not None:  # a rejected preset fails now, not after Ray starts
        check_encoder_options(VideoCodec.parse(opts.codec), EncoderBackend.parse(opts.encoder),
                              opts.preset, None)
    return add_job(Pipeline("record", fusion=True), [
        ("src", ScreenCaptureSource(monitor=opts.monitor, region=opts.region, fps=opts.fps,
                                    duration=opts.duration, display=opts.display,
                                    max_stall=opts.max_stall, adapt=opts.adapt)),
        ("scale", VideoScaler.new(opts.width, opts.height, "yuv420p")),
        ("encode", VideoEncoder(
            codec=opts.codec, backend=opts.encoder, preset=opts.preset,
            keyframe_interval=fragment_duration(opts.output, opts.out, live=True) or 2.0,
            low_latency=opts.latency == "low")),
    ], opts.output, opts.out,
        source_window=LOW_LATENCY_WINDOW if opts.latency == "low" else None,
        max_restarts=opts.max_restarts)


def live_report(results: dict[str, Any] | None, stats: Any = None) -> str | None:
    """One line on how a live source kept up: requested and kept rates, drops, the longest
    freeze, capture-to-encoded latency and size changes (--adapt resolution); None for a
    source that is not live."""
    if not results or "requested_fps" not in results:
        return None
    line = (f"capture: {results['requested_fps']:g} fps requested, {results['kept_fps']:g} "
            f"kept, {results['dropped_pct']:g}% dropped, longest freeze "
            f"{results['longest_freeze_s']:.2f} s")
    # Measured where encoded packets arrive (the muxer), so the encoder's delay counts.
    encoder = stats.elements.get("mux") if stats is not None else None
    if encoder is not None and encoder.e2e_latency_ms is not None:
        line += (f"; capture to encoded p50 {encoder.e2e_latency_ms:.0f} ms, p99 "
                 f"{encoder.e2e_latency_p99_ms:.0f} ms")
    changes = results.get("resolution_changes") or []
    if changes:
        line += (f"; the size changed {len(changes)} time(s) (lowest "
                 f"{min(c['scale'] for c in changes):g}, last {changes[-1]['scale']:g} of "
                 "the size asked for)")
    if results["dropped_pct"] >= 5:
        line += (" (the encoder could not keep up: lower --fps or the size, or use a "
                 "faster --preset or --encoder)")
    return line
