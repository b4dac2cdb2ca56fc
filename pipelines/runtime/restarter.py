"""Restarts: the driver replaces a host whose process died, when its elements have a
restart policy (live pipelines, by default), and wires the replacement in.

The replacement is started where the placement allows, configured with the caps its
predecessor had, and connected; the hosts downstream drop what the dead one sent and
start counting its items afresh; the hosts upstream send to the new one. Items that
were in flight on the dead host are lost (a live edge drops what it cannot deliver).
The replacement's elements pick up what their predecessor left (``Element.restarted``)
and the hosts downstream hear a DISCONT first, so an encoder starts at a keyframe, a
muxer with a new fragment, and HLS marks a discontinuity.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import ray

from actors.errors import PipelineError
from actors.restart import Restart
from pipelines.runtime import defaults
from pipelines.runtime.placement import start_host

log = logging.getLogger("parallax.restart")


@dataclass
class HostWiring:
    """What it takes to rebuild one host: how it was negotiated and connected."""

    caps_in: list[Any] = field(default_factory=list)
    upstream: list[str] = field(default_factory=list)
    pads: list[str] = field(default_factory=list)
    inputs: dict[str, int] = field(default_factory=dict)  # edge -> window
    input_pads: dict[str, str] = field(default_factory=dict)
    producers: dict[str, str] = field(default_factory=dict)  # input edge -> producer host
    outputs: list[dict[str, Any]] = field(default_factory=list)  # with "consumer_host"
    restartable_inputs: list[str] = field(default_factory=list)


class Restarter:
    """Called by the monitor thread when a host's actor died; owns the restart counts."""

    def __init__(self, pipeline_id: str, hosts: dict[str, Any],
                 elements: dict[str, list[Any]], placements: dict[str, Any],
                 policies: dict[str, Restart], wiring: dict[str, HostWiring],
                 node_of: dict[str, dict[str, Any]], placement_timeout: float) -> None:
        self.pipeline_id = pipeline_id
        self.hosts = hosts  # the pipeline's own dict: teardown and results see replacements
        self.elements = elements
        self.placements = placements
        self.policies = policies
        self.wiring = wiring
        self.node_of = node_of
        self.placement_timeout = placement_timeout
        self.deaths: dict[str, list[float]] = {}
        self.restarts: dict[str, int] = {}
        self.events: list[dict[str, Any]] = []
        """Each restart: host, at (time.monotonic), gap_s, cause."""
        self._epoch: dict[str, int] = {}  # edge -> incarnation of its producer

    @classmethod
    def build(cls, pipeline_id: str, graph: Any, groups: list[list[str]],
              hosts: dict[str, Any], wiring: dict[str, HostWiring],
              node_of: dict[str, dict[str, Any]], placement_timeout: float) -> Restarter:
        """The restarter of a pipeline's hosts that have a restart policy."""
        by_host = {"+".join(g): g for g in groups}
        # A host that dispatches to a pool holds the pool's state: not restartable.
        names = [h for h in wiring if graph.restart_of(h) is not None
                 and not any("pool" in o for o in wiring[h].outputs)]
        return cls(pipeline_id, hosts,
                   {h: [graph.nodes[n].element for n in by_host[h]] for h in names},
                   {h: graph.nodes[by_host[h][0]].placement for h in names},
                   {h: graph.restart_of(h) for h in names}, wiring, node_of,
                   placement_timeout)

    def can_restart(self, host: str) -> bool:
        return host in self.policies

    def restart(self, host: str, cause: str) -> Any:
        """Replace ``host``; returns the new actor. Raises PipelineError when its policy
        allows no more restarts, or when the replacement cannot start."""
        policy = self.policies[host]
        now = time.monotonic()
        deaths = self.deaths.setdefault(host, [])
        deaths.append(now)
        if not policy.allows(deaths, now):
            raise PipelineError(host, f"its process died {len(deaths)} times within "
                                f"{policy.within_s:g} s, more than its restart policy "
                                f"allows ({policy.describe()}); last: {cause}")
        n = self.restarts.get(host, 0) + 1
        log.warning("'%s' died (%s); starting a replacement (restart %d, at most %d in %g s)",
                    host, cause, n, policy.max_restarts, policy.within_s)
        try:
            ray.kill(self.hosts[host], no_restart=True)
        except Exception:  # it is gone already
            log.debug("kill of %s failed", host, exc_info=True)
        new = self._start(host, n)
        self.hosts[host] = new
        self.restarts[host] = n
        gap = time.monotonic() - now
        self.events.append({"host": host, "at": now, "gap_s": round(gap, 3), "cause": cause})
        log.warning("'%s' restarted in %.1f s; the stream resumes with a discontinuity",
                    host, gap)
        return new

    def _start(self, host: str, n: int) -> Any:
        w = self.wiring[host]
        timeout = defaults.CONTROL_TIMEOUT_S
        try:
            new = start_host(self.pipeline_id, f"{host}~{n}", self.elements[host],
                             self.placements[host])
            self.node_of[host] = ray.get(new.ready.remote(), timeout=self.placement_timeout)
            reply = ray.get(new.negotiate.remote(w.caps_in, w.upstream, w.pads or None),
                            timeout=timeout)
        except Exception as exc:
            raise PipelineError(host, f"its process died and its replacement could not "
                                f"start: {_first_line(exc)}") from exc
        if "error" in reply:
            raise PipelineError(host, f"its replacement could not configure: {reply['error']}")
        in_epochs = {edge: self._bump(edge) for edge in w.inputs}
        outputs = []
        for spec in w.outputs:
            # The consumer may itself have been replaced since: take the live handle.
            spec = {**spec, "consumer": self.hosts[spec["consumer_host"]],
                    "epoch": self._bump(spec["edge"])}
            outputs.append(spec)
        ray.get([self.hosts[o["consumer_host"]].reset_input.remote(o["edge"], o["epoch"])
                 for o in outputs], timeout=timeout)
        ray.get(new.connect.remote(w.inputs, outputs, False, w.input_pads,
                                   w.restartable_inputs, in_epochs, True), timeout=timeout)
        ray.get(new.play.remote(), timeout=timeout)
        producers = [self.hosts[w.producers[edge]] for edge in in_epochs]
        ray.get([p.rewire.remote(edge, new, epoch)
                 for p, (edge, epoch) in zip(producers, in_epochs.items())], timeout=timeout)
        # The replacement can only start at a keyframe: ask for one now, not at the next
        # GOP (up to a fragment's length away).
        ray.get([p.request_keyframe.remote() for p in producers], timeout=timeout)
        return new

    def _bump(self, edge: str) -> int:
        self._epoch[edge] = self._epoch.get(edge, 0) + 1
        return self._epoch[edge]

    def report(self, t0: float) -> list[dict[str, Any]]:
        """The restarts so far, timed from ``t0`` (the run's start, time.monotonic)."""
        return [{"host": e["host"], "at_s": round(e["at"] - t0, 3), "gap_s": e["gap_s"],
                 "cause": e["cause"]} for e in self.events]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
