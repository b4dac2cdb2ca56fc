"""Progress bar and end-of-run summary for the CLI, drawn with rich on stderr."""

from __future__ import annotations

from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from pipelines.stats import PipelineStats
from pipelines.stats import Progress as PipelineProgress


class ProgressDisplay:
    def __init__(self, stream: IO[str], title: str = "transcode") -> None:
        self.console = Console(file=stream)
        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.completed}/{task.fields[total_text]} frames"),
            TextColumn("{task.fields[fps]:.1f} fps"), TextColumn("drops {task.fields[drops]}"),
            TimeRemainingColumn(), console=self.console, transient=True)
        self.task = self.bar.add_task(title, total=None, total_text="?", fps=0.0, drops=0)

    def __enter__(self) -> ProgressDisplay:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def update(self, p: PipelineProgress) -> None:
        self.bar.update(self.task, completed=p.frames_processed, total=p.frames_total,
                        total_text=p.frames_total or "?", fps=p.fps, drops=p.drops)


def print_summary(stats: PipelineStats, output: dict[str, Any] | None, stream: IO[str]) -> None:
    console = Console(file=stream)
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
