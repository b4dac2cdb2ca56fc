"""What a restart costs a live stream: SIGKILL the encoder, or the writer, of a live HLS
transcode (1080p test pattern -> 720p x264 veryfast, 1 s fragments) and measure, per kill:

- replace: the driver's figure, from noticing the death to the replacement playing;
- next segment: from the SIGKILL to the first segment the playlist lists after it;
- missing: seconds of the stream the playlist lacks at the end (it should hold them all).

    python bench/restart.py [trials]
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from actors.streaming.hls import parse_playlist  # noqa: E402
from pipelines.outputs import OutputOptions  # noqa: E402
from pipelines.runtime.connection import ensure_ray  # noqa: E402
from pipelines.transcode import TranscodeOptions, build_transcode  # noqa: E402

SECONDS = 12
KILL_AT_S = 5.0


def listed(path: str) -> list:
    try:
        with open(path) as f:
            return parse_playlist(f.read()).segments
    except (OSError, ValueError):
        return []


def trial(victim: str, folder: str) -> dict:
    out = os.path.join(folder, f"{victim}.m3u8")
    p = build_transcode(TranscodeOptions(
        input=f"testsrc:duration={SECONDS},live=1", output=out, farm=None,
        out=OutputOptions(fragment_duration=1.0), encoder="software"))
    p.start()
    time.sleep(KILL_AT_S)
    host = next(h for h in p._hosts if victim in h.split("+"))
    before = len(listed(out))
    killed = time.monotonic()
    os.kill(p._node_of[host]["pid"], signal.SIGKILL)
    next_segment = None
    while next_segment is None and time.monotonic() - killed < 30:
        if len(listed(out)) > before:
            next_segment = time.monotonic() - killed
        time.sleep(0.02)
    stats = p.wait(timeout=120)
    (event,) = stats.restart_events
    return {"replace": event["gap_s"], "next": next_segment,
            "missing": SECONDS - sum(s.duration for s in listed(out))}


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    ensure_ray(quiet=True)
    with tempfile.TemporaryDirectory() as folder:
        for victim in ("encode", "mux"):
            runs = [trial(victim, folder) for _ in range(trials)]
            fig = {k: [r[k] for r in runs] for k in runs[0]}
            print(f"{victim:7s} killed, {trials} trials: "
                  + ", ".join(f"{k} median {statistics.median(v):.2f} s "
                              f"(max {max(v):.2f})" for k, v in fig.items()), flush=True)


if __name__ == "__main__":
    main()
