"""Progress bar and end-of-run summary for the CLI, drawn with rich on stderr."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from pipelines.runtime.stats import PipelineStats, PoolStats
from pipelines.runtime.stats import Progress as PipelineProgress


@contextlib.contextmanager
def stdout_for_json(restore: bool) -> Iterator[IO[str]]:
    """Keep stdout for JSON alone: yields a stream on the real stdout, and sends the rest
    there to stderr, Python's ``sys.stdout`` (where Ray prints worker and raylet notices,
    even at exit) and file descriptor 1 alike (anything in the driver's process writing
    on it from C). ``restore``: put both back at the end, for a caller from Python; a
    command keeps them until the process ends, so that Ray's exit prints stay off it.
    """
    original = sys.stdout
    try:
        fd = original.fileno()
    except (AttributeError, OSError, ValueError):  # captured (pytest's capsys): no fd
        fd = None
    saved = None
    json_out = original
    if fd == 1:
        original.flush()
        saved = os.dup(1)
        json_out = os.fdopen(saved, "w", buffering=1, closefd=False)
        os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        yield json_out
    finally:
        json_out.flush()
        if restore:
            sys.stdout = original
            if saved is not None:
                os.dup2(saved, 1)
                os.close(saved)


# Seconds between progress lines when stderr is not a terminal (a job's log, a file).
LOG_PROGRESS_INTERVAL_S = 10.0


class ProgressDisplay:
    """A progress bar on a terminal; elsewhere (``ray job logs``, a redirect) a plain
    line every LOG_PROGRESS_INTERVAL_S and one at the end, since a bar redrawn with
    carriage returns reads as one endless line in a log."""

    def __init__(self, stream: IO[str], title: str = "transcode") -> None:
        self.console = Console(file=stream)
        self.log_lines = not self.console.is_terminal
        self.stream, self.title = stream, title
        self.last: PipelineProgress | None = None
        self.next_line = 0.0
        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.completed}/{task.fields[total_text]} frames"),
            TextColumn("{task.fields[fps]:.1f} fps"), TextColumn("drops {task.fields[drops]}"),
            TimeRemainingColumn(), console=self.console, transient=True)
        self.task = self.bar.add_task(title, total=None, total_text="?", fps=0.0, drops=0)

    def __enter__(self) -> ProgressDisplay:
        if not self.log_lines:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.log_lines:
            if self.last is not None:
                self.write_line(self.last)
        else:
            self.bar.stop()

    def update(self, p: PipelineProgress) -> None:
        if self.log_lines:
            self.last = p
            if p.elapsed >= self.next_line:
                self.next_line = p.elapsed + LOG_PROGRESS_INTERVAL_S
                if p.frames_processed:
                    self.write_line(p)
            return
        self.bar.update(self.task, completed=p.frames_processed, total=p.frames_total,
                        total_text=p.frames_total or "?", fps=p.fps, drops=p.drops)


    def write_line(self, p: PipelineProgress) -> None:
        total = f"/{p.frames_total} ({100 * p.frames_processed / p.frames_total:.0f}%)" \
            if p.frames_total else ""
        eta = f", {p.estimated_remaining:.0f} s left" if p.estimated_remaining else ""
        self.stream.write(f"{self.title}: {p.frames_processed}{total} frames, {p.fps:.1f} fps, "
                          f"{p.drops} drops, {p.elapsed:.0f} s{eta}\n")
        self.stream.flush()


def print_summary(stats: PipelineStats, output: dict[str, Any] | None, stream: IO[str]) -> None:
    console = Console(file=stream, soft_wrap=True)  # a path is not wrapped, even in a log
    out = ""
    if output and output.get("location"):
        out = f", wrote {output['location']} ({output['bytes'] / 1e6:.1f} MB)"
    console.print(f"[bold green]done[/]: {stats.frames} frames in {stats.running_time:.1f} s "
                  f"({stats.fps:.1f} fps){out}")
    table = Table(show_edge=False)
    for col in ("element", "in", "out", "busy s", "latency ms", "drops", "node"):
        table.add_column(col, justify="right" if col not in ("element", "node") else "left")
    for s in stats.elements.values():
        lat = "-" if s.latency_ms is None else f"{s.latency_ms:.1f}"
        table.add_row(s.name, str(s.buffers_in), str(s.buffers_out),
                      f"{s.total_processing_time:.1f}", lat, str(s.drops), s.node_id[:8])
    console.print(table)
    for pool in stats.pools.values():
        print_pool(console, pool)
    if stats.restart_events:
        console.print(restart_line(stats))


def restart_line(stats: PipelineStats) -> str:
    """Which processes died and were replaced, when, and how long each gap lasted."""
    events = ", ".join(f"{e['host']} at {e['at_s']:.1f} s (back in {e['gap_s']:.1f} s)"
                       for e in stats.restart_events)
    return (f"restarted {len(stats.restart_events)} time(s) after a process died: {events}; "
            "the output has a discontinuity at each")


def print_pool(console: Console, pool: PoolStats) -> None:
    """A pool's replicas and nodes: who did how much, and what was lost on the way."""
    lost = f", {pool.lost} replica(s) lost, {pool.requeued} item(s) requeued" \
        if pool.lost else ""
    console.print(f"pool [bold]{pool.name}[/]: {len(pool.replicas)} replica(s), "
                  f"{pool.items} item(s){lost}")
    table = Table(show_edge=False)
    for col in ("replica", "node", "pid", "items", "busy s", "state"):
        table.add_column(col, justify="left" if col in ("replica", "node", "state") else "right")
    for r in pool.replicas:
        table.add_row(r["name"], (r["node_id"] or "?")[:8], str(r["pid"]), str(r["items"]),
                      f"{r['busy_s']:.1f}", r["state"])
    console.print(table)
    nodes = pool.per_node()
    if len(nodes) > 1:
        console.print("  per node: " + ", ".join(
            f"{n[:8]} {v['items']:.0f} item(s) in {v['busy_s']:.1f} s busy"
            for n, v in nodes.items()))


