"""Output specs shared by transcode, receive and record: what goes after the encoder.

- ``out.mp4``: progressive MP4 (Mp4Mux); with a fragment duration, fragmented MP4.
- ``out.m3u8``: HLS (fMP4 segments, the init segment and the playlist beside it).
- ``zenoh:PREFIX``: publish over Zenoh (actors/zenoh_link.py has the key layout).
- ``null``: discard (for benchmarks).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field

from actors.element import Element, Placement
from actors.errors import ConfigError
from actors.media.mp4_mux import MP4_SUFFIXES, Mp4Mux
from actors.media.null_sink import NullSink
from actors.restart import DEFAULT_MAX_RESTARTS, Restart
from actors.streaming.fmp4_file_sink import Fmp4FileSink
from actors.streaming.fragmented_mp4_mux import MAX_FRAGMENT_DURATION, FragmentedMp4Mux
from actors.streaming.hls_sink import HlsSink
from actors.zenoh.link import ZenohOptions, check_prefix
from actors.zenoh.zenoh_sink import ZenohSink
from pipelines.runtime.pipeline import Pipeline

ZENOH_SCHEME = "zenoh:"
HLS_SUFFIX = ".m3u8"
HLS_FRAGMENT_S = 2.0  # as FFmpeg's hls_time
ZENOH_FRAGMENT_S = 1.0  # live streams: a shorter fragment is a shorter delay
# A live source's .mp4 is written fragmented (as OBS's hybrid MP4 and ffmpeg's
# -movflags frag_keyframe do): a recording cannot be run again, and a fragmented file
# whose writer died still plays up to its last complete fragment.
LIVE_MP4_FRAGMENT_S = 2.0
LOW_LATENCY_WINDOW = 2  # items in flight from a live source with --latency low
LATENCIES = ("normal", "low")


def zenoh_prefix(spec: str) -> str | None:
    """'zenoh:studio/cam1' -> 'studio/cam1'; None for anything else."""
    if not spec.startswith(ZENOH_SCHEME):
        return None
    return check_prefix(spec[len(ZENOH_SCHEME):])


@dataclass(frozen=True)
class OutputOptions:
    fragment_duration: float | None = None
    """Seconds per fMP4 fragment; None: progressive MP4, 2 s HLS, 1 s Zenoh."""
    faststart: bool = False
    """Progressive MP4: the index (moov) at the front, for playback while downloading."""
    hls_mode: str = "vod"
    hls_window: int = 6
    zenoh: ZenohOptions = field(default_factory=ZenohOptions)
    congestion: str = "block"

    def __post_init__(self) -> None:
        f = self.fragment_duration
        if f is not None and not 0 < f <= MAX_FRAGMENT_DURATION:
            raise ConfigError(f"--fragment-duration {f:g}: must be more than 0 and at most "
                              f"{MAX_FRAGMENT_DURATION:g} seconds")


def check_latency(latency: str) -> str:
    """--latency: normal, or low (live jobs: every frame encoded at once, 2 in flight)."""
    if latency not in LATENCIES:
        raise ConfigError(f"--latency {latency!r}: use normal or low")
    return latency


def check_adapt_output(adapt: str, output: str) -> None:
    """--adapt resolution changes the encoded size mid-stream: a new init segment, which
    HLS (a new map) and Zenoh (receivers take it) carry and one MP4 file cannot."""
    if adapt == "resolution" and output_kind(output) not in ("hls", "zenoh", "null"):
        raise ConfigError(f"--adapt resolution: {output!r} cannot change its picture size "
                          "mid-file; write .m3u8 or zenoh:PREFIX, or use --adapt framerate")


def output_kind(output: str) -> str:
    """mp4, hls, zenoh or null; a ConfigError for anything else."""
    if output == "null":
        return "null"
    if zenoh_prefix(output) is not None:
        return "zenoh"
    lower = output.lower()
    if lower.endswith(HLS_SUFFIX):
        return "hls"
    if lower.endswith(MP4_SUFFIXES):
        return "mp4"
    ext = os.path.splitext(output)[1] or "(none)"
    raise ConfigError(f"output {output!r}: unknown extension {ext}; use .mp4, .m3u8, "
                      "zenoh:PREFIX, or null to discard")


def fragment_duration(output: str, opts: OutputOptions, live: bool = False) -> float | None:
    """Seconds per fragment for this output, or None when it is not fragmented. ``live``:
    the source is live, so an .mp4 is fragmented too."""
    kind = output_kind(output)
    if opts.fragment_duration is not None:
        if kind == "null":
            return None
        return opts.fragment_duration
    if live and kind == "mp4":
        return LIVE_MP4_FRAGMENT_S
    return {"hls": HLS_FRAGMENT_S, "zenoh": ZENOH_FRAGMENT_S}.get(kind)


def build_output(output: str, opts: OutputOptions, live: bool = False
                 ) -> list[tuple[str, Element]]:
    """(name, element) pairs that take encoded packets and write ``output``."""
    kind = output_kind(output)
    frag = fragment_duration(output, opts, live)
    if kind == "null":
        return [("mux", NullSink())]
    if frag is None:
        return [("mux", Mp4Mux(output, faststart=opts.faststart))]
    return [("mux", FragmentedMp4Mux(fragment_duration=frag)), ("sink", segment_sink(output, opts))]


def segment_sink(output: str, opts: OutputOptions) -> Element:
    """The sink for fMP4 segments (from FragmentedMp4Mux or a ZenohSource)."""
    kind = output_kind(output)
    if kind == "hls":
        return HlsSink(output, mode=opts.hls_mode, window=opts.hls_window)
    if kind == "zenoh":
        return ZenohSink(zenoh_prefix(output), zenoh=opts.zenoh, congestion=opts.congestion)
    if kind == "mp4":
        return Fmp4FileSink(output)
    raise ConfigError(f"output {output!r}: segments go to .mp4, .m3u8 or zenoh:PREFIX")


def add_job(pipeline: Pipeline, stages: list[tuple[str, Element]], output: str,
            opts: OutputOptions, pools: dict[str, int | str] | None = None,
            placements: dict[str, Placement] | None = None,
            source_window: int | None = None,
            max_restarts: int = DEFAULT_MAX_RESTARTS) -> Pipeline:
    """Add ``stages`` (the source first) and the elements writing ``output``, linked in a
    chain. The source keeps its own host, so producing overlaps the rest, which may fuse.
    ``pools`` names the stages that run as pools of replicas, and how many;
    ``placements`` pins stages to nodes; ``source_window`` bounds the source's edge (a
    low-latency live job keeps one or two frames in flight, not a window's worth);
    ``max_restarts``: how often a minute the elements after a live source are replaced
    when their process dies (0: never; file sources never restart)."""
    live = stages[0][1].live
    writer = build_output(output, opts, live=live)
    stages = [*stages, *writer]
    pools, placements = pools or {}, placements or {}
    restart = (Restart(max_restarts) if max_restarts else False) if live else None
    for i, (name, element) in enumerate(stages):
        pipeline.add(element, name=name, replicas=pools.get(name),
                     placement=placements.get(name),
                     restart=restart if i and name not in pools else None)
    for (a, _), (b, _) in itertools.pairwise(stages):
        first = a == stages[0][0]
        # Live: the writer keeps a process of its own, so that an encoder that dies (and
        # is replaced) costs the stream only its frames in flight, not the fragment being
        # written. Encoded packets are small; the hop costs little.
        apart = first or (live and b == writer[0][0])
        pipeline.link(a, b, fuse=False if apart else None,
                      window=source_window if first else None)
    return pipeline
