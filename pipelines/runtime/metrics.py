"""Export host figures through ray.util.metrics, so Prometheus and the Ray dashboard see them.

Updated from the host's stats snapshot (about once a second), never per frame.
"""

from __future__ import annotations

import logging
import statistics
from typing import Any

from pipelines.runtime.stats import _percentile

log = logging.getLogger("parallax.metrics")

COUNTERS = ("buffers_in", "buffers_out", "bytes_in", "bytes_out", "drops", "errors")
# Gauges of the recent per-item latencies a host keeps (seconds): the median and the
# 99th percentile, as PipelineStats reports them (latency_ms, latency_p99_ms, e2e...).
LATENCY_GAUGES = {
    "latency": ("latencies", 0.5, "Median latency at the element, arrival to release"),
    "latency_p99": ("latencies", 0.99, "99th percentile latency at the element"),
    "e2e_latency": ("e2e_latencies", 0.5, "Median capture-to-here latency"),
}


class HostMetrics:
    """Counters and gauges tagged by pipeline and element."""

    def __init__(self, pipeline: str, elements: list[str]) -> None:
        self.pipeline = pipeline
        self.elements = elements
        self._last: dict[tuple[str, str], float] = {}
        self._metrics: dict[str, Any] | None = None

    def _make(self) -> dict[str, Any]:
        from ray.util import metrics

        keys = ("pipeline", "element")
        made: dict[str, Any] = {
            name: metrics.Counter(f"parallax_{name}_total", description=f"Parallax {name}",
                                  tag_keys=keys)
            for name in COUNTERS
        }
        made["processing_seconds"] = metrics.Counter(
            "parallax_processing_seconds_total", description="Seconds in element code",
            tag_keys=keys)
        made["credits_in_use"] = metrics.Gauge(
            "parallax_credits_in_use", description="Items in flight on output edges",
            tag_keys=keys)
        made["mailbox_depth"] = metrics.Gauge(
            "parallax_mailbox_depth", description="Items waiting in the host mailbox",
            tag_keys=keys)
        for name, (_, _, text) in LATENCY_GAUGES.items():
            made[name] = metrics.Gauge(f"parallax_{name}_seconds", description=text,
                                       tag_keys=keys)
        made["pool_replicas"] = metrics.Gauge(
            "parallax_pool_replicas", description="Live replicas of an element pool",
            tag_keys=keys)
        made["pool_lost"] = metrics.Counter(
            "parallax_pool_replicas_lost_total",
            description="Replicas of an element pool that died (and were replaced)",
            tag_keys=keys)
        made["pool_requeued"] = metrics.Counter(
            "parallax_pool_requeued_total",
            description="Items sent again because their replica died", tag_keys=keys)
        return made

    def register(self) -> None:
        """Create the metrics now. Registration talks to the GCS; doing it at start-up keeps
        it out of the way of a teardown that kills the actor (which once aborted a host)."""
        try:
            if self._metrics is None:
                self._metrics = self._make()
        except Exception:
            log.debug("metrics registration failed", exc_info=True)

    def update(self, snap: dict[str, Any]) -> None:
        try:
            if self._metrics is None:
                self._metrics = self._make()
            for name, figures in snap["elements"].items():
                tags = {"pipeline": self.pipeline, "element": name}
                for key in (*COUNTERS, "processing_time"):
                    metric = "processing_seconds" if key == "processing_time" else key
                    delta = figures[key] - self._last.get((name, key), 0)
                    if delta > 0:
                        self._metrics[metric].inc(delta, tags=tags)
                        self._last[(name, key)] = figures[key]
                for metric, (key, q, _) in LATENCY_GAUGES.items():
                    if figures.get(key):
                        value = (statistics.median(figures[key]) if q == 0.5
                                 else _percentile(figures[key], q))
                        self._metrics[metric].set(value, tags=tags)
            for pool in snap.get("pools", ()):
                tags = {"pipeline": self.pipeline, "element": pool["pool"]}
                live = sum(r["state"] == "live" for r in pool["replicas"])
                self._metrics["pool_replicas"].set(live, tags=tags)
                for key, metric in (("lost", "pool_lost"), ("requeued", "pool_requeued")):
                    delta = pool[key] - self._last.get((pool["pool"], key), 0)
                    if delta > 0:
                        self._metrics[metric].inc(delta, tags=tags)
                        self._last[(pool["pool"], key)] = pool[key]
            tags = {"pipeline": self.pipeline, "element": self.elements[-1]}
            self._metrics["credits_in_use"].set(snap["credits_in_use"], tags=tags)
            self._metrics["mailbox_depth"].set(snap["mailbox_depth"], tags=tags)
        except Exception:  # metrics must never take a pipeline down
            log.debug("metrics export failed", exc_info=True)
