"""The ``parallax`` command line: transcode and probe.

Exit codes: 0 success; 2 bad usage or bad input (one ``error:`` line, no
traceback); 1 a failure while running, naming the element; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from typing import Any, NoReturn

from actors.errors import ConfigError, MediaError, PipelineError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} (see: {self.prog} --help)\n")


def positive_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def build_parser() -> Parser:
    parser = Parser(prog="parallax", description="Distributed media pipelines on Ray.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    t = sub.add_parser("transcode", help="decode, scale and encode into MP4 (or 'null')",
                       description="Transcode INPUT (a file, or testsrc[:k=v,...]) to OUTPUT "
                                   "(.mp4, or null to discard).")
    t.add_argument("input")
    t.add_argument("output")
    t.add_argument("--width", type=positive_int)
    t.add_argument("--height", type=positive_int)
    t.add_argument("--scale-algorithm", default="bilinear",
                   choices=["nearest", "bilinear", "bicubic", "lanczos", "area"])
    t.add_argument("--codec", default="h264", help="h264, h265, av1 or vp9")
    t.add_argument("--encoder", default="auto",
                   help="auto, software, nvenc, qsv, vaapi or v4l2m2m")
    t.add_argument("--preset", help="encoder speed preset (default veryfast)")
    t.add_argument("--bitrate", help="e.g. 4M or 800k (default: constant quality)")
    t.add_argument("--crf", type=positive_int, help="constant quality, lower is better")
    t.add_argument("--gop", type=positive_int, help="frames between keyframes")
    t.add_argument("--fps", type=float, help="output frame rate (drops or repeats frames)")
    t.add_argument("--no-fuse", dest="fuse", action="store_false",
                   help="one host per element (default: scale, encode and mux share one)")
    t.add_argument("--json", action="store_true", help="print the final stats as JSON")
    t.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p = sub.add_parser("probe", help="list encoder backends and the hardware found")
    p.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "probe":
            return cmd_probe(args)
        return cmd_transcode(args)
    except (ConfigError, MediaError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def cmd_transcode(args: argparse.Namespace) -> int:
    from pipelines.progress import ProgressDisplay, print_summary
    from pipelines.runtime import ensure_ray
    from pipelines.transcode import TranscodeOptions, build_transcode, parse_bitrate

    opts = TranscodeOptions(
        args.input, args.output, args.width, args.height, args.scale_algorithm, args.codec,
        args.encoder, args.preset, parse_bitrate(args.bitrate), args.crf, args.gop, args.fps,
        args.fuse)
    local = not os.environ.get("RAY_ADDRESS")
    pipeline = build_transcode(opts, local=local)
    ensure_ray(quiet=True)
    display = None if args.quiet else ProgressDisplay(sys.stderr)
    previous = signal.getsignal(signal.SIGINT)

    def interrupt(signum: int, frame: Any) -> None:  # first Ctrl-C drains, the second aborts
        signal.signal(signal.SIGINT, previous)
        print("\ninterrupted: finishing the output (Ctrl-C again to abort)", file=sys.stderr)
        pipeline.stop(drain=True)

    signal.signal(signal.SIGINT, interrupt)
    try:
        with display or _nullcontext():
            stats = pipeline.run_with_progress(display.update if display else (lambda p: None))
    finally:
        signal.signal(signal.SIGINT, previous)
    src = pipeline.results("src") or {}
    if src.get("lost"):
        print(f"warning: input truncated or damaged: decoded {src['decoded']} of "
              f"{src['expected']} frames ({src['lost']} lost)", file=sys.stderr)
    if not args.quiet:
        print_summary(stats, pipeline.results("mux"), sys.stderr)
    if args.json:
        print(json.dumps(stats.to_dict(), default=str))
    return EXIT_OK


def cmd_probe(args: argparse.Namespace) -> int:
    from actors.encoders import probe
    from cluster.detect import detect_hardware

    results = probe()
    hardware = detect_hardware()
    if args.json:
        print(json.dumps({
            "hardware": hardware,
            "encoders": [{"backend": r.backend.value, "codec": r.codec.value,
                          "encoder": r.encoder, "available": r.available, "reason": r.reason}
                         for r in results]}, indent=2))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="encoders (each really opened and tried)")
    for col in ("backend", "codec", "encoder", "available", "why"):
        table.add_column(col)
    for r in results:
        table.add_row(r.backend.value, r.codec.value, r.encoder,
                      "[green]yes[/]" if r.available else "[red]no[/]", r.reason)
    console.print(table)
    for key, value in hardware.items():
        console.print(f"[bold]{key}[/]: {value if value not in ([], None) else 'none found'}")
    return EXIT_OK


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    sys.exit(main())
