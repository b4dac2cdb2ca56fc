"""Screen capture at 1920x1080 -> 720p -> libx264 (veryfast), as `parallax record` runs it.

For each configuration, one run of ``seconds``: the machine idle or deliberately loaded
(CPU hogs started here, one per core, stopped after the run), and ``--latency normal`` or
``low``. Prints requested and kept fps, the share of captures dropped, the longest freeze
(most time between two kept captures), capture-to-encoded latency (p50, p99, measured
where encoded packets arrive, on frames carrying their capture time), and with
``--adapt resolution`` how often the size changed and the smallest it went to (the
default ``framerate``, and ``off``, for comparison). Needs Xvfb and xsetroot.

    python bench/record.py [seconds]
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pipelines.record import RecordOptions, build_record  # noqa: E402
from pipelines.runtime.connection import ensure_ray  # noqa: E402

HOG = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end: pass"


def run(display: str, seconds: float, fps: float, latency: str, loaded: bool,
        adapt: str = "framerate") -> dict:
    hogs = []
    if loaded:  # one busy process per core, bounded in time whatever happens here
        hogs = [subprocess.Popen([sys.executable, "-c", HOG.format(s=seconds + 30)])
                for _ in range(os.cpu_count() or 1)]
    try:
        p = build_record(RecordOptions("null", fps=fps, height=720, duration=seconds,
                                       display=display, encoder="software", latency=latency,
                                       adapt=adapt))
        stats = p.run()
    finally:
        for h in hogs:
            h.kill()
    src, enc = p.results("src"), stats.elements["mux"]  # where encoded packets arrive
    lowest = min((c["scale"] for c in src["resolution_changes"]), default=1.0)
    return {**src, "p50": enc.e2e_latency_ms, "p99": enc.e2e_latency_p99_ms,
            "changes": len(src["resolution_changes"]), "lowest": lowest}


def main(seconds: float = 10.0, fps: float = 30.0) -> None:
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "1920x1080x24",
                             "-nolisten", "tcp"], stdout=subprocess.PIPE, text=True)
    display = ":" + xvfb.stdout.readline().strip()
    stop = threading.Event()

    def paint() -> None:  # changing content, as a real desktop has
        i = 0
        while not stop.wait(0.2):
            subprocess.run(["xsetroot", "-display", display, "-solid",
                            ["#204080", "#806020", "#208040"][i % 3]], check=False)
            i += 1

    painter = threading.Thread(target=paint, daemon=True)
    painter.start()
    rows = []
    try:
        ensure_ray(quiet=True)
        for loaded in (False, True):
            for latency, adapt in (("normal", "framerate"), ("low", "framerate"),
                                   ("normal", "resolution"), ("normal", "off")):
                r = run(display, seconds, fps, latency, loaded, adapt)
                rows.append((("loaded" if loaded else "idle"), latency, adapt, r))
    finally:
        stop.set()
        xvfb.terminate()
    print(f"1920x1080 capture -> 1280x720 libx264 veryfast, {fps:g} fps requested, "
          f"{seconds:g} s per run, {os.cpu_count()} cores")
    print(f"{'machine':8} {'latency':8} {'adapt':10} {'kept fps':>9} {'dropped':>8} "
          f"{'freeze s':>9} {'p50 ms':>7} {'p99 ms':>7} {'sizes':>6} {'lowest':>6}")
    for machine, latency, adapt, r in rows:
        print(f"{machine:8} {latency:8} {adapt:10} {r['kept_fps']:9.1f} "
              f"{r['dropped_pct']:7.1f}% {r['longest_freeze_s']:9.2f} {r['p50'] or 0:7.0f} "
              f"{r['p99'] or 0:7.0f} {r['changes']:6d} {r['lowest']:6g}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)
