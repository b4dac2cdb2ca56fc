"""The ``parallax`` command line: transcode, record, receive, serve and probe.

Exit codes: 0 success; 2 bad usage or bad input (one ``error:`` line, no
traceback); 1 a failure while running, naming the element; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from typing import Any, NoReturn

from actors.errors import ConfigError, MediaError, PipelineError
from actors.farm.packet_source import DEFAULT_CHUNK_DURATION
from actors.zenoh.link import DEFAULT_ENDPOINT

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} (see: {self.prog} --help)\n")


def positive_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key.strip(), value.strip()


def workers_count(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    return positive_int(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value


def add_latency_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--latency", choices=["normal", "low"], default="normal",
                   help="low: every frame encoded as it comes (x264/x265 zerolatency, no "
                        "B-frames) and a live source keeps at most 2 frames in flight")


def add_output_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output (MP4, fragmented MP4, HLS and Zenoh)")
    g.add_argument("--faststart", action="store_true",
                   help="MP4: put the index first, for playback while downloading (web); "
                        "off by default: it rewrites the file once more at the end")
    g.add_argument("--fragment-duration", type=positive_float, metavar="S",
                   help="seconds per fMP4 fragment; with .mp4 writes a fragmented MP4 "
                        "(default: 2 for .m3u8, 1 for zenoh:)")
    g.add_argument("--hls-mode", choices=["vod", "live"], default="vod",
                   help="vod keeps every segment; live keeps a sliding window")
    g.add_argument("--hls-window", type=positive_int, default=6, metavar="N",
                   help="live HLS: segments in the playlist (older files are deleted)")
    g.add_argument("--congestion", choices=["block", "drop"], default="block",
                   help="zenoh: block slows to the slowest receiver; drop loses segments")
    add_zenoh_options(p)


def add_zenoh_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("zenoh session (default: peer on loopback, no multicast)")
    g.add_argument("--zenoh-config", metavar="FILE",
                   help="zenoh JSON5 config (TLS, mTLS, user/password, ACLs); see README")
    g.add_argument("--connect", action="append", metavar="ENDPOINT",
                   help=f"endpoint to connect to, e.g. tcp/10.0.0.5:7447 (receivers "
                        f"default to {DEFAULT_ENDPOINT}); repeatable")
    g.add_argument("--listen", action="append", metavar="ENDPOINT",
                   help=f"endpoint to listen on (publishers default to {DEFAULT_ENDPOINT}); "
                        "repeatable")


def build_parser() -> Parser:
    parser = Parser(prog="parallax", description="Distributed media pipelines on Ray.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    t = sub.add_parser("transcode", help="decode, scale and encode to MP4, HLS or Zenoh",
                       description="Transcode INPUT (a file, or testsrc[:k=v,...]) to OUTPUT: "
                                   "a .mp4 file, a .m3u8 HLS playlist, zenoh:PREFIX, or null.")
    t.add_argument("paths", nargs="+", metavar="INPUT OUTPUT | INPUT... --output-dir DIR",
                   help="a file (or testsrc[:k=v,...]) and its output; with --output-dir, "
                        "any number of files, glob patterns or @list.txt")
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
    t.add_argument("--gop", type=positive_int,
                   help="frames between keyframes (default: one per fragment when fragmenting)")
    t.add_argument("--fps", type=float, help="output frame rate (drops or repeats frames)")
    add_latency_option(t)
    t.add_argument("--no-fuse", dest="fuse", action="store_false",
                   help="one host per element (default: scale, encode and mux share one)")
    g = t.add_argument_group("the farm (file inputs: chunks of GOPs on a pool of workers)")
    g.add_argument("--workers", type=workers_count, default="auto", metavar="N|auto",
                   help="chunk workers (default auto: one per CPU of the cluster's nodes)")
    g.add_argument("--chunk-duration", type=positive_float, default=None, metavar="S",
                   help="seconds per chunk; chunks start at keyframes (default "
                        f"{DEFAULT_CHUNK_DURATION:g})")
    g.add_argument("--worker-label", action="append", type=label, default=[],
                   metavar="KEY=VALUE", help="run workers only on nodes with this Ray label "
                   "(repeatable; hardware encoders add theirs by themselves)")
    g.add_argument("--output-dir", metavar="DIR",
                   help="transcode every INPUT to DIR/NAME.mp4 through one shared pool")
    g.add_argument("--resume", action="store_true",
                   help="with --output-dir: skip finished files and re-encode only the "
                        "chunks an interrupted run had not kept (DIR/.parallax/)")
    g.add_argument("--no-chunks", dest="chunks", action="store_false",
                   help="the linear pipeline: one decoder, one encoder (as for live inputs)")
    w = t.add_argument_group("where files live (default: the input is read and the output "
                             "written on the node where this command runs)")
    w.add_argument("--source-node", action="append", type=label, default=[],
                   metavar="KEY=VALUE", help="read INPUT on a node with this Ray label "
                   "(repeatable, all must match; INPUT is then an absolute path on that node, "
                   "checked there before anything starts)")
    w.add_argument("--output-node", action="append", type=label, default=[],
                   metavar="KEY=VALUE", help="write OUTPUT on a node with this Ray label "
                   "(repeatable; an absolute path on that node, whose directory is checked "
                   "there; -y cannot look at that disk: an existing output there is replaced)")
    a = t.add_argument_group("audio and other streams (default: keep every audio stream "
                             "the output can hold, copied if it can, else AAC)")
    a.add_argument("--audio", default="auto", metavar="auto|copy|aac|opus|none",
                   help="copy, encode to AAC or Opus, or drop the audio (default auto: copy "
                        "what the container takes, else AAC)")
    a.add_argument("--no-audio", dest="audio", action="store_const", const="none",
                   help="drop all audio (as --audio none)")
    a.add_argument("--audio-bitrate", metavar="RATE",
                   help="bits per second of each encoded audio stream, e.g. 192k "
                        "(default 128k per stereo pair)")
    a.add_argument("--audio-stream", default="all", metavar="N|all",
                   help="keep only the input's Nth audio stream (0 = first, as ffmpeg's "
                        "-map 0:a:N), or all (default)")
    a.add_argument("--strict", action="store_true",
                   help="a stream that cannot be kept is an error (exit 2), not a note")
    add_output_options(t)
    add_run_options(t)
    r = sub.add_parser("receive", help="receive a zenoh: stream into .mp4 or .m3u8",
                       description="Receive zenoh:PREFIX (published by transcode or record) "
                                   "into OUTPUT (.mp4 or .m3u8). Ends on the publisher's end "
                                   "of stream, --duration or Ctrl-C; the output is finalized "
                                   "in every case.")
    r.add_argument("input", metavar="zenoh:PREFIX")
    r.add_argument("output")
    r.add_argument("--duration", type=positive_float, metavar="S",
                   help="stop after S seconds")
    r.add_argument("--init-timeout", type=positive_float, default=30.0, metavar="S",
                   help="seconds to wait for the publisher (default 30)")
    r.add_argument("--idle-timeout", type=positive_float, default=30.0, metavar="S",
                   help="end when no segment arrives for S seconds (default 30)")
    r.add_argument("--hls-mode", choices=["vod", "live"], default="vod")
    r.add_argument("--hls-window", type=positive_int, default=6, metavar="N")
    add_zenoh_options(r)
    add_run_options(r)
    rc = sub.add_parser("record", help="record the screen to MP4, HLS or Zenoh",
                        description="Capture the screen (X11, via mss) and encode it to OUTPUT: "
                                    ".mp4, .m3u8 or zenoh:PREFIX. Ctrl-C or --duration stops "
                                    "it cleanly; the output is finalized and playable.")
    rc.add_argument("output")
    rc.add_argument("--fps", type=positive_float, default=30.0)
    rc.add_argument("--monitor", type=int, default=1, help="1 = first monitor, 0 = all")
    rc.add_argument("--region", type=region, metavar="X,Y,W,H")
    rc.add_argument("--width", type=positive_int)
    rc.add_argument("--height", type=positive_int)
    rc.add_argument("--codec", default="h264", help="h264, h265, av1 or vp9")
    rc.add_argument("--encoder", default="auto",
                    help="auto, software, nvenc, qsv, vaapi or v4l2m2m")
    rc.add_argument("--preset", help="encoder speed preset (default veryfast)")
    rc.add_argument("--duration", type=positive_float, metavar="S", help="stop after S seconds")
    rc.add_argument("--display", help="X display, e.g. :99 (default: $DISPLAY)")
    add_latency_option(rc)
    rc.add_argument("--max-stall", type=positive_float, default=5.0, metavar="S",
                    help="fail when the encoder and output finish nothing for S seconds "
                         "(a slow encoder only makes the capture drop frames evenly; "
                         "default 5)")
    add_output_options(rc)
    add_run_options(rc)
    v = sub.add_parser("serve", help="serve an HLS directory with a player page",
                       description="Serve DIR over HTTP with a player page (Media Source "
                                   "Extensions, or native HLS where the browser has it).")
    v.add_argument("dir")
    v.add_argument("--port", type=int, default=8000, help="default 8000; 0 picks a free one")
    v.add_argument("--bind", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p = sub.add_parser("probe", help="list encoder backends and the hardware found")
    p.add_argument("--json", action="store_true")
    from pipelines.cluster_status import add_parser as add_cluster_parser

    add_cluster_parser(sub)
    return parser


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-y", "--overwrite", action="store_true",
                   help="replace an existing output (without it, an existing output is an "
                        "error, as ffmpeg does when it cannot ask; not checked for an output "
                        "on another node, with --output-node)")
    p.add_argument("--json", action="store_true", help="print the final stats as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.add_argument("--stats", action="store_true",
                   help="live per-element table (fps, drops, credits, latency) each second")
    p.add_argument("--stats-json", action="store_true",
                   help="one JSON line of stats per second on stdout instead of the display")


def region(text: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    try:
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give X,Y,W,H in pixels, e.g. "
                                         "0,0,1280,720") from None
    return x, y, w, h


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from pipelines.cluster_status import cmd_cluster

    commands = {"probe": cmd_probe, "transcode": cmd_transcode, "receive": cmd_receive,
                "serve": cmd_serve, "record": cmd_record, "cluster": cmd_cluster}
    # With --json or --stats-json, stdout carries JSON only: whatever else would print
    # there (Ray forwards worker and raylet notices to the driver's stdout) goes to
    # stderr. A call from Python (argv given) gets its stdout back.
    redirect = getattr(args, "json", False) or getattr(args, "stats_json", False)
    with contextlib.ExitStack() as stack:
        args.json_out = sys.stdout
        if redirect:
            from pipelines.progress import stdout_for_json

            args.json_out = stack.enter_context(stdout_for_json(restore=argv is not None))
        return run_command(commands[args.command], args)


def run_command(command: Any, args: argparse.Namespace) -> int:
    try:
        return command(args)
    except (ConfigError, MediaError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def output_options(args: argparse.Namespace) -> Any:
    from actors.zenoh.link import ZenohOptions
    from pipelines.outputs import OutputOptions

    return OutputOptions(
        fragment_duration=getattr(args, "fragment_duration", None),
        faststart=getattr(args, "faststart", False), hls_mode=args.hls_mode,
        hls_window=args.hls_window, congestion=getattr(args, "congestion", "block"),
        zenoh=ZenohOptions.load(args.zenoh_config, args.connect, args.listen))


def cmd_transcode(args: argparse.Namespace) -> int:
    from pipelines.farm import FarmOptions
    from pipelines.transcode import (
        TranscodeOptions,
        build_transcode,
        parse_bitrate,
        transcode_path,
    )

    farm = FarmOptions(args.workers, args.chunk_duration or DEFAULT_CHUNK_DURATION,
                       worker_labels=tuple(args.worker_label)) if args.chunks else None
    pinned = bool(args.source_node or args.output_node)
    if args.output_dir or args.resume:
        if pinned:
            raise ConfigError("--source-node and --output-node take one INPUT OUTPUT, not "
                              "--output-dir (a batch reads and writes on this node)")
        return cmd_batch(args, farm)
    if len(args.paths) != 2:
        raise ConfigError(f"transcode takes INPUT OUTPUT (got {len(args.paths)} paths); for "
                          "many inputs, give --output-dir DIR")
    args.input, args.output = args.paths
    if not args.output_node:  # this machine's disk; another node's is not visible from here
        check_overwrite(args.output, args.overwrite)
    opts = TranscodeOptions(
        args.input, args.output, args.width, args.height, args.scale_algorithm, args.codec,
        args.encoder, args.preset, parse_bitrate(args.bitrate), args.crf, args.gop, args.fps,
        args.fuse, output_options(args), farm, audio_options(args), args.latency,
        tuple(args.source_node), tuple(args.output_node))
    if pinned:  # building finds the nodes and reads the input there: Ray first, quietly
        from pipelines.runtime.connection import ensure_ray

        ensure_ray(quiet=True)
    pipeline = build_transcode(opts, local=not os.environ.get("RAY_ADDRESS"))
    return run_pipeline(pipeline, args, "transcode", note=transcode_path(opts)[1],
                        extra=lambda: {"notes": pipeline.notes})


def check_overwrite(output: str, overwrite: bool) -> None:
    """An existing output file is replaced only when asked (-y), as with ffmpeg."""
    if output == "null" or output.startswith("zenoh:") or overwrite:
        return
    if os.path.exists(output):
        raise ConfigError(f"output {output!r} exists; pass -y/--overwrite to replace it")


def audio_options(args: argparse.Namespace) -> Any:
    from pipelines.audio import ALL, AudioOptions
    from pipelines.transcode import parse_bitrate

    stream = args.audio_stream.strip().lower()
    if stream != ALL:
        try:
            stream = int(stream)
        except ValueError:
            raise ConfigError(f"--audio-stream {args.audio_stream!r}: give N (0 = the first "
                              "audio stream) or all") from None
    bitrate = parse_bitrate(args.audio_bitrate, "--audio-bitrate")
    return AudioOptions(args.audio.strip().lower(), bitrate, stream, args.strict)


def cmd_batch(args: argparse.Namespace, farm: Any) -> int:
    from actors.media.encoders import VideoEncoderConfig
    from pipelines.batch import BatchOptions, batch_report, build_batch, expand_inputs
    from pipelines.progress import print_batch
    from pipelines.transcode import parse_bitrate

    if not args.output_dir:
        raise ConfigError("--resume needs --output-dir DIR (where the batch keeps its state)")
    if farm is None:
        raise ConfigError("--output-dir runs the farm; it cannot be combined with --no-chunks")
    paths = expand_inputs(args.paths)
    encoder = VideoEncoderConfig(codec=args.codec, backend=args.encoder, preset=args.preset,
                                 bitrate=parse_bitrate(args.bitrate), crf=args.crf,
                                 gop=args.gop)
    run = build_batch(paths, BatchOptions(args.output_dir, args.resume, audio_options(args)),
                      encoder, args.width,
                      args.height, args.scale_algorithm, args.fps, farm,
                      local=not os.environ.get("RAY_ADDRESS"))
    report: dict[str, Any] = {}

    def summary() -> dict[str, Any]:
        report.update(batch_report(run))
        return {"batch": report}

    if run.pipeline is not None:
        run_pipeline(run.pipeline, args, "batch", extra=summary,
                     note=f"batch: {len(paths)} file(s) through one pool")
    else:
        summary()
        if args.json:
            print(json.dumps({"batch": report}), file=args.json_out, flush=True)
    if not args.quiet:
        print_batch(report, sys.stderr)
    return EXIT_FAILED if report["failed"] else EXIT_OK


def cmd_record(args: argparse.Namespace) -> int:
    from pipelines.record import RecordOptions, build_record

    check_overwrite(args.output, args.overwrite)
    opts = RecordOptions(args.output, args.fps, args.monitor, args.region, args.width,
                         args.height, args.codec, args.encoder, args.preset, args.duration,
                         args.display, output_options(args), max_stall=args.max_stall,
                         latency=args.latency)
    # --duration counts capture ticks from the first frame, so Ray's start-up is not
    # part of the recording and the frame count is exact.
    return run_pipeline(build_record(opts), args, "record", live_stats=True, live=True)


def cmd_receive(args: argparse.Namespace) -> int:
    from actors.zenoh.zenoh_source import ZenohSource
    from pipelines.outputs import output_kind, segment_sink, zenoh_prefix
    from pipelines.runtime.pipeline import Pipeline

    prefix = zenoh_prefix(args.input)
    if prefix is None:
        raise ConfigError(f"input {args.input!r}: receive takes zenoh:PREFIX")
    if output_kind(args.output) not in ("mp4", "hls"):
        raise ConfigError(f"output {args.output!r}: receive writes .mp4 or .m3u8")
    check_overwrite(args.output, args.overwrite)
    opts = output_options(args)
    pipeline = Pipeline("receive")
    pipeline.add(ZenohSource(prefix, zenoh=opts.zenoh, init_timeout=args.init_timeout,
                             idle_timeout=args.idle_timeout), name="src")
    pipeline.add(segment_sink(args.output, opts), name="sink")
    pipeline.link("src", "sink")
    code = run_pipeline(pipeline, args, "receive", duration=args.duration, live=True)
    src = pipeline.results("src") or {}
    problems = {k: src.get(k) for k in ("gaps", "malformed", "mismatched", "bad_init",
                                        "foreign") if src.get(k)}
    if problems:  # the output holds what was good; the exit code says it is not all
        what = "the stream was damaged" if src.get("gaps") else \
            "samples were refused (the output holds every segment the publisher sent)"
        print(f"error: {what}: " + ", ".join(
            f"{v} {k.replace('_', ' ')}" for k, v in problems.items()), file=sys.stderr)
        return EXIT_FAILED if code == EXIT_OK else code
    return code


def run_pipeline(pipeline: Any, args: argparse.Namespace, title: str,
                 duration: float | None = None, live_stats: bool = False,
                 extra: Any = None, note: str | None = None, live: bool = False) -> int:
    """Run with a display; Ctrl-C or ``duration`` ends the stream so outputs finalize.

    Live jobs (record) show the per-element stats table by default, file jobs a progress
    bar; --stats and --stats-json choose the table or JSON lines for any job.
    """
    from pipelines.progress import LiveStatsDisplay, ProgressDisplay, print_summary
    from pipelines.runtime.connection import ensure_ray

    ensure_ray(quiet=True)
    if note:
        pipeline.prepare()  # placed and negotiated: an error here stays the only line
        if not args.quiet:
            for line in (note, *getattr(pipeline, "notes", ())):
                print(line, file=sys.stderr)
    display: Any = None
    if args.stats_json:
        display = LiveStatsDisplay(args.json_out, title, json_lines=True)
    elif args.quiet:
        display = None
    elif args.stats or live_stats:
        display = LiveStatsDisplay(sys.stderr, title)
    else:
        display = ProgressDisplay(sys.stderr, title)
    previous = signal.getsignal(signal.SIGINT)

    interrupted = threading.Event()

    def interrupt(signum: int, frame: Any) -> None:  # first Ctrl-C drains, the second aborts
        signal.signal(signal.SIGINT, previous)
        interrupted.set()
        print("\ninterrupted: finishing the output (Ctrl-C again to abort)", file=sys.stderr)
        pipeline.end_stream()

    signal.signal(signal.SIGINT, interrupt)
    timer = threading.Timer(duration, pipeline.end_stream) if duration else None
    try:
        with display or contextlib.nullcontext():
            if timer:
                timer.start()
            if isinstance(display, LiveStatsDisplay):
                stats = pipeline.run_with_stats(display.update)
            else:
                stats = pipeline.run_with_progress(display.update if display else
                                                   (lambda p: None))
    finally:
        if timer:
            timer.cancel()
        signal.signal(signal.SIGINT, previous)
    from pipelines.transcode import input_report

    src = input_report(pipeline)  # the source's own figures, unless a farm decoded them
    if src.get("lost"):
        print(f"warning: input truncated or damaged: decoded {src['decoded']} of "
              f"{src['expected']} frames ({src['lost']} lost)", file=sys.stderr)
    last = pipeline.sink_names()[-1]
    from pipelines.record import live_report

    live_source = pipeline.results(pipeline.source_names()[0]) or {}
    capture = live_report(live_source, stats)
    if not args.quiet and not args.stats_json:
        print_summary(stats, pipeline.results(last), sys.stderr)
        if capture:
            print(capture, file=sys.stderr)
    if args.json:
        more = {"capture": live_source} if capture else {}
        print(json.dumps({**stats.to_dict(), **more, **(extra() if extra else {})},
                         default=str), file=args.json_out, flush=True)
    elif extra:
        extra()
    # A file job cut short says so; for live jobs (record, receive) Ctrl-C is the way to
    # stop, and what was captured is complete.
    return EXIT_INTERRUPTED if interrupted.is_set() and not live else EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from pipelines.serve import serve

    return serve(args.dir, args.port, args.bind)


def cmd_probe(args: argparse.Namespace) -> int:
    from actors.media.encoders import probe
    from cluster.detect import detect_hardware

    results = probe()
    hardware = detect_hardware()
    if args.json:
        print(json.dumps({
            "hardware": hardware,
            "encoders": [{"backend": r.backend.value, "codec": r.codec.value,
                          "encoder": r.encoder, "available": r.available, "reason": r.reason}
                         for r in results]}, indent=2), file=args.json_out)
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


if __name__ == "__main__":
    sys.exit(main())
