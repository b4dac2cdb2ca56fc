"""The record pipeline: screen capture -> scale -> encode -> MP4, HLS or Zenoh."""

from __future__ import annotations

from dataclasses import dataclass, field

from actors.capture.screen_capture import ScreenCaptureSource
from actors.media.encoders import EncoderBackend, VideoCodec
from actors.media.video_encoder import VideoEncoder
from actors.media.video_scaler import VideoScaler
from pipelines.outputs import OutputOptions, add_job, fragment_duration, output_kind
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

    def __post_init__(self) -> None:
        output_kind(self.output)
        VideoCodec.parse(self.codec)
        EncoderBackend.parse(self.encoder)


def build_record(opts: RecordOptions) -> Pipeline:
    """Capture keeps its own host, so grabbing overlaps encoding; the rest is fused."""
    if opts.preset is not None:  # a rejected preset fails now, not after Ray starts
        check_encoder_options(VideoCodec.parse(opts.codec), EncoderBackend.parse(opts.encoder),
                              opts.preset, None)
    return add_job(Pipeline("record", fusion=True), [
        ("src", ScreenCaptureSource(monitor=opts.monitor, region=opts.region, fps=opts.fps,
                                    duration=opts.duration, display=opts.display)),
        ("scale", VideoScaler.new(opts.width, opts.height, "yuv420p")),
        ("encode", VideoEncoder(
            codec=opts.codec, backend=opts.encoder, preset=opts.preset,
            keyframe_interval=fragment_duration(opts.output, opts.out) or 2.0)),
    ], opts.output, opts.out)
