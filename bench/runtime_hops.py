"""Per-hop overhead of the runtime: 1080p RGBA frames through chains of 1-4 pass-throughs.

Same run, side by side:
  * Parallax unfused: every element its own host actor, credits on every edge;
  * Parallax fused: the chain in one host, elements called in-process;
  * raw Ray: hand-written actors forwarding ObjectRefs (the floor for unfused);
  * in-process: the same element objects called in a plain loop (the limit for fused);
  * numpy copy bandwidth of one frame (the physical limit of moving a frame once).

Run: python bench/runtime_hops.py [--frames 300] [--window 8]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
import ray

from actors.testing import CollectSink, ListSource, StallingPassThrough
from actors.types import EOS, Frame
from pipelines import Pipeline
from pipelines.runtime.connection import ensure_ray

W, H = 1920, 1080


def parallax_fps(frame: Frame, n: int, hops: int, fusion: bool, window: int) -> float:
    p = Pipeline("bench", fusion=fusion)
    els = [ListSource([frame], repeat=n)] + [StallingPassThrough() for _ in range(hops)]
    p.chain(*els, CollectSink(keep=False), window=window)
    p.prepare()
    t0 = time.perf_counter()
    p.start()
    p.wait()
    return n / (time.perf_counter() - t0)


@ray.remote(num_cpus=0)
class RawStage:
    def __init__(self, downstream=None) -> None:
        self.downstream = downstream

    async def push(self, wrapped: list) -> None:
        arr = await wrapped[0]  # zero-copy read, as an element would
        assert arr.nbytes
        if self.downstream is not None:
            await self.downstream.push.remote(wrapped)


@ray.remote(num_cpus=0)
class RawSource:
    def __init__(self, first) -> None:
        self.first = first

    async def run(self, arr: np.ndarray, n: int, window: int) -> float:
        inflight: set = set()
        t0 = time.perf_counter()
        for _ in range(n):
            ref = ray.put(arr)
            inflight.add(asyncio.ensure_future(self.first.push.remote([ref])))
            if len(inflight) >= window:
                _, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.gather(*inflight)
        return n / (time.perf_counter() - t0)


def raw_ray_fps(arr: np.ndarray, n: int, hops: int, window: int) -> float:
    stage = RawStage.remote()  # the sink
    for _ in range(hops):
        stage = RawStage.remote(stage)
    src = RawSource.remote(stage)
    ray.get(src.run.remote(arr, 5, window))  # warm up the actors
    return ray.get(src.run.remote(arr, n, window))


def in_process_fps(frame: Frame, n: int, hops: int) -> float:
    src, sink = ListSource([frame], repeat=n), CollectSink(keep=False)
    stages = [StallingPassThrough() for _ in range(hops)]
    t0 = time.perf_counter()
    while (item := src.handle_produce()) is not EOS:
        items = [item]
        for st in stages:
            items = [o for i in items for o in st.handle(i)]
        for i in items:
            sink.handle(i)
    return n / (time.perf_counter() - t0)


def copy_fps(arr: np.ndarray, n: int = 200) -> tuple[float, float]:
    dst = np.empty_like(arr)
    t0 = time.perf_counter()
    for _ in range(n):
        np.copyto(dst, arr)
    dt = time.perf_counter() - t0
    return n / dt, arr.nbytes * n / dt / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--window", type=int, default=8)
    args = ap.parse_args()
    ensure_ray()
    arr = np.full((H, W, 4), 7, np.uint8)
    frame = Frame(arr, "rgba", W, H)
    fps_copy, gbps = copy_fps(arr)
    print(f"numpy copy of one 1080p RGBA frame: {fps_copy:.0f} frames/s ({gbps:.1f} GB/s)")
    print(f"{'hops':>4} {'raw ray':>9} {'unfused':>9} {'ratio':>6} {'fused':>10} "
          f"{'in-proc':>10} {'ratio':>6}")
    for hops in range(1, 5):
        raw = raw_ray_fps(arr, args.frames, hops, args.window)
        unfused = parallax_fps(frame, args.frames, hops, False, args.window)
        fused = parallax_fps(frame, args.frames * 100, hops, True, args.window)
        inproc = in_process_fps(frame, args.frames * 100, hops)
        print(f"{hops:>4} {raw:>9.1f} {unfused:>9.1f} {unfused / raw:>6.2f} {fused:>10.0f} "
              f"{inproc:>10.0f} {fused / inproc:>6.2f}")


if __name__ == "__main__":
    main()
