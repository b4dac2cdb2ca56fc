"""Many files through one farm: ``parallax transcode IN... --output-dir DIR [--resume]``.

One pipeline, one pool: the chunks of every file share the workers, longest file first,
so a batch of short files keeps a cluster as busy as one long file does. Each output is
written atomically; progress lives in ``DIR/.parallax/`` (actors/farm/chunk_store.py),
so a batch that was killed or interrupted resumes where it stopped, re-encoding only
the chunks that were in flight.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from actors.errors import ConfigError, MediaError
from actors.farm import ChunkTranscoder
from actors.farm.audio_feed import AudioSpec
from actors.farm.batch_source import BatchPacketSource
from actors.farm.batch_writer import BatchWriter
from actors.farm.chunk_store import ChunkStore, lock_dir
from actors.media.encoders import VideoEncoderConfig
from actors.media.file_source import open_video
from actors.media.muxing import check_output_path, check_writable_dir
from pipelines.audio import AudioOptions, plan_audio
from pipelines.farm import AT_DRIVER, FarmOptions, worker_placement, worker_threads
from pipelines.runtime.pipeline import Pipeline

BATCH_SUFFIX = ".mp4"


def expand_inputs(specs: list[str]) -> list[str]:
    """Paths, glob patterns and ``@list.txt`` files (one path per line) -> paths."""
    paths: list[str] = []
    for spec in specs:
        if spec.startswith("@"):
            try:
                with open(spec[1:]) as f:
                    lines = [ln.strip() for ln in f]
            except OSError as exc:
                raise ConfigError(f"list of inputs {spec[1:]!r}: {exc.strerror}") from None
            paths += [ln for ln in lines if ln and not ln.startswith("#")]
        elif not os.path.exists(spec) and glob.has_magic(spec):
            found = sorted(glob.glob(spec))
            if not found:
                raise ConfigError(f"{spec!r} matches no file")
            paths += found
        else:
            paths.append(spec)
    seen: set[str] = set()
    unique = [p for p in paths if not (os.path.abspath(p) in seen or seen.add(os.path.abspath(p)))]
    if not unique:
        raise ConfigError("no input files given")
    return unique


def output_names(paths: list[str], output_dir: str) -> dict[str, str]:
    outputs: dict[str, str] = {}
    taken: dict[str, str] = {}
    for p in paths:
        out = os.path.join(output_dir, os.path.splitext(os.path.basename(p))[0] + BATCH_SUFFIX)
        if out in taken:
            raise ConfigError(f"{taken[out]!r} and {p!r} would both write {out!r}; rename "
                              "one, or run them in two batches")
        taken[out] = p
        outputs[p] = out
    return outputs


@dataclass(frozen=True)
class BatchOptions:
    output_dir: str
    resume: bool = False
    audio: AudioOptions = field(default_factory=AudioOptions)
    overwrite: bool = False
    """Replace outputs that exist and no earlier run of this batch finished (-y)."""


def settings_id(encoder: VideoEncoderConfig, width: int | None, height: int | None,
                algorithm: str, fps: float | None, farm: FarmOptions) -> str:
    """Kept chunks are reused only by a run with the same settings (chunking included)."""
    doc = {"encoder": {k: str(v) for k, v in asdict(encoder).items()}, "width": width,
           "height": height, "algorithm": algorithm, "fps": fps,
           "chunk_duration": farm.chunk_duration}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class BatchRun:
    pipeline: Pipeline | None
    """None when nothing is left to do (every input finished earlier, or unreadable)."""
    outputs: dict[str, str]
    """Input -> its output file."""
    failed: dict[str, str] = field(default_factory=dict)
    """Inputs that failed before the run (unreadable), with why."""
    skipped: list[str] = field(default_factory=list)
    """Inputs an earlier run finished (--resume)."""


def build_batch(paths: list[str], batch: BatchOptions, encoder: VideoEncoderConfig,
                width: int | None, height: int | None, algorithm: str, fps: float | None,
                farm: FarmOptions, local: bool = True) -> BatchRun:
    """The batch pipeline, with what was settled before it starts."""
    out_dir = batch.output_dir
    check_writable_dir(out_dir, "--output-dir")
    outputs = output_names(paths, out_dir)
    for p, out in outputs.items():
        check_output_path(out, (p,))
    failed: dict[str, str] = {}
    if local:  # bad files fail now, by name, and the others go on
        for p in paths:
            try:
                open_video(p)[0].close()
            except MediaError as exc:
                failed[p] = str(exc)
    sid = settings_id(encoder, width, height, algorithm, fps, farm)
    os.close(lock_dir(out_dir))  # no other batch (nor a killed one's workers) still writes
    store = ChunkStore(out_dir, sid)
    todo, done = [], {}
    for p in paths:
        if p in failed:
            continue
        entry = store.resumable(p) if batch.resume else None
        if entry and entry["state"] == "done" and os.path.exists(entry["output"]):
            continue  # finished by an earlier run
        todo.append(p)
        if entry:
            done[p] = tuple(entry["chunks"])
    skipped = [p for p in paths if p not in failed and p not in todo]
    if not batch.overwrite:  # --resume replaces only what its own earlier run wrote
        clash = [outputs[p] for p in todo if os.path.exists(outputs[p])
                 and not (batch.resume and store.entry(p) is not None)]
        if clash:
            more = f" (and {len(clash) - 1} more)" if len(clash) > 1 else ""
            raise ConfigError(f"output {clash[0]!r} exists{more}; pass -y/--overwrite to "
                              "replace, or --resume to go on with the batch that wrote it")
    audio, notes = {}, []
    for p in todo if local else ():
        try:
            plan = plan_audio(p, "mp4", batch.audio)
        except (ConfigError, MediaError) as exc:  # that file's streams: it fails alone
            failed[p] = str(exc)
            continue
        audio[p] = tuple(AudioSpec(t.stream.index, t.action, t.bitrate) for t in plan.tracks)
        notes += [f"{os.path.basename(p)}: {n}" for n in plan.notes]
    todo = [p for p in todo if p not in failed]
    if not todo:
        return BatchRun(None, outputs, failed, skipped)
    pipeline = Pipeline("batch", fusion=True)
    pipeline.add(BatchPacketSource(paths=tuple(todo), chunk_duration=farm.chunk_duration,
                                   done=done), name="src", placement=AT_DRIVER)
    pipeline.add(ChunkTranscoder(width=width, height=height, algorithm=algorithm, fps=fps,
                                 encoder=encoder, threads=worker_threads(farm.workers, local),
                                 tolerate_errors=True),
                 name="xcode", replicas=farm.workers,
                 placement=worker_placement(encoder.backend, farm.worker_labels))
    pipeline.add(BatchWriter(output_dir=out_dir, outputs={p: outputs[p] for p in todo},
                             settings_id=sid, resume=batch.resume, audio=audio),
                 name="writer", placement=AT_DRIVER)
    pipeline.link("src", "xcode")
    pipeline.link("xcode", "writer")
    pipeline.notes = notes
    return BatchRun(pipeline, outputs, failed, skipped)


def batch_report(run: BatchRun) -> dict[str, Any]:
    """Per file: state (done, failed), output, reason; and how many chunks were encoded
    by this run or taken from disk."""
    writer: dict[str, Any] = {}
    src: dict[str, Any] = {}
    if run.pipeline is not None:
        writer = run.pipeline.results("writer") or {}
        src = run.pipeline.results("src") or {}
    files: dict[str, dict[str, Any]] = {}
    for p in run.skipped:
        files[p] = {"state": "done", "output": run.outputs[p],
                    "reason": "finished by an earlier run (--resume)"}
    for p, why in {**run.failed, **src.get("failed", {})}.items():
        files[p] = {"state": "failed", "output": run.outputs[p], "reason": why}
    for p, st in writer.get("files", {}).items():
        if p not in files or st.get("state") == "done":
            files[p] = dict(st)
        if files[p].get("state") in ("queued", "running"):
            files[p].update(state="failed", reason=files[p].get("reason") or "not finished")
    return {"files": files, "chunks_encoded": sum(writer.get("encoded", {}).values()),
            "chunks_from_disk": src.get("cached", 0),
            "failed": sorted(p for p, f in files.items() if f["state"] == "failed")}
