"""Start-up of `parallax transcode FILE OUT` on the embedded local Ray, phase by phase.

Each run is a fresh process (a fresh Ray), as a user runs the command; configurations
alternate within each repetition, and the table shows medians. Phases, in seconds from
the moment the process was spawned:

  import      Python up and pipelines.cli + pipelines.transcode imported
  build       arguments parsed, pipeline built (the input is opened once to check it)
  ray.init    ensure_ray(): the embedded Ray started and this process connected
  prepare     actors placed and started, caps negotiated, edges connected (READY)
  play        play sent to every host (PLAYING)
  1st frame   the source has sent its first item: the first frame (linear pipeline) or
              the first chunk of frames handed to a farm worker
  1st output  the first encoded frame reached the muxer (for the farm: the first whole
              chunk transcoded)
  done        the job finished (cli.main returned)
  exit        the process ended (Ray shut down: by the command, as cli.command_line does,
              or, for ``before``, by Ray's exit hook)
  cpu@1st     CPU seconds used by this process and every process it started, up to the
              first frame: what the start-up costs, independent of other load

The anchor is the ffmpeg CLI doing the same job (total wall time).

Configurations: ``before`` is ensure_ray() as it was (plain ray.init()), ``after`` is
pipelines.runtime.connection.ensure_ray() as it is. ``--knobs`` adds ``after`` with one
LocalRayOptions setting put back to Ray's default, to show what each is worth.

Run: python bench/startup.py [--reps 5] [--knobs] [--input /tmp/in20.mp4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FFMPEG_INPUT = ["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-t", "20",
                "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", "60"]

# One LocalRayOptions field back to Ray's default (relative to the lean default).
KNOBS: dict[str, dict[str, object]] = {
    "after+dashboard": {"dashboard": True},
    "after+autoscaler": {"autoscaler": True},
    "after+logmon@start": {"log_monitor_delay": 0},
    "after-logmon": {"log_monitor_delay": None},
    "after-prestart": {"worker_prestart": False},
    "after+port52365": {"dynamic_agent_port": False},
    "after+agents": {"agents": True},
    "after-loopback": {"loopback": False},
    "after-preload": {"preload": ()},
}
PHASES = ["import", "build", "ray.init", "prepare", "play", "1st frame", "1st output",
          "done", "exit", "cpu@1st"]


# -- the child: one run of the CLI, instrumented --------------------------------------
def child(config: str, t0: float, out_path: str, cli_args: list[str]) -> None:
    marks: dict[str, object] = {"python_up": time.time() - t0}

    def mark(key: str) -> None:
        marks.setdefault(key, time.time() - t0)

    import logging
    import threading

    import ray

    import pipelines.cli as cli
    import pipelines.transcode  # noqa: F401  (cmd_transcode imports it; count it here)
    from pipelines.runtime import connection
    from pipelines.runtime import pipeline as pl

    mark("import")
    import psutil  # Ray's vendored copy, on the path once ray is imported

    me = psutil.Process()

    def cpu_tree() -> dict[str, float]:
        cpu: dict[str, float] = {}
        for p in [me, *me.children(recursive=True)]:
            try:
                name = "driver" if p.pid == me.pid else p.name()
                if name == "python":  # Ray's Python daemons: name them by their script
                    script = next((a for a in p.cmdline() if a.endswith(".py")), "python")
                    name = os.path.basename(script)[:-3]
                t = p.cpu_times()
                cpu[name] = cpu.get(name, 0.0) + t.user + t.system
            except psutil.Error:
                pass
        return cpu

    def legacy_ensure_ray(address=None, num_cpus=None, quiet=False):  # the code before
        if ray.is_initialized():
            return
        if quiet:
            logging.getLogger("ray").setLevel(logging.ERROR)
        ray.init(num_cpus=num_cpus, logging_level=logging.ERROR if quiet else logging.INFO,
                 include_dashboard=False, namespace="parallax",
                 _node_ip_address=connection.LOOPBACK,
                 _system_config={"free_objects_period_milliseconds":
                                 connection.FREE_OBJECTS_PERIOD_MS},
                 log_to_driver=True)

    def knob_ensure_ray(address=None, num_cpus=None, quiet=False):
        if ray.is_initialized():
            return
        if quiet:
            logging.getLogger("ray").setLevel(logging.ERROR)
        from dataclasses import replace
        connection.start_local_ray(num_cpus, quiet,
                                   options=replace(connection.LEAN, **KNOBS[config]))

    chosen = {"before": legacy_ensure_ray, "after": connection.ensure_ray}.get(
        config, knob_ensure_ray)

    def timed_ensure_ray(*args, **kwargs):
        mark("build")
        chosen(*args, **kwargs)
        mark("ray.init")

    connection.ensure_ray = timed_ensure_ray  # cli.run_pipeline imports it at call time

    prepare, start = pl.Pipeline.prepare, pl.Pipeline.start

    def timed_prepare(self):
        result = prepare(self)
        mark("prepare")
        return result

    def timed_start(self):
        result = start(self)
        mark("play")
        src = self._hosts[self._host_of["src"]]
        sink = self.sink_names()[-1]
        sink_host = self._hosts[self._host_of[sink]]

        def watch() -> None:
            try:
                while ray.get(src.stats.remote(), timeout=30)["elements"]["src"][
                        "buffers_out"] == 0:
                    time.sleep(0.01)
                mark("1st frame")
                marks["cpu@1st"] = cpu_tree()
                while ray.get(sink_host.stats.remote(), timeout=30)["elements"][sink][
                        "buffers_in"] == 0:
                    time.sleep(0.01)
                mark("1st output")
            except Exception as exc:
                marks["watch_error"] = repr(exc)

        threading.Thread(target=watch, daemon=True).start()
        return result

    pl.Pipeline.prepare, pl.Pipeline.start = timed_prepare, timed_start
    marks["rc"] = cli.main(cli_args)
    mark("done")
    marks["cpu"] = cpu_tree()
    marks["processes"] = sorted(marks["cpu"])
    with open(out_path, "w") as f:
        json.dump(marks, f)
    if config != "before":  # as the parallax command ends (cli.command_line)
        connection.shutdown_ray()


# -- the parent ----------------------------------------------------------------------
def run_child(config: str, cli_args: list[str]) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    t0 = time.time()
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", config,
                           "--t0", repr(t0), "--out", out, "--", *cli_args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    exit_s = time.time() - t0
    try:
        with open(out) as f:
            marks = json.load(f)
        os.unlink(out)
    except (OSError, ValueError):
        marks = {}
    if proc.returncode != 0 or marks.get("rc") != 0:
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    marks["exit"] = exit_s
    return marks


def run_ffmpeg(src: str, dst: str) -> float:
    t0 = time.time()
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-i", src, "-vf",
                    "scale=-2:720:flags=bilinear", "-c:v", "libx264", "-preset", "veryfast",
                    dst], check=True)
    return time.time() - t0


def phase_values(m: dict) -> dict[str, float]:
    out = {k: m[k] for k in PHASES if k in m and k != "cpu@1st"}
    if "cpu@1st" in m:
        out["cpu@1st"] = sum(m["cpu@1st"].values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--input", default="/tmp/in20.mp4")
    ap.add_argument("--knobs", action="store_true", help="also each knob on its own")
    ap.add_argument("--configs", help="comma-separated subset, e.g. before,after")
    ap.add_argument("--no-ffmpeg", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("cli_args", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.t0, args.out, args.cli_args)
        return

    if not os.path.exists(args.input):
        print(f"making {args.input} (20 s of 1080p30 H.264 High, B-frames)", flush=True)
        subprocess.run(["ffmpeg", "-v", "error", "-y", *FFMPEG_INPUT, args.input], check=True)
    tmp = tempfile.mkdtemp(prefix="parallax-startup-")
    cli_args = ["transcode", args.input, os.path.join(tmp, "out.mp4"), "-y", "--height", "720",
                "--quiet"]
    configs = ["before", "after", *(KNOBS if args.knobs else [])]
    if args.configs:
        configs = args.configs.split(",")
    if not args.no_ffmpeg:
        configs.append("ffmpeg")
    results: dict[str, list[dict]] = {c: [] for c in configs}
    errors: dict[str, list[str]] = {c: [] for c in configs}
    for rep in range(args.reps):
        order = configs if rep % 2 == 0 else configs[::-1]
        for config in order:
            if config == "ffmpeg":
                m = {"exit": run_ffmpeg(args.input, os.path.join(tmp, "ffmpeg.mp4"))}
            else:
                m = run_child(config, cli_args)
            if "error" in m:
                errors[config].append(m["error"])
                print(f"rep {rep + 1} {config}: FAILED {m['error']}", flush=True)
                continue
            results[config].append(m)
            vals = phase_values(m)
            print(f"rep {rep + 1} {config:>20}: " + "  ".join(
                f"{k} {v:.2f}" for k, v in vals.items()), flush=True)
            if "cpu@1st" in m:
                print(" " * 29 + "cpu s to 1st frame: " + ", ".join(
                    f"{k} {v:.2f}" for k, v in sorted(m["cpu@1st"].items())), flush=True)

    print(f"\nMedians in seconds from process start ({args.reps} repetitions; phase "
          "ends, except cpu@1st); load average "
          + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    print(f"{'config':>20} {'n':>2} " + " ".join(f"{p:>10}" for p in PHASES))
    for config in configs:
        runs = results[config]
        if not runs:
            print(f"{config:>20}  0  (all failed: {errors[config][:1]})")
            continue
        cells = []
        for p in PHASES:
            vals = [phase_values(m)[p] for m in runs if p in phase_values(m)]
            cells.append(f"{statistics.median(vals):10.2f}" if vals else f"{'-':>10}")
        print(f"{config:>20} {len(runs):>2} " + " ".join(cells))
    print("\nCPU seconds by process up to the first frame (medians):")
    for config in configs:
        runs = [m for m in results[config] if "cpu@1st" in m]
        if runs:
            names = sorted({k for m in runs for k in m["cpu@1st"]})
            print(f"{config:>20}: " + ", ".join(
                f"{k} {statistics.median(m['cpu@1st'].get(k, 0.0) for m in runs):.2f}"
                for k in names))


if __name__ == "__main__":
    main()
