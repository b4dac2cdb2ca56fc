"""Zenoh transport and fMP4 muxing costs.

1. Latency from segment produced (put) to segment received, p50/p99, over loopback between
   two processes, with the same publisher/subscriber set-up as ZenohSink/ZenohSource.
2. Throughput in MB/s for 1 MB segments (BLOCK, so nothing is lost).
3. fMP4 muxing (FragmentedMp4Mux) against progressive MP4 (Mp4Mux), per frame.

    python bench/zenoh_stream.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from actors.zenoh.link import ZenohOptions  # noqa: E402

ENDPOINT = "tcp/127.0.0.1:17555"


def subscriber(count: int) -> None:
    import zenoh
    import zenoh.ext as zx

    session = ZenohOptions(connect=(ENDPOINT,)).open("subscriber")
    lat, done, sizes = [], threading.Event(), []
    first = [None]

    def on_sample(sample: object) -> None:
        now = time.time()
        meta = json.loads(sample.attachment.to_bytes())
        first[0] = first[0] or now
        lat.append(now - meta["t"])
        sizes.append(len(sample.payload))
        if len(lat) >= count:
            done.set()

    sub = zx.declare_advanced_subscriber(session, "bench/segment",
                                         zenoh.handlers.Callback(on_sample, indirect=False))
    print("ready", flush=True)
    done.wait(120)
    elapsed = time.time() - first[0]
    print(json.dumps({"lat": lat, "bytes": sum(sizes), "elapsed": elapsed}), flush=True)
    sub.undeclare()
    session.close()


def transport(size: int, count: int, interval: float) -> dict:
    import zenoh
    import zenoh.ext as zx

    session = ZenohOptions(listen=(ENDPOINT,)).open("publisher")
    pub = zx.declare_advanced_publisher(
        session, "bench/segment", congestion_control=zenoh.CongestionControl.BLOCK,
        cache=zx.CacheConfig(max_samples=8), publisher_detection=True,
        sample_miss_detection=zx.MissDetectionConfig(heartbeat=1.0))
    rx = subprocess.Popen([sys.executable, __file__, "sub", str(count)], stdout=subprocess.PIPE,
                          text=True)
    assert rx.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    payload = os.urandom(size)
    for _ in range(count):
        pub.put(payload, attachment=json.dumps({"t": time.time()}).encode())
        if interval:
            time.sleep(interval)
    result = json.loads(rx.stdout.readline())
    rx.wait()
    pub.undeclare()
    session.close()
    lat = np.array(result["lat"]) * 1000
    return {"p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "MB_s": result["bytes"] / 1e6 / result["elapsed"]}


def mux_cost(frames: int = 600) -> dict:
    from actors.media.mp4_mux import Mp4Mux
    from actors.media.test_pattern import TestPatternSource
    from actors.media.video_encoder import VideoEncoder
    from actors.streaming.fragmented_mp4_mux import FragmentedMp4Mux
    from actors.types import EOS

    src = TestPatternSource(width=1280, height=720, rate=30, num_frames=frames,
                            format="yuv420p", pattern="ball")
    enc = VideoEncoder(keyframe_interval=2.0)
    caps = enc.negotiate([src.negotiate([], [])], ["src"])
    src.start()
    packets = []
    while (f := src.handle_produce()) is not EOS:
        packets += enc.handle(f)
    packets += enc.handle_eos()
    out = {}
    with tempfile.TemporaryDirectory() as d:
        makers = {"progressive": lambda: Mp4Mux(os.path.join(d, "a.mp4")),
                  "fragmented": lambda: FragmentedMp4Mux(fragment_duration=2.0)}
        for name, make in makers.items():
            best = float("inf")
            for _ in range(3):
                mux = make()
                mux.negotiate([caps], ["enc"])
                mux.start()
                t0 = time.perf_counter()
                for p in packets:
                    mux.handle(p)
                mux.handle_eos()
                best = min(best, time.perf_counter() - t0)
                mux.close(True)
            out[name] = best / len(packets) * 1e6
    return out


def main() -> None:
    lat = transport(size=64 * 1024, count=300, interval=0.01)
    print(f"latency, 64 KiB segments every 10 ms: p50 {lat['p50_ms']:.2f} ms, "
          f"p99 {lat['p99_ms']:.2f} ms")
    thr = transport(size=1 << 20, count=300, interval=0)
    print(f"throughput, 1 MB segments back to back: {thr['MB_s']:.0f} MB/s "
          f"(latency under load p50 {thr['p50_ms']:.1f} ms, p99 {thr['p99_ms']:.1f} ms)")
    cost = mux_cost()
    print(f"mux per frame, 720p x264: progressive {cost['progressive']:.1f} us, fragmented "
          f"{cost['fragmented']:.1f} us, ratio {cost['fragmented'] / cost['progressive']:.2f}x")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "sub":
        subscriber(int(sys.argv[2]))
    else:
        main()
