"""Streaming elements: fragmented MP4 (CMAF), HLS, and decoding of fMP4 segments."""

from actors.streaming.fmp4_file_sink import Fmp4FileSink, Fmp4FileSinkSettings
from actors.streaming.fragmented_mp4_mux import FragmentedMp4Mux, FragmentedMp4MuxSettings
from actors.streaming.hls_sink import HlsSink, HlsSinkSettings
from actors.streaming.segment_decoder import SegmentDecoder

__all__ = [
    "Fmp4FileSink", "Fmp4FileSinkSettings", "FragmentedMp4Mux", "FragmentedMp4MuxSettings",
    "HlsSink", "HlsSinkSettings", "SegmentDecoder",
]
