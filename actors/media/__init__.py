"""Media elements: decode, generate, scale, change rate, encode, mux to MP4 (all through PyAV)."""

from actors.media.file_source import FileSource, FileSourceSettings
from actors.media.mp4_mux import Mp4Mux, Mp4MuxSettings
from actors.media.null_sink import NullSink
from actors.media.test_pattern import TestPatternSettings, TestPatternSource
from actors.media.video_encoder import VideoEncoder
from actors.media.video_rate import VideoRate
from actors.media.video_scaler import ScaleAlgorithm, VideoScaler, VideoScalerSettings

__all__ = [
    "FileSource", "FileSourceSettings", "Mp4Mux", "Mp4MuxSettings", "NullSink", "ScaleAlgorithm",
    "TestPatternSettings", "TestPatternSource", "VideoEncoder", "VideoRate", "VideoScaler",
    "VideoScalerSettings",
]
