"""Parallax's series in a Prometheus scrape of Ray's metrics export endpoint, during a run.

On the tests' shared local Ray (no dashboard, as the embedded Ray starts): each node's
metrics agent serves /metrics on its MetricsExportPort, and the series carry the pipeline
and element tags, with the values PipelineStats reports.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request

import ray

from actors.testing import CollectSink, ListSource, StallingPassThrough
from pipelines import Pipeline

# Workers report metrics every 10 s (Ray's metrics_report_interval_ms): the run lasts
# about 14 s, so that a report falls inside it.
N = 350
SERIES = re.compile(r'^ray_(parallax_\w+)\{(.*)\} (\S+)$')
TAG = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(port: int, pipeline: str) -> dict[tuple[str, str], float]:
    """{(metric, element): value} of ``pipeline``'s series, summed over workers."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    found: dict[tuple[str, str], float] = {}
    for line in body.decode().splitlines():
        m = SERIES.match(line)
        if not m:
            continue
        tags = dict(TAG.findall(m.group(2)))
        if tags.get("pipeline", "").startswith(f"{pipeline}-"):
            key = (m.group(1), tags["element"])
            found[key] = found.get(key, 0.0) + float(m.group(3))
    return found


def test_metrics_scrape_matches_pipeline_stats(ray_session):
    (node,) = [n for n in ray.nodes() if n["Alive"]]
    port = node["MetricsExportPort"]
    p = Pipeline("scraped")
    p.add(ListSource(list(range(N)), interval_s=0.04), name="src")
    p.add(StallingPassThrough(delay_s=0.005), name="work")
    p.add(CollectSink(keep=False), name="sink")
    p.link("src", "work", window=4)
    p.link("work", "sink", window=4)
    during: list[dict] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(1.0):
            during.append(scrape(port, "scraped"))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        stats = p.run(timeout=120)
    finally:
        done.set()
        watcher.join()
    assert any(("parallax_buffers_out_total", "src") in s for s in during), \
        "no Parallax series in any scrape during the run"
    expected = {}
    for name, e in stats.elements.items():
        for metric, value in (("parallax_buffers_in_total", e.buffers_in),
                              ("parallax_buffers_out_total", e.buffers_out)):
            if value:
                expected[(metric, name)] = float(value)
    deadline = time.monotonic() + 30
    while True:
        final = scrape(port, "scraped")
        if all(final.get(k) == v for k, v in expected.items()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert {k: final.get(k) for k in expected} == expected
    assert expected[("parallax_buffers_in_total", "sink")] == N
    busy = stats.elements["work"].total_processing_time
    assert abs(final[("parallax_processing_seconds_total", "work")] - busy) < 0.05 * busy + 0.01
    assert final[("parallax_latency_seconds", "work")] > 0.004  # the element's 5 ms delay
    for metric in ("parallax_credits_in_use", "parallax_mailbox_depth"):
        assert any(m == metric for m, _ in final), f"{metric} missing"


def test_grafana_dashboard_shows_only_series_parallax_exports(ray_session):
    import json
    from pathlib import Path

    from pipelines.runtime.metrics import HostMetrics

    made = HostMetrics("x", ["a"])._make()
    exported = {f"ray_{m._name}" for m in made.values()}
    dashboard = json.loads((Path(__file__).parent.parent / "cluster" /
                            "grafana-parallax.json").read_text())
    queried = {name for panel in dashboard["panels"] for t in panel["targets"]
               for name in re.findall(r"ray_parallax_\w+", t["expr"])}
    assert queried <= exported, f"the dashboard queries series nobody exports: {queried - exported}"
    # frames, bytes, drops, credits, latency and restarts, per pipeline and element
    for name in ("buffers_out_total", "bytes_out_total", "drops_total", "credits_in_use",
                 "latency_seconds", "pool_replicas_lost_total"):
        assert f"ray_parallax_{name}" in queried
    assert all("by (pipeline, element)" in t["expr"] for p in dashboard["panels"]
               for t in p["targets"])
