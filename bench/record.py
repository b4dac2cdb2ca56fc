"""Screen capture at 1920x1080 -> 720p -> libx264 (veryfast), as `parallax record` runs it.

Prints the fps reached, the share of captures dropped, and capture-to-encoded latency
(p50, p99, measured at the sink on packets carrying the frame's capture time), against
the seed's bar of > 15 fps at 720p. Needs Xvfb and xsetroot.

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
    try:
        ensure_ray(quiet=True)
        p = build_record(RecordOptions("null", fps=fps, height=720, duration=seconds,
                                       display=display, encoder="software"))
        stats = p.run()
    finally:
        stop.set()
        xvfb.terminate()
    src, sink = p.results("src"), stats.elements["mux"]
    ticks = src["ticks"]
    lost = stats.elements["src"].drops + src["missed"]  # drops include skipped captures
    print(f"1920x1080 capture -> 1280x720 libx264 veryfast, {fps:g} fps target, {seconds:g} s")
    print(f"encoded {sink.buffers_in} frames: {sink.buffers_in / seconds:.1f} fps "
          f"(seed bar: > 15 fps)")
    print(f"dropped {lost} of {ticks} captures ({100 * lost / max(ticks, 1):.1f}%): "
          f"{src['skipped']} skipped while busy, {src['missed']} missed ticks")
    print(f"capture -> encoded latency: p50 {sink.e2e_latency_ms:.0f} ms, "
          f"p99 {sink.e2e_latency_p99_ms:.0f} ms")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)
