"""The Pipeline: build a graph of elements, then run it as Ray actors.

States follow GStreamer: NULL -> READY (actors placed, caps negotiated, arena
budget checked) -> PAUSED (sources idle) <-> PLAYING -> NULL.
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import ray

from actors import errors
from actors.element import Element, Placement, Sink
from actors.errors import ConfigError, ParallaxError, PipelineError
from actors.flow import Block
from actors.restart import Restart
from actors.types import MAIN_PAD, Caps
from pipelines.runtime import defaults, host_log
from pipelines.runtime.arena import (
    EdgeBudget,
    StoreStats,
    check_budget,
    object_store_stats,
)
from pipelines.runtime.connection import ensure_ray, start_log_forwarding
from pipelines.runtime.graph import AUTO, Graph, Link
from pipelines.runtime.monitor import Monitor, Topology
from pipelines.runtime.placement import (
    describe_node,
    end_hosts,
    pool_size,
    spread_nodes,
    start_host,
    wait_gone,
    wait_placed,
    wind_up_hosts,
)
from pipelines.runtime.pool import pool_spec
from pipelines.runtime.restarter import HostWiring, Restarter
from pipelines.runtime.stats import EdgeStats, ElementStats, PipelineStats, Progress

log = logging.getLogger("parallax.pipeline")


class State(enum.Enum):
    NULL = "NULL"
    READY = "READY"
    PAUSED = "PAUSED"
    PLAYING = "PLAYING"


class Pipeline:
    """A graph of elements run as Ray actors with bounded credit windows.

    >>> p = Pipeline()
    >>> src = p.add(TestPatternSource(num_frames=300))
    >>> p.link(src, p.add(CollectSink()))
    >>> stats = p.run()
    """

    def __init__(
        self,
        name: str = "pipeline",
        fusion: bool = False,
        placement_timeout: float = defaults.PLACEMENT_TIMEOUT_S,
        stats_interval: float = defaults.STATS_INTERVAL_S,
    ) -> None:
        if placement_timeout <= 0 or stats_interval <= 0:
            raise ConfigError("placement_timeout and stats_interval must be > 0 seconds")
        self.name = name
        self.fusion = fusion
        self.placement_timeout = placement_timeout
        self.stats_interval = stats_interval
        self.graph = Graph()
        self.state = State.NULL
        self._id = f"{name}-{uuid.uuid4().hex[:8]}"
        self._hosts: dict[str, Any] = {}
        self._pools: dict[str, list[str]] = {}  # pool element -> its replica hosts
        self._host_of: dict[str, str] = {}
        self._groups: list[list[str]] = []
        self._edges: dict[str, EdgeStats] = {}
        self._budget: list[EdgeBudget] = []
        self._frames_total: int | None = None
        self._node_of: dict[str, dict[str, Any]] = {}
        self._arena_reserved = 0
        self._monitor: Monitor | None = None
        self._results: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.notes: list[str] = []
        """What the builder chose or dropped, for the user (the CLI prints them)."""
        self._wiring: dict[str, HostWiring] = {}
        self.restarter: Restarter | None = None
        self._end_requested = False
        self.salvaged: list[str] = []
        self.closing_warnings: list[str] = []  # what hosts logged as they were torn down
        """What the driver did to outputs whose writer could not finish them."""

    # -- building -------------------------------------------------------------
    def add(self, element: Element, name: str | None = None,
            placement: Placement | None = None, replicas: int | str | None = None,
            restart: Restart | bool | None = None) -> Element:
        """Add an element; ``placement`` overrides the element's own default.

        ``restart=Restart(max_restarts, within_s)`` replaces the element when its process
        dies and resumes the stream with a discontinuity; ``False`` never does. Default:
        on for the non-source elements of a live pipeline, off for file pipelines.

        ``replicas=N`` (or ``"auto"``: one per CPU of the nodes its placement fits) runs the
        element as a pool of N hosts spread over the nodes: each item goes to one replica,
        results come out in order, and a replica that dies is replaced while its items go
        to the others. Pool elements must be 1:1 per item (a whole chunk in, its result out).
        """
        self._require(State.NULL, "add elements")
        self.graph.add(element, name, placement, replicas, restart)
        return element

    def link(self, a: Element | str, b: Element | str, window: int | None = None,
             fuse: bool | None = None, pad: str = MAIN_PAD, into: str | None = None) -> Link:
        """Link ``a``'s output to ``b``'s input with a window of ``window`` credits.

        ``pad`` picks one of ``a``'s outputs (``audio_0`` of a source with audio), and
        ``into`` names the input of ``b`` it feeds (default: like ``pad``), for elements
        that take several inputs (a muxer's video and audio).
        """
        self._require(State.NULL, "link elements")
        return self.graph.link(a, b, window, fuse, pad, into)

    def chain(self, *elements: Element, window: int | None = None) -> Pipeline:
        """Add (if needed) and link elements one after another."""
        for el in elements:
            if not any(n.element is el for n in self.graph.nodes.values()):
                self.add(el)
        for a, b in itertools.pairwise(elements):
            self.link(a, b, window=window)
        return self

    # -- states ---------------------------------------------------------------
    def prepare(self) -> Pipeline:
        """NULL -> READY: place actors, negotiate caps, check the arena budget."""
        if self.state is not State.NULL:
            return self
        order = self.graph.validate()
        self.graph.apply_restart_defaults()
        ensure_ray()
        self._groups = self.graph.host_groups(self.fusion)
        try:
            self._start_hosts()
            self._negotiate(order)
        except BaseException:
            self._teardown()
            raise
        self.state = State.READY
        return self

    def start(self) -> Pipeline:
        """-> PLAYING. Returns at once; use wait() or run() to block."""
        if self.state is State.NULL:
            self.prepare()
        if self.state is State.READY:
            sinks = frozenset(n for n in self.graph.nodes if self._is_sink(n))
            topology = Topology(self._edges, self._node_of, sinks, self._frames_total,
                                self._arena_reserved)
            replicas = {h for hosts in self._pools.values() for h in hosts}
            watched = {h: a for h, a in self._hosts.items() if h not in replicas}
            groups = [g for g in self._groups if g[0] not in self._pools]
            self.restarter = Restarter.build(self._id, self.graph, self._groups, self._hosts,
                                             self._wiring, self._node_of,
                                             self.placement_timeout)
            self._monitor = Monitor(topology, watched, groups, self.stats_interval,
                                    self.restarter)
            # Consumers first, so that nothing is pushed to a host that is not running.
            for group in reversed(self._groups):
                for host in self._pools.get(group[0], [self._host_of[group[0]]]):
                    ray.get(self._hosts[host].play.remote(), timeout=defaults.CONTROL_TIMEOUT_S)
            self._monitor.start()
            self.state = State.PLAYING
            start_log_forwarding()  # the embedded Ray defers it off the start-up path
            if self._end_requested:
                self.end_stream()
        elif self.state is State.PAUSED:
            self.resume()
        return self

    def pause(self) -> None:
        """PLAYING -> PAUSED: sources stop producing; items in flight still drain."""
        self._require(State.PLAYING, "pause")
        ray.get([h.pause.remote() for h in self._source_hosts()],
                timeout=defaults.CONTROL_TIMEOUT_S)
        self.state = State.PAUSED

    def resume(self) -> None:
        self._require(State.PAUSED, "resume")
        ray.get([h.play.remote() for h in self._source_hosts()],
                timeout=defaults.CONTROL_TIMEOUT_S)
        self.state = State.PLAYING

    def source_names(self) -> list[str]:
        """Elements with no inputs, in the order they were added."""
        return [n for n in self.graph.nodes if not self.graph.inputs(n)]

    def sink_names(self) -> list[str]:
        """Elements with no outputs, in the order they were added."""
        return [n for n in self.graph.nodes if not self.graph.outputs(n)]

    def end_stream(self) -> None:
        """Ask the sources to end the stream (EOS flows, sinks finalize); returns at once.

        Safe from a signal handler or a timer thread; ``wait()`` then sees the end.
        """
        self._end_requested = True  # before PLAYING: start() ends it as soon as it plays
        if self._monitor is not None:
            for h in self._source_hosts():
                h.stop.remote(True)

    def stop(self, drain: bool = True, timeout: float = defaults.DRAIN_TIMEOUT_S) -> PipelineStats:
        """End the run. ``drain`` sends EOS from the sources so sinks finalize their output."""
        if self.state is State.NULL:
            return self.stats()
        if self._monitor is None:
            self._teardown()
            return self.stats()
        if drain:
            self.end_stream()
            if not self._monitor.finished.wait(timeout):
                log.warning("EOS did not reach the sinks within %.0f s; aborting", timeout)
                self._monitor.abort_all()
        else:
            self._monitor.abort_all()
        return self.wait(timeout=defaults.CONTROL_TIMEOUT_S)

    def wait(self, timeout: float | None = None) -> PipelineStats:
        """Block until every sink saw EOS, or raise the first failure as PipelineError."""
        if self._monitor is None:
            raise ConfigError("wait(): the pipeline was not started; call start() or run()")
        if not self._monitor.finished.wait(timeout):
            raise TimeoutError(f"pipeline '{self.name}' still running after {timeout} s")
        try:
            self._monitor.join()
        finally:
            self._teardown()
        if self._monitor.error is not None:
            raise self._monitor.error
        return self.stats()

    def run(self, timeout: float | None = None) -> PipelineStats:
        """Start, wait for the end of stream, tear down. Returns the final stats."""
        try:
            self.start()
            return self.wait(timeout)
        except BaseException:
            self._teardown()
            raise

    def run_with_progress(self, callback: Callable[[Progress], None],
                          timeout: float | None = None) -> PipelineStats:
        """Like run(), calling ``callback`` with a Progress about once a second."""
        return self.run_with_stats(lambda stats: callback(self.progress(stats)), timeout)

    def run_with_stats(self, callback: Callable[[PipelineStats], None],
                       timeout: float | None = None) -> PipelineStats:
        """Like run(), calling ``callback`` with fresh PipelineStats about once a second."""
        self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for stats in self.stats_stream(self.stats_interval):
                callback(stats)
                if deadline is not None and time.monotonic() > deadline:
                    break
            result = self.wait(timeout=0 if deadline is None else None)
            callback(result)
            return result
        except BaseException:
            self._teardown()
            raise

    # -- observing ------------------------------------------------------------
    def stats(self) -> PipelineStats:
        if self._monitor is None:
            return PipelineStats(state=self.state.value)
        return self._monitor.latest(self.state.value)

    def stats_stream(self, interval: float = defaults.STATS_INTERVAL_S) -> Iterator[PipelineStats]:
        """Yield fresh stats every ``interval`` seconds until the pipeline finishes."""
        if self._monitor is None:
            raise ConfigError("stats_stream(): start the pipeline first")
        while not self._monitor.finished.wait(interval):
            yield self.stats()

    def element_stats(self, name: str) -> ElementStats | None:
        return self.stats().elements.get(name)

    def edge(self, name: str) -> EdgeStats:
        """The arena view of one edge, e.g. ``edge("src->sink").high_water_mark()``."""
        edges = self.stats().edges
        if name not in edges:
            raise ConfigError(f"no edge '{name}'; edges are: {', '.join(edges) or 'none'}")
        return edges[name]

    def progress(self, stats: PipelineStats | None = None) -> Progress:
        s = stats or self.stats()
        remaining = None
        if s.frames_total and s.frames and s.running_time > 0:
            remaining = max(0.0, (s.frames_total - s.frames) * s.running_time / s.frames)
        drops = sum(e.drops for e in s.elements.values())
        return Progress(s.frames, s.frames_total, s.bytes_written, s.running_time, remaining,
                        fps=s.fps, drops=drops)

    def results(self, name: Element | str) -> Any:
        """What an element exposes through ``Element.results()``, collected at the end."""
        key = self.graph.name_of(name)
        if key in self._results:
            return self._results[key]
        host = self._host_of.get(key)
        if host is None or host not in self._hosts:
            raise ConfigError(f"no results for '{key}': the pipeline has not run")
        return ray.get(self._hosts[host].results.remote(),
                       timeout=defaults.CONTROL_TIMEOUT_S)[key]

    def describe(self) -> str:
        """Which elements share a host (fusion), one host per line."""
        groups = self._groups or self.graph.host_groups(self.fusion)
        return "\n".join(" | ".join(g) for g in groups)

    @property
    def store(self) -> StoreStats:
        return object_store_stats()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self._teardown()

    # -- internals ------------------------------------------------------------
    def _require(self, state: State, action: str) -> None:
        if self.state is not state:
            raise ConfigError(f"cannot {action} while the pipeline is {self.state.value}")

    def _source_hosts(self) -> list[Any]:
        return [self._hosts[self._host_of[g[0]]] for g in self._groups
                if not self.graph.inputs(g[0])]

    def _start_hosts(self) -> None:
        placements = {}
        for group in self._groups:
            node = self.graph.nodes[group[0]]
            elements = [self.graph.nodes[n].element for n in group]
            if node.is_pool:
                count = pool_size(node.name, node.placement,
                                  None if node.replicas == AUTO else node.replicas)
                hosts = [f"{node.name}#{i}" for i in range(count)]
                self._pools[node.name] = hosts
                log.info("pool %s: %d replica(s)", node.name, count)
            else:
                hosts = ["+".join(group)]
            shares = spread_nodes(node.placement, len(hosts)) if node.is_pool else []
            for i, host in enumerate(hosts):
                self._hosts[host] = start_host(self._id, host, elements, node.placement,
                                               spread=node.is_pool,
                                               node=shares[i] if shares else None)
                placements[host] = node.placement
            for n in group:
                self._host_of[n] = hosts[0]
        self._node_of = wait_placed(self._hosts, placements, self.placement_timeout)

    def _negotiate(self, order: list[str]) -> None:
        caps: dict[str, Any] = {}
        for group in self._groups:
            ins = self.graph.inputs(group[0])
            caps_in = [lk.caps_in(caps) for lk in ins]
            waits = max(self.graph.nodes[n].element.ready_timeout() for n in group)
            # Every replica of a pool configures its own copy; they agree, being copies.
            pads = [lk.input_pad for lk in ins]
            self._wiring[self._host_of[group[0]]] = HostWiring(
                caps_in, [lk.producer for lk in ins], pads)
            for host in self._pools.get(group[0], [self._host_of[group[0]]]):
                reply = ray.get(
                    self._hosts[host].negotiate.remote(caps_in, [lk.producer for lk in ins],
                                                       [lk.input_pad for lk in ins]),
                    timeout=defaults.CONTROL_TIMEOUT_S + waits,
                )
                if "error" in reply:  # a disk away from the driver's: say which node's
                    raise _setup_error(reply, host,
                                       describe_node(self.graph.nodes[group[0]].placement))
            if reply["frames_total"] is not None:
                self._frames_total = max(self._frames_total or 0, reply["frames_total"])
            caps[group[-1]] = reply["caps"]
        self.graph.check_pads_linked(caps)
        self._connect({lk.edge_id: lk.caps_in(caps) for lk in self.graph.links
                       if lk.producer in caps})  # the rest are fused, inside one host

    def _connect(self, caps: dict[str, Caps]) -> None:
        """Wire the hosts; ``caps`` is what each edge carries, by edge id."""
        inputs: dict[str, dict[str, int]] = {h: {} for h in self._hosts}
        input_pads: dict[str, dict[str, str]] = {h: {} for h in self._hosts}
        outputs: dict[str, list[dict[str, Any]]] = {h: [] for h in self._hosts}
        into_pool: dict[str, dict[str, Any]] = {}
        restartable_inputs: dict[str, list[str]] = {h: [] for h in self._hosts}
        # Edges into pools first: the edges out of a pool leave from the same host.
        links = sorted(self.graph.links, key=lambda lk: lk.producer in self._pools)
        for lk in links:
            hp, hc = self._host_of[lk.producer], self._host_of[lk.consumer]
            if hp == hc:
                continue  # fused: called in-process, no credits
            from_source = not self.graph.inputs(lk.producer)
            window, slot = defaults.default_slot(caps[lk.edge_id], from_source)
            src_el = self.graph.nodes[lk.producer].element
            policy = src_el.flow_policy() if from_source else Block()
            if lk.consumer in self._pools:
                spec = self._pool_spec(lk, caps[lk.edge_id], slot)
                into_pool[lk.consumer] = spec
                outputs[hp].append(spec)
                continue
            window = lk.window or window
            if lk.producer in self._pools:  # sent by the pool's dispatcher, in order
                spec = into_pool[lk.producer]
                hp = self._host_of[self.graph.inputs(lk.producer)[0].producer]
                spec["downstream"].append(self._output(lk, hc, window, Block()))
            else:
                outputs[hp].append(self._output(lk, hc, window, policy))
            inputs[hc][lk.edge_id] = window
            input_pads[hc][lk.edge_id] = lk.input_pad
            if self.graph.restart_of(hp) is not None:
                restartable_inputs[hc].append(lk.edge_id)
            self._wiring[hc].producers[lk.edge_id] = hp
            nodes = (self._node_of[hp]["node_id"], self._node_of[hc]["node_id"])
            self._budget.append(EdgeBudget(lk.edge_id, window, slot, nodes))
            self._edges[lk.edge_id] = EdgeStats(lk.edge_id, lk.producer, lk.consumer, window,
                                                slot, policy=policy.describe())
        self._arena_reserved = check_budget(self._budget)
        replicas = {h for hosts in self._pools.values() for h in hosts}
        for h, w in self._wiring.items():
            w.inputs, w.input_pads, w.outputs = inputs[h], input_pads[h], outputs[h]
            w.restartable_inputs = restartable_inputs[h]
        ray.get([self._hosts[h].connect.remote(inputs[h], outputs[h], h in replicas,
                                               input_pads[h], restartable_inputs[h])
                 for h in self._hosts], timeout=defaults.CONTROL_TIMEOUT_S)

    def _output(self, lk: Link, consumer_host: str, window: int, policy: Any) -> dict[str, Any]:
        return {"edge": lk.edge_id, "consumer": self._hosts[consumer_host],
                "consumer_name": lk.consumer, "window": window, "policy": policy,
                "pad": lk.pad, "consumer_host": consumer_host,
                "restartable": self.graph.restart_of(consumer_host) is not None}

    def _pool_spec(self, lk: Link, caps_in: Any, slot: int) -> dict[str, Any]:
        node = self.graph.nodes[lk.consumer]
        window = lk.window or defaults.POOL_WINDOW
        hosts = {h: self._hosts[h] for h in self._pools[lk.consumer]}
        spec = pool_spec(lk.edge_id, lk.pad, lk.producer, node.name, window, hosts,
                         self._node_of, caps_in, {
                             "pipeline": self._id, "elements": [node.element],
                             "placement": node.placement, "start": start_host})
        total = window * len(hosts)
        producer_node = self._node_of[self._host_of[lk.producer]]["node_id"]
        self._budget.append(EdgeBudget(lk.edge_id, total, slot, (producer_node,)))
        self._edges[lk.edge_id] = EdgeStats(lk.edge_id, lk.producer, node.name, total, slot,
                                            policy="Dispatch")
        return spec

    def _is_sink(self, name: str) -> bool:
        return isinstance(self.graph.nodes[name].element, Sink) or not self.graph.outputs(name)

    def _teardown(self) -> None:
        with self._lock:
            if not self._hosts:
                self.state = State.NULL
                return
            clean = False
            if self._monitor is not None:
                self._monitor.shutdown()
                self._results = self._monitor.results
                clean = self._monitor.finished.is_set() and self._monitor.error is None
            hosts = list(self._hosts.values())
            self.closing_warnings = host_log.relog(wind_up_hosts(hosts))
            end_hosts(hosts)
            self._hosts.clear()
            self.state = State.NULL
            if not clean:
                self._salvage()

    def _salvage(self) -> None:
        """A run that did not finish: outputs whose writer died (or was killed just now)
        are finished here, where the paths are known, since the dying process could not."""
        here = ray.get_runtime_context().get_node_id()
        wait_gone([info["pid"] for info in self._node_of.values()
                   if info.get("node_id") == here], defaults.CONTROL_TIMEOUT_S / 10)
        for name, node in self.graph.nodes.items():
            try:
                did = node.element.salvage()
            except OSError as exc:
                did = f"could not clean up after '{name}': {exc}"
            if did:
                self.salvaged.append(did)
                log.warning("%s", did)


def _setup_error(reply: dict[str, Any], host: str, where: str = "") -> Exception:
    """The error a host reported during negotiation, as the class it was raised with."""
    cls = getattr(errors, reply["kind"] or "", None)
    if isinstance(cls, type) and issubclass(cls, ParallaxError) and cls is not PipelineError:
        return cls(reply["error"] + where)
    return PipelineError(host, reply["error"] + where)
