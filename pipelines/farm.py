"""The farm: a file transcode cut into GOP chunks and spread over a pool of workers.

    PacketSource --chunks--> ChunkTranscoder x N --encoded chunks--> ChunkStitcher -> mux
    (node with the file)     (a pool, spread over     (merged in order)
                              the cluster's nodes)

Compressed GOPs cross the network, raw frames never leave the worker that decoded them.
``parallax transcode FILE OUT`` uses it by default; ``--no-chunks`` gives the linear
pipeline, which stays the path for live and test-pattern sources.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace

from actors.element import Placement
from actors.errors import ConfigError
from actors.farm import ChunkStitcher, ChunkTranscoder, PacketSource
from actors.farm.packet_source import DEFAULT_CHUNK_DURATION, MAX_CHUNK_DURATION
from actors.media.encoders import EncoderBackend, VideoEncoderConfig
from cluster.detect import LABEL_PREFIX
from pipelines.audio import AudioPlan, link_audio
from pipelines.outputs import OutputOptions, add_job, fragment_duration, output_kind
from pipelines.runtime.graph import AUTO
from pipelines.runtime.pipeline import Pipeline
from pipelines.runtime.placement import MAX_REPLICAS_PER_SLOT

log = logging.getLogger("parallax.farm")

# The source reads the input and the muxer writes the output where the command runs
# (the driver's node: the job's entrypoint node with `ray job submit`), unless
# --source-node / --output-node pin them to a labelled node; only the workers spread
# over the cluster, and only compressed data crosses the network.
AT_DRIVER = Placement(node="driver")

# Outputs a farm can write: whole files (a live output wants frames as they come).
FARM_OUTPUTS = ("mp4", "hls", "null")


@dataclass(frozen=True)
class FarmOptions:
    workers: int | str = AUTO
    """Chunk workers: a number, or "auto" for one per CPU of the cluster's nodes."""
    chunk_duration: float = DEFAULT_CHUNK_DURATION
    """Target seconds per chunk; chunks start at keyframes, so they follow the GOPs."""
    keep_timestamps: bool = False
    worker_labels: tuple[tuple[str, str], ...] = ()
    """Node labels every worker needs (Ray label_selector syntax), e.g. a site or a GPU."""

    def __post_init__(self) -> None:
        w = self.workers
        if w != AUTO and (isinstance(w, bool) or not isinstance(w, int) or w < 1):
            raise ConfigError(f"--workers {w!r}: give a number of workers >= 1, or auto")
        d = self.chunk_duration
        if not isinstance(d, (int, float)) or not 0 < d <= MAX_CHUNK_DURATION:
            raise ConfigError(f"--chunk-duration {d!r}: must be more than 0 and at most "
                              f"{MAX_CHUNK_DURATION:g} seconds")


def farm_refusal(output: str, out: OutputOptions, is_file: bool) -> str | None:
    """Why this job runs on the linear pipeline instead of the farm; None if it can farm."""
    if not is_file:
        return "the input is generated, not a file"
    if output_kind(output) not in FARM_OUTPUTS:
        return "the output is a live stream (zenoh)"
    if output_kind(output) == "hls" and out.hls_mode == "live":
        return "a live HLS window wants segments as they come"
    return None


def worker_placement(backend: EncoderBackend, labels: tuple[tuple[str, str], ...]
                     ) -> Placement | None:
    """Where workers may run: a hardware encoder only on nodes that advertise it (see
    cluster/detect.py), one encode session each; plus the labels the user asked for."""
    selector = dict(labels)
    resources: dict[str, float] = {}
    if backend not in (EncoderBackend.Auto, EncoderBackend.Software):
        key = f"{LABEL_PREFIX}{backend.value}"
        selector[key] = "true"
        resources[key] = 1
    if not selector:
        return None
    return Placement(resources=resources, label_selector=selector)


def worker_threads(workers: int | str, local: bool) -> int:
    """Threads per worker: the cores of this machine shared out, one each for "auto".

    On this machine only, more workers than the runtime lets a pool have (a few per CPU)
    are refused here, naming the option, before a Ray is started for them."""
    if workers == AUTO or not local:
        return 1
    cpus = os.cpu_count() or 1
    if int(workers) > MAX_REPLICAS_PER_SLOT * cpus:
        raise ConfigError(f"--workers {workers}: this machine has {cpus} CPU(s); give at "
                          f"most {MAX_REPLICAS_PER_SLOT * cpus} (each worker is a process), "
                          "or auto")
    return max(1, cpus // int(workers))


def build_farm(input_path: str, output: str, encoder: VideoEncoderConfig,
               width: int | None, height: int | None, algorithm: str, fps: float | None,
               out: OutputOptions, farm: FarmOptions, local: bool = True,
               audio: AudioPlan | None = None, source: Placement = AT_DRIVER,
               output_at: Placement = AT_DRIVER) -> Pipeline:
    """The farm pipeline for one file. ``local``: the workers run on this machine only.
    ``audio``: the input's audio streams to mux with the stitched video. ``source`` and
    ``output_at``: where the file is read and where the output is written (the driver's
    node unless --source-node / --output-node chose one)."""
    audio = audio or AudioPlan()
    keyframes = fragment_duration(output, out)
    if keyframes and encoder.gop is None:
        encoder = replace(encoder, keyframe_interval=keyframes)
    threads = worker_threads(farm.workers, local)
    stages = [
        ("src", PacketSource(input_path, chunk_duration=farm.chunk_duration,
                             keep_timestamps=farm.keep_timestamps,
                             audio_streams=audio.indexes)),
        ("xcode", ChunkTranscoder(width=width, height=height, algorithm=algorithm, fps=fps,
                                  encoder=encoder, threads=threads)),
        ("stitch", ChunkStitcher()),
    ]
    log.info("farm: %s worker(s) x %d thread(s), chunks of about %g s", farm.workers, threads,
             farm.chunk_duration)
    # The stitcher goes with the muxer: encoded chunks cross the network once.
    placements = {"src": source, **{name: output_at for name in ("stitch", "mux", "sink")}}
    placement = worker_placement(encoder.backend, farm.worker_labels)
    if placement:
        placements["xcode"] = placement
    pipeline = add_job(Pipeline("transcode", fusion=True), stages, output, out,
                       pools={"xcode": farm.workers}, placements=placements)
    link_audio(pipeline, audio, "src", "mux", output_at)
    return pipeline
