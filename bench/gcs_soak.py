"""GCS memory over a live soak: does the GCS grow with every item pushed?

Runs ``parallax transcode testsrc:live=1,size=1280x720,rate=30,duration=D null`` on the
embedded Ray and samples the GCS's resident memory (VmRSS of the gcs_server this run
started) every ``--every`` seconds. To compare with the code before push calls stopped
recording task events, run it with PYTHONPATH set to a checkout of that commit (Ray's
workers import the host class from there; a flag in this process would not reach them):

    python bench/gcs_soak.py --duration 600
    PYTHONPATH=/tmp/before python /tmp/before/bench/gcs_soak.py --duration 600

``--items N`` instead pushes N small items as fast as they go through two unfused edges
(source, pass-through, sink) and reports the GCS's growth per push call.

Prints one line per sample and the growth per second and per frame (30 a second: the
source is paced live), from the second sample on, so that start-up is left out.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.runtime.host import ElementHost


def gcs_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def gcs_pid(timeout: float = 120) -> int:
    import ray

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node = getattr(ray._private.worker, "_global_node", None)
        procs = getattr(node, "all_processes", {}) if node is not None else {}
        if procs.get("gcs_server"):
            return procs["gcs_server"][0].process.pid
        time.sleep(0.1)
    raise RuntimeError("no embedded GCS appeared")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=180, help="seconds of live input")
    ap.add_argument("--every", type=float, default=15, help="seconds between samples")
    ap.add_argument("--items", type=int, help="push this many items instead of the soak")
    args = ap.parse_args()
    if args.items:
        burst(args.items)
        return
    from pipelines import cli

    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        pid = gcs_pid()
        t0 = time.monotonic()
        while not done.is_set():
            try:
                rss = gcs_rss_kib(pid)
            except OSError:
                return
            samples.append((time.monotonic() - t0, rss))
            print(f"  t={samples[-1][0]:6.0f} s  GCS RSS {rss / 1024:7.1f} MiB", flush=True)
            done.wait(args.every)

    threading.Thread(target=sample, daemon=True).start()
    source = f"testsrc:live=1,size=1280x720,rate=30,duration={args.duration:g}"
    try:
        code = cli.main(["transcode", source, "null", "--preset", "ultrafast", "--json"])
    finally:
        done.set()
        report(samples, ElementHost.push)
    print(f"exit {code}")


def burst(items: int) -> None:
    from actors.testing import CollectSink, ListSource, StallingPassThrough
    from pipelines.runtime.connection import ensure_ray
    from pipelines.runtime.pipeline import Pipeline

    def run(count: int) -> float:
        p = Pipeline("burst", fusion=False)
        p.add(ListSource(list(range(count))), name="src")
        p.add(StallingPassThrough(), name="mid")
        p.add(CollectSink(keep=False), name="sink")
        p.link("src", "mid")
        p.link("mid", "sink")
        t0 = time.monotonic()
        p.run(timeout=3600)
        return time.monotonic() - t0

    ensure_ray(quiet=True)
    pid = gcs_pid()
    run(500)  # warm up: workers started, the GCS's tables in use
    time.sleep(3)
    before = gcs_rss_kib(pid)
    took = run(items)
    time.sleep(3)  # task events reach the GCS about once a second
    after = gcs_rss_kib(pid)
    print(f"{items} items over 2 edges in {took:.0f} s: GCS RSS {before / 1024:.1f} -> "
          f"{after / 1024:.1f} MiB, {(after - before) * 1024 / (2 * items):.0f} B per push")


def report(samples: list[tuple[float, int]], push: object) -> None:
    events = getattr(push, "__ray_enable_task_events__", True)
    print(f"task events for push calls: {'on' if events else 'off'}")
    if len(samples) >= 3:
        (t_a, first), (t_b, last) = samples[1], samples[-1]  # start-up excluded
        per_s = (last - first) * 1024 / (t_b - t_a)
        print(f"GCS RSS {first / 1024:.1f} -> {last / 1024:.1f} MiB over {t_b - t_a:.0f} s: "
              f"{per_s / 1024:+.1f} KiB/s, {per_s / 30:+.0f} B per frame at 30 fps")


if __name__ == "__main__":
    main()
