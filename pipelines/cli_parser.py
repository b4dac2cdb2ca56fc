"""The ``parallax`` command's arguments: the parser, its option groups and value types.

Kept apart from pipelines/cli.py, which runs the commands, so that each stays readable.
"""

from __future__ import annotations

import argparse
import math
from typing import NoReturn

from actors.farm.packet_source import DEFAULT_CHUNK_DURATION
from actors.zenoh.link import DEFAULT_ENDPOINT

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        if message.endswith("expected one argument"):  # --bitrate -5M: read as an option
            flag = message.split(":")[0].removeprefix("argument ").split("/")[-1]
            message += f"; a value that starts with '-' is written {flag}=VALUE"
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
    if not 0 < value < math.inf:  # nan fails both
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number more than 0")
    return value


def add_latency_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--latency", choices=["normal", "low"], default="normal",
                   help="low: every frame encoded as it comes (x264/x265 zerolatency, no "
                        "B-frames) and a live source keeps at most 2 frames in flight")


def add_adapt_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--adapt", choices=["framerate", "resolution", "off"], default="framerate",
                   help="live sources, when the encoder cannot keep up: drop frames evenly "
                        "(framerate, the default), encode a smaller picture in steps and go "
                        "back up when there is room (resolution; .m3u8 and zenoh: outputs), "
                        "or drop whatever finds no room (off)")


def add_restart_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-restarts", type=non_negative_int, default=3, metavar="N",
                   help="live sources: an element whose process dies is replaced and the "
                        "stream goes on, up to N times a minute (default 3; 0: the first "
                        "death ends the run, as it always does for file inputs)")


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


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
    add_adapt_option(t)
    add_restart_option(t)
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
                   help="end when no segment arrives for S seconds, or when a publisher "
                        "that went away has not come back within S seconds (default 30)")
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
    add_adapt_option(rc)
    add_restart_option(rc)
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
                   help="one JSON line of stats per second on stdout instead of the "
                        "display; the last line is what --json prints, with \"final\": true")


def region(text: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    try:
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give X,Y,W,H in pixels, e.g. "
                                         "0,0,1280,720") from None
    return x, y, w, h