class LiveStatsDisplay:
    """Per-element figures refreshed about once a second (rich), or one JSON line each.

    Per element: fps in and out, drops, credits in use on its input (the mailbox), and
    latency; for the pipeline: elapsed time, frames and bytes written.
    """

    def __init__(self, stream: IO[str], title: str, json_lines: bool = False) -> None:
        self.stream, self.title, self.json_lines = stream, title, json_lines
        self.live: Any = None

    def __enter__(self) -> LiveStatsDisplay:
        if not self.json_lines:
            from rich.live import Live

            self.live = Live(Table(), console=Console(file=self.stream),
                             refresh_per_second=2, transient=False)
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def update(self, stats: PipelineStats) -> None:
        if self.json_lines:
            import json
            import time

            line = {"time": round(time.time(), 3), **stats.to_dict()}
            self.stream.write(json.dumps(line, default=str) + "\n")
            self.stream.flush()
            return
        self.live.update(self.table(stats))

    def table(self, stats: PipelineStats) -> Table:
        caption = (f"{stats.running_time:.1f} s   {stats.frames} frames   "
                   f"{stats.bytes_written / 1e6:.1f} MB written   state {stats.state}")
        table = Table(title=f"{self.title}: {caption}", title_justify="left", show_edge=False)
        for col in ("element", "fps in", "fps out", "drops", "credits", "latency ms",
                    "e2e ms"):
            table.add_column(col, justify="left" if col == "element" else "right")
        for pool in stats.pools.values():
            lost = f", {pool.lost} lost, {pool.requeued} requeued" if pool.lost else ""
            table.caption = (table.caption or "") + (
                f"pool {pool.name}: {pool.live}/{len(pool.replicas)} replicas live, "
                f"{pool.items} items{lost}   ")
        for s in stats.elements.values():
            if s.live:  # a live source: what it was asked for against what it keeps
                size = f", size {s.live['scale']:g}" if s.live["scale"] < 1 else ""
                table.caption = (table.caption or "") + (
                    f"{s.name}: {s.live['requested_fps']:g} fps requested, "
                    f"{s.live['kept_fps']:g} kept, {s.live['dropped_pct']:g}% dropped, "
                    f"longest freeze {s.live['longest_freeze_s']:.2f} s{size}   ")
        if stats.restart_events:
            table.caption = (table.caption or "") + restart_line(stats)
        inputs = {e.consumer: e for e in stats.edges.values()}
        for s in stats.elements.values():
            edge = inputs.get(s.name)
            credits = f"{edge.in_flight}/{edge.window}" if edge else "-"
            e2e = s.e2e_latency_ms
            table.add_row(s.name, f"{s.input_fps:.1f}", f"{s.output_fps:.1f}", str(s.drops),
                          credits, "-" if s.latency_ms is None else f"{s.latency_ms:.1f}",
                          "-" if e2e is None else f"{e2e:.1f}")
        return table


def print_batch(report: dict[str, Any], stream: IO[str]) -> None:
    """One line per file of a batch: done (and where), or failed and why. Plain lines, so
    that long paths and reasons survive a narrow terminal and a job's log alike."""
    console = Console(file=stream, soft_wrap=True)
    for path, f in report["files"].items():
        if f["state"] == "done":
            lost = f" ({f['lost']} frame(s) lost)" if f.get("lost") else ""
            frames = f" {f['frames']} frames," if f.get("frames") else ""
            console.print(f"[green]done[/]   {path} ->{frames} {f.get('output', '')}{lost}",
                          highlight=False)
        else:
            console.print(f"[red]{f['state']}[/] {path}: {f.get('reason')}", highlight=False)
    console.print(f"{len(report['files']) - len(report['failed'])} of {len(report['files'])} "
                  f"file(s) done; chunks encoded now: {report['chunks_encoded']}, taken from "
                  f"disk: {report['chunks_from_disk']}", highlight=False)
