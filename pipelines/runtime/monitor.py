"""The driver's monitor thread: polls host stats about once a second and watches for failures.

One RPC per host per interval, never per frame. The first failure stops every
host; every wait here is bounded, so a dead actor or a stuck element never
hangs the driver.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from actors.errors import PipelineError
from pipelines.runtime import defaults, host_log
from pipelines.runtime.arena import object_store_stats
from pipelines.runtime.stats import (
    EdgeStats,
    ElementStats,
    PipelineStats,
    PoolStats,
    build_element_stats,
)

log = logging.getLogger("parallax.monitor")

ABORT_GRACE_S = 5.0  # after an abort, hosts get this long to wind down before teardown
SECONDARY_GRACE_S = 3.0  # how long a "my peer failed" report waits for the peer's own report
POLL_TIMEOUT_S = 5.0
# Counters that go on across a restart (the replacement starts its own from zero).
CARRIED = ("buffers_in", "buffers_out", "frames_in", "bytes_in", "bytes_out",
           "processing_time", "blocked_time", "errors", "drops")
# The same for the edges out of a replaced host (its senders are new); the edges into
# it keep their senders, upstream. high_water carries as the most of either.
EDGE_CARRIED = ("sent", "bytes_sent", "drops")
EDGE_FIGURES = ("in_flight", "high_water", "sent", "bytes_sent", "drops", "held", "signal")


@dataclass
class Topology:
    """What the monitor knows of the pipeline it watches (it never sees the Pipeline itself)."""

    edges: dict[str, EdgeStats]  # shared with the pipeline: the monitor keeps it current
    node_of: dict[str, dict[str, Any]]  # host -> {"node_id": ..., ...}
    sinks: frozenset[str]
    frames_total: int | None = None
    arena_reserved: int = 0


class Monitor:
    def __init__(self, topology: Topology, hosts: dict[str, Any], groups: list[list[str]],
                 interval: float, restarter: Any = None) -> None:
        self.topology = topology
        self.hosts = dict(hosts)
        self.groups = {"+".join(g): g for g in groups}
        self.interval = interval
        self.finished = threading.Event()
        self.error: PipelineError | None = None
        self.results: dict[str, Any] = {}
        self._done = {h.wait_done.remote(): name for name, h in self.hosts.items()}
        self._dead: set[str] = set()
        self.restarter = restarter
        """Replaces hosts with a restart policy when they die (runtime/restarter.py)."""
        self._last: dict[str, dict[str, Any]] = {}  # host -> its last stats snapshot
        self._carry: dict[str, dict[str, float]] = {}  # element -> counters of dead ones
        self._edge_carry: dict[str, dict[str, float]] = {}  # edge -> the same, of senders
        self._prev: dict[str, ElementStats] = {}
        self._prev_time: dict[str, float] = {}
        self._stats = PipelineStats(state="PLAYING", frames_total=topology.frames_total)
        self._memory_peak = 0
        self._t0 = time.monotonic()
        self._t_end: float | None = None
        self._aborted_at: float | None = None
        self._shutdown = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="parallax-monitor", daemon=True)

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._thread.start()

    def join(self) -> None:
        self._thread.join(timeout=ABORT_GRACE_S + POLL_TIMEOUT_S)

    def shutdown(self) -> None:
        self._shutdown.set()
        self.abort_all()
        self.join()

    def abort_all(self) -> None:
        if self._aborted_at is None:
            self._aborted_at = time.monotonic()
        for name, h in self.hosts.items():
            if name not in self._dead:
                h.stop.remote(False)

    def latest(self, state: str) -> PipelineStats:
        s = copy.copy(self._stats)
        s.state = state
        s.running_time = (self._t_end or time.monotonic()) - self._t0
        return s

    # -- the loop -------------------------------------------------------------
    def _loop(self) -> None:
        pending = dict(self._done)
        secondary: PipelineError | None = None
        secondary_deadline = 0.0
        next_poll = time.monotonic()
        try:
            while pending:
                now = time.monotonic()
                if self._aborted_at is not None and now - self._aborted_at > ABORT_GRACE_S:
                    log.warning("hosts %s did not stop in time; tearing down",
                                ", ".join(pending.values()))
                    break
                if self._shutdown.is_set() and self._aborted_at is None:
                    self.abort_all()
                wait = max(0.0, min(next_poll - now, defaults.WAIT_SLICE_S))
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=wait)
                for ref in ready:
                    host = pending.pop(ref)
                    failure = self._outcome(ref, host)
                    if failure is not None and self.error is None and self._aborted_at is None:
                        failure = self._try_restart(host, failure, pending)
                    if failure is None:
                        continue
                    err, is_secondary = failure
                    if is_secondary:
                        if secondary is None:
                            secondary, secondary_deadline = err, now + SECONDARY_GRACE_S
                    elif self.error is None:
                        self.error = err
                        self.abort_all()
                if (secondary is not None and self.error is None
                        and time.monotonic() > secondary_deadline):
                    self.error = secondary
                    self.abort_all()
                if time.monotonic() >= next_poll:
                    self._poll()
                    next_poll = time.monotonic() + self.interval
            if secondary is not None and self.error is None:
                self.error = secondary
            self._t_end = time.monotonic()
            self._poll()
            self._collect_results()
        except Exception as exc:  # the monitor must always release waiters
            log.exception("monitor failed")
            if self.error is None:
                self.error = PipelineError("driver", f"{type(exc).__name__}: {exc}")
        finally:
            self._t_end = self._t_end or time.monotonic()
            self.finished.set()

    def _try_restart(self, host: str, failure: tuple[PipelineError, bool],
                     pending: dict[Any, str]) -> tuple[PipelineError, bool] | None:
        """A host with a restart policy whose actor died is replaced, not a failure."""
        err, _ = failure
        if (self.restarter is None or host not in self._dead
                or not self.restarter.can_restart(host)):
            return failure
        try:
            new = self.restarter.restart(host, err.cause)
        except PipelineError as exc:
            return exc, False
        except Exception as exc:  # a host it had to rewire died too, or Ray failed
            return PipelineError(host, f"its process died and the restart failed: "
                                 f"{type(exc).__name__}: {exc}"), False
        for name, figures in self._last.get(host, {}).get("elements", {}).items():
            carry = self._carry.setdefault(name, {})
            for key in CARRIED:
                carry[key] = carry.get(key, 0) + (figures.get(key) or 0)
        for edge in self._last.get(host, {}).get("edges", ()):
            carry = self._edge_carry.setdefault(edge["edge"], {})
            for key in EDGE_CARRIED:
                carry[key] = carry.get(key, 0) + (edge.get(key) or 0)
            carry["high_water"] = max(carry.get("high_water", 0), edge.get("high_water") or 0)
        self._last.pop(host, None)
        self._prev_time.pop(host, None)
        self.hosts[host] = new
        self._dead.discard(host)
        pending[new.wait_done.remote()] = host
        return None

    def _outcome(self, ref: Any, host: str) -> tuple[PipelineError, bool] | None:
        try:
            res = ray.get(ref, timeout=POLL_TIMEOUT_S)
        except RayActorError as exc:
            self._dead.add(host)
            cause = "its actor died (process killed or crashed)"
            return PipelineError(host, cause, str(exc).splitlines()[0] if str(exc) else ""), False
        except RayError as exc:
            self._dead.add(host)
            return PipelineError(host, f"{type(exc).__name__}: {exc}"), False
        if res.get("ok") or res.get("stopped"):
            return None
        if res.get("secondary"):
            return PipelineError(res.get("peer") or res["element"], res["cause"]), True
        return PipelineError(res["element"], res["cause"], res.get("details", "")), False

    def _poll(self) -> None:
        live = {n: h for n, h in self.hosts.items() if n not in self._dead}
        refs = {h.stats.remote(): n for n, h in live.items()}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=POLL_TIMEOUT_S)
        snaps: dict[str, dict[str, Any]] = {}
        for ref in ready:
            try:
                snaps[refs[ref]] = ray.get(ref, timeout=POLL_TIMEOUT_S)
            except RayError:
                self._dead.add(refs[ref])
        if snaps:
            self._compose(snaps)
            records = sorted((w for snap in snaps.values() for w in snap.get("warnings", ())),
                             key=lambda w: w["time"])
            if records:
                self._stats.warnings = [*self._stats.warnings, *host_log.relog(records)]

    def _compose(self, snaps: dict[str, dict[str, Any]]) -> None:
        p = self.topology
        stats = copy.copy(self._stats)
        stats.elements = dict(stats.elements)
        stats.edges = dict(p.edges)
        for host, snap in snaps.items():
            dt = snap["time"] - self._prev_time.get(host, snap["time"])
            self._prev_time[host] = snap["time"]
            node = p.node_of.get(host, {}).get("node_id", "")
            self._last[host] = snap
            restarts = self.restarter.restarts.get(host, 0) if self.restarter else 0
            for name, figures in snap["elements"].items():
                carry = self._carry.get(name)
                if carry:  # counters of the processes this element had before a restart
                    figures = {**figures, **{k: figures.get(k, 0) + v for k, v in carry.items()}}
                es = build_element_stats(name, host, node, figures, snap, self._prev.get(name),
                                         dt, name in p.sinks)
                es.restarts = restarts
                stats.elements[name] = self._prev[name] = es
            for pool in snap.get("pools", ()):
                stats.pools = {**stats.pools, pool["pool"]: PoolStats(
                    pool["pool"], pool["replicas"], pool["lost"], pool["requeued"])}
            for edge in snap["edges"]:
                e = stats.edges.get(edge["edge"])
                if e is not None:
                    e = copy.copy(e)
                    figures = {key: edge[key] for key in EDGE_FIGURES}
                    carry = self._edge_carry.get(e.name)
                    if carry:  # what the senders of a replaced host had counted
                        figures.update({k: figures[k] + carry[k] for k in EDGE_CARRIED})
                        figures["high_water"] = max(figures["high_water"], carry["high_water"])
                    for key, value in figures.items():
                        setattr(e, key, value)
                    stats.edges[e.name] = p.edges[e.name] = e
        sinks = [s for n, s in stats.elements.items() if n in p.sinks]
        stats.frames = max((s.frames_in for s in sinks), default=0)
        stats.bytes_written = sum(s.bytes_in for s in sinks)
        e2e = [s.e2e_latency_ms for s in sinks if s.e2e_latency_ms is not None]
        lat = [s.latency_ms for s in stats.elements.values() if s.latency_ms is not None]
        stats.total_latency = (max(e2e) if e2e else sum(lat)) / 1000.0 if (e2e or lat) else None
        store = object_store_stats()
        self._memory_peak = max(self._memory_peak, store.used)
        stats.memory_used, stats.memory_spilled = store.used, store.spilled
        stats.memory_capacity, stats.memory_peak = store.capacity, self._memory_peak
        stats.arena_reserved = p.arena_reserved
        if self.restarter is not None:
            stats.restart_events = self.restarter.report(self._t0)
        self._stats = stats

    def _collect_results(self) -> None:
        live = {n: h for n, h in self.hosts.items() if n not in self._dead}
        refs = {h.results.remote(): n for n, h in live.items()}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=POLL_TIMEOUT_S)
        for ref in ready:
            try:
                self.results.update(ray.get(ref, timeout=POLL_TIMEOUT_S))
            except RayError:
                log.debug("results of %s unavailable", refs[ref])
