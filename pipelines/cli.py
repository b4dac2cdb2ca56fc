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
from typing import Any

from actors.errors import ConfigError, MediaError, PipelineError
from actors.farm.packet_source import DEFAULT_CHUNK_DURATION
from pipelines.cli_parser import EXIT_USAGE, build_parser

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # as a shell reports a process SIGTERM ended


class Terminated(BaseException):
    """SIGTERM (a scheduler, `ray job stop`, `timeout`): the run ends as at a second
    Ctrl-C, at once, and what was not finished is removed. Not an Exception, so that no
    handler of errors takes it for one."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


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


def command_line() -> int:
    """main() as the ``parallax`` command runs it, then Ray's end, at once.

    Left to its exit hook, Ray waits half a second for the last forwarded actor output
    before it disconnects; elements' warnings come with their stats
    (runtime/host_log.py), so there is nothing left to wait for.
    """
    signal.signal(signal.SIGTERM, _terminate)  # ensure_ray keeps it past Ray's own
    try:
        return main()
    except Terminated:  # landed outside a command (parsing, or Ray's exit)
        print("error: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        if "ray" in sys.modules:  # a usage error exits before Ray is even imported
            from pipelines.runtime.connection import shutdown_ray

            shutdown_ray()


def run_command(command: Any, args: argparse.Namespace) -> int:
    try:
        return command(args)
    except (ConfigError, MediaError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # the driver's own files: a full disk, a file gone meanwhile
        where = f": {exc.filename!r}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("error: terminated", file=sys.stderr)
        return EXIT_TERMINATED


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
        check_overwrite(args.output, args.overwrite, (args.input,))
    opts = TranscodeOptions(
        args.input, args.output, args.width, args.height, args.scale_algorithm, args.codec,
        args.encoder, args.preset, parse_bitrate(args.bitrate), args.crf, args.gop, args.fps,
        args.fuse, output_options(args), farm, audio_options(args), args.latency,
        tuple(args.source_node), tuple(args.output_node), args.max_restarts, args.adapt)
    if pinned:  # building finds the nodes and reads the input there: Ray first, quietly
        from pipelines.runtime.connection import ensure_ray

        ensure_ray(quiet=True)
    pipeline = build_transcode(opts, local=not os.environ.get("RAY_ADDRESS"))
    return run_pipeline(pipeline, args, "transcode", note=transcode_path(opts)[1],
                        extra=lambda: {"notes": pipeline.notes})


def check_overwrite(output: str, overwrite: bool, inputs: tuple[str, ...] = ()) -> None:
    """An existing output file is replaced only when asked (-y), as with ffmpeg, and never
    when it is a directory or one of the inputs (-y or not, as ffmpeg refuses too)."""
    if output == "null" or output.startswith("zenoh:"):
        return
    from actors.media.muxing import check_output_path

    check_output_path(output, inputs)
    if overwrite:
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
    run = build_batch(paths, BatchOptions(args.output_dir, args.resume, audio_options(args),
                                   args.overwrite),
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
        print_final(args, summary())  # every file failed before a pool was needed
    if not args.quiet:
        print_batch(report, sys.stderr)
    else:  # quiet is not silent: what failed, and why, still shows
        for path in report["failed"]:
            print(f"error: {path}: {report['files'][path].get('reason')}", file=sys.stderr)
    return EXIT_FAILED if report["failed"] else EXIT_OK


def cmd_record(args: argparse.Namespace) -> int:
    from pipelines.record import RecordOptions, build_record

    check_overwrite(args.output, args.overwrite)
    opts = RecordOptions(args.output, args.fps, args.monitor, args.region, args.width,
                         args.height, args.codec, args.encoder, args.preset, args.duration,
                         args.display, output_options(args), max_stall=args.max_stall,
                         latency=args.latency, max_restarts=args.max_restarts,
                         adapt=args.adapt)
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
                             idle_timeout=args.idle_timeout,
                             idle_timeout_option="--idle-timeout"), name="src")
    pipeline.add(segment_sink(args.output, opts), name="sink")
    pipeline.link("src", "sink")
    code = run_pipeline(pipeline, args, "receive", duration=args.duration, live=True,
                        extra=lambda: {"zenoh": pipeline.results("src") or {}})
    src = pipeline.results("src") or {}
    if publisher_report(src, prefix, args):
        code = EXIT_FAILED if code == EXIT_OK else code
    problems = {k: src.get(k) for k in ("gaps", "malformed", "mismatched", "bad_init",
                                        "foreign") if src.get(k)}
    if problems:  # the output holds what was good; the exit code says it is not all
        what = "the stream was damaged" if src.get("gaps") else \
            "samples were refused (the output holds every segment the publisher sent)"
        print(f"error: {what}: " + ", ".join(
            f"{v} {k.replace('_', ' ')}" for k, v in problems.items()), file=sys.stderr)
        return EXIT_FAILED if code == EXIT_OK else code
    return code


def publisher_report(src: dict[str, Any], prefix: str, args: argparse.Namespace) -> bool:
    """Say what became of a publisher that went away; True when the receive failed for it."""
    if src.get("ended") == "publisher lost":
        # Not an end the user asked for (EOS, --duration, Ctrl-C): a supervisor should
        # hear of it, as of any input that broke off. The output is finalized all the same.
        print(f"error: the publisher of zenoh:{prefix} went away at "
              f"{src.get('publisher_lost_at', '?')} without ending the stream and none came "
              f"back within {args.idle_timeout:g} s (--idle-timeout); {args.output} holds "
              "what was received until then", file=sys.stderr)
        return True
    if src.get("publisher_resumed") and not args.quiet:
        gaps = ", ".join(f"{g:.1f} s" for g in src.get("publisher_gaps_s", []))
        print(f"note: the publisher of zenoh:{prefix} went away {src['publisher_lost']} "
              f"time(s) and came back (waited {gaps}); the output goes on across it",
              file=sys.stderr)
    elif src.get("publisher_lost") and not args.quiet:
        print(f"warning: the publisher of zenoh:{prefix} went away at "
              f"{src.get('publisher_lost_at', '?')} and had not come back when the receive "
              "stopped", file=sys.stderr)
    return False


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
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    interrupted = threading.Event()

    def interrupt(signum: int, frame: Any) -> None:  # first Ctrl-C drains, the second aborts
        for s, handler in previous.items():
            signal.signal(s, handler)
        interrupted.set()
        what, again = (("interrupted", "Ctrl-C") if signum == signal.SIGINT
                       else ("terminated (SIGTERM)", "SIGTERM"))
        print(f"\n{what}: finishing the output ({again} again to abort)", file=sys.stderr)
        pipeline.end_stream()

    signal.signal(signal.SIGINT, interrupt)
    if live:  # a recording stopped by its service manager is finished, as by Ctrl-C; a
        # file job is ended at once (Terminated), what it had written removed
        signal.signal(signal.SIGTERM, interrupt)
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
    except PipelineError as exc:
        if args.json:  # a failed run's figures too (restarts, what was lost), and why
            print(json.dumps({**pipeline.stats().to_dict(), "error": str(exc)}, default=str),
                  file=args.json_out, flush=True)
        raise
    finally:
        if timer:
            timer.cancel()
        for s, handler in previous.items():
            signal.signal(s, handler)
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
    more = {"capture": live_source} if capture else {}
    print_final(args, {**stats.to_dict(), **more, **(extra() if extra else {})})
    # A file job cut short says so; for live jobs (record, receive) Ctrl-C is the way to
    # stop, and what was captured is complete.
    return EXIT_INTERRUPTED if interrupted.is_set() and not live else EXIT_OK


def print_final(args: argparse.Namespace, final: dict[str, Any]) -> None:
    """The job's final report on stdout: alone with --json; with --stats-json as the last
    line, marked, so a reader of the stream gets the job's own report (a batch's files,
    the notes) and not only the periodic figures."""
    if args.json:
        print(json.dumps(final, default=str), file=args.json_out, flush=True)
    elif args.stats_json:
        print(json.dumps({"final": True, **final}, default=str), file=args.json_out,
              flush=True)


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
    sys.exit(command_line())
