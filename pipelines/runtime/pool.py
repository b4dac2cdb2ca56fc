"""The two edges around an element pool: dispatch in, merge out in order, survive replicas.

A pool is one element run as N replica hosts. Its upstream host owns a PoolDispatcher,
which looks like any other output edge to the host (offer, finish, snapshots):

- **Dispatch.** Each item goes to exactly one replica that has credit, the one with
  the fewest items in flight. An item is in flight from the call until its result
  has been handed downstream, so the pool never holds more than replicas x window.
- **Results belong to the dispatcher.** A replica returns its outputs as the result
  of the call. Ray makes the caller the owner of a result, so the outputs of a replica
  that dies a moment later still exist, and the dispatcher's own ``ray.put`` of the
  input keeps every unfinished item alive too.
- **Ordered merge.** Results are handed to the downstream edges in dispatch order, as
  a Batch per input item. Items in flight and results waiting for an earlier one count
  together against the pool's window (replicas x window), so memory stays bounded even
  when one replica is slow. The
  payload is the result's object reference: the consumer reads it from the replica's
  node, never through the dispatcher.
- **Losing a replica** (its process killed, its node lost) is not a failure: its
  unfinished items go to the others, a replacement is started where the placement
  allows, and both are counted. Items that were on a replica when it died become
  suspects: each runs alone on a replica until it passes, so that a later death is
  pinned on the right item. An item that was in flight on ``POISON_LIMIT`` replicas
  that died fails the run, named, so one poison item cannot loop forever.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayError

from actors.errors import PipelineError
from actors.flow import Block, FlowState, SignalTracker
from pipelines.runtime.defaults import WAIT_SLICE_S
from pipelines.runtime.edge import Aborted, EdgeSender, Outgoing

log = logging.getLogger("parallax.pool")

POISON_LIMIT = 3  # replicas an item may take down with it before the run fails
REPLACEMENTS_PER_REPLICA = 3  # a pool that loses more than N x this gives up


def pool_spec(edge: str, pad: str, producer: str, pool: str, window: int,
              hosts: dict[str, Any], node_of: dict[str, dict[str, Any]], caps_in: Any,
              replacement: dict[str, Any]) -> dict[str, Any]:
    """What a pool's dispatcher needs: its replicas, and how to start replacements
    (``replacement``: the pipeline id, the element, its placement, and the driver's
    start_host, passed in since placement imports the host module)."""
    replicas = [{"name": h, "handle": handle, "node_id": node_of[h]["node_id"],
                 "pid": node_of[h]["pid"]} for h, handle in hosts.items()]
    return {"edge": edge, "pool": pool, "window": window, "replicas": replicas, "pad": pad,
            "caps_in": [caps_in], "upstream": [producer], "downstream": [],
            "replacement": replacement}


class Batch(list):
    """The outputs of one input item of a pool replica, delivered downstream as one unit."""


@dataclass
class Replica:
    name: str
    handle: Any
    node_id: str = ""
    pid: int = 0
    state: str = "starting"  # starting -> live -> dead
    ready_ref: Any = None
    inflight: dict[Any, int] = field(default_factory=dict)  # status ref -> seq
    isolated: bool = False  # runs a suspect item alone, so that a death names its cause
    items: int = 0
    busy_s: float = 0.0
    counters: dict[str, Any] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        return {"name": self.name, "node_id": self.node_id, "pid": self.pid,
                "state": self.state, "in_flight": len(self.inflight), "items": self.items,
                "busy_s": self.busy_s}


@dataclass
class _Item:
    seq: int
    out: Outgoing
    label: str
    deaths: int = 0
    batch_ref: Any = None


class PoolDispatcher:
    """The upstream end of a pool: dispatch, results, ordered merge, replacements."""

    def __init__(self, spec: dict[str, Any], downstream: list[EdgeSender],
                 abort: threading.Event) -> None:
        self.name = spec["edge"]
        self.pool = spec["pool"]
        self.consumer_name = self.pool
        self.window = spec["window"]  # per replica
        self.spec = spec
        self.downstream = downstream
        self.policy = Block()
        self.flow = FlowState()
        self._abort = abort
        self.replicas = [Replica(r["name"], r["handle"], r["node_id"], r["pid"], "live")
                         for r in spec["replicas"]]
        self.signals = SignalTracker(self.window * max(1, len(self.replicas)))
        self._items: dict[int, _Item] = {}
        self._retry: collections.deque[int] = collections.deque()
        self._done: dict[int, _Item] = {}
        self._next_out = 0
        self._seq = 0
        self._started = len(self.replicas)
        self.lost = 0
        self.requeued = 0
        # The replicas' warnings until the host's next poll (filled on the worker thread,
        # taken on the event loop's: a deque's appends and pops are atomic).
        self._warnings: collections.deque[dict[str, Any]] = collections.deque()
        self.high_water = 0
        self.sent = 0
        self.bytes_sent = 0
        self.blocked_time = 0.0

    # -- the sender interface the host and the Block policy use ----------------
    def offer(self, out: Outgoing) -> None:
        self.policy.offer(out, self, self.flow)

    def has_credit(self) -> bool:
        """A new item may go out: a replica has room, and the items in the pool (in flight
        or finished but waiting for an earlier one, to keep the order) stay within the
        pool's window, so a slow replica holds the others back instead of growing memory."""
        self._reap(timeout=0)
        return (not self._retry and len(self._items) < self.window * self._live_count()
                and self._free_replica() is not None)

    def wait_for_credit(self) -> None:
        if self.has_credit():
            return
        t0 = time.perf_counter()
        while not self.has_credit():
            self._check_abort()
            self._reap(timeout=WAIT_SLICE_S)
        self.blocked_time += time.perf_counter() - t0

    def send(self, out: Outgoing) -> None:
        label = getattr(out.item, "label", None) or f"item {self._seq}"
        item = _Item(self._seq, out, label)
        self._items[item.seq] = item
        self._seq += 1
        self._dispatch(item, self._free_replica())
        self.sent += 1
        self.bytes_sent += out.nbytes

    def finish(self) -> None:
        """Wait until every item's result went downstream, then end the downstream edges."""
        while self._items:
            self._check_abort()
            self._reap(timeout=WAIT_SLICE_S)
        for sender in self.downstream:
            sender.finish()
        self._stop_replicas()

    @property
    def in_flight(self) -> int:
        return len(self._items)

    @property
    def credits(self) -> int:
        """Items the pool lets be in flight: every live replica's window."""
        return self.window * max(1, len(self.replicas))

    def snapshots(self) -> list[dict[str, Any]]:
        mine = {
            "edge": self.name, "consumer": self.pool,
            "window": self.window * max(1, self._live_count()),
            "in_flight": len(self._items), "high_water": self.high_water, "sent": self.sent,
            "bytes_sent": self.bytes_sent, "drops": 0, "held": len(self._done),
            "policy": "Dispatch", "signal": self.signals.current.value,
        }
        return [mine, *(s for d in self.downstream for s in d.snapshots())]

    def take_warnings(self) -> list[dict[str, Any]]:
        """What the replicas logged with the items they returned since the last call."""
        taken = []
        while self._warnings:
            taken.append(self._warnings.popleft())
        return taken

    def pool_snapshot(self) -> dict[str, Any]:
        return {"pool": self.pool, "replicas": [r.snapshot() for r in self.replicas],
                "lost": self.lost, "requeued": self.requeued,
                "counters": self._pool_counters()}

    # -- dispatching ----------------------------------------------------------
    def _free_replica(self, suspect: bool = False) -> Replica | None:
        """The live replica with the fewest items in flight that can take one more; a
        suspect needs an idle replica to itself."""
        room = 1 if suspect else self.window
        live = [r for r in self.replicas
                if r.state == "live" and not r.isolated and len(r.inflight) < room]
        return min(live, key=lambda r: len(r.inflight), default=None)

    def _live_count(self) -> int:
        return sum(r.state == "live" for r in self.replicas)

    def _dispatch(self, item: _Item, replica: Replica) -> None:
        status, batch = replica.handle.process_item.remote(self.name, item.seq, item.out.payload)
        replica.inflight[status] = item.seq
        replica.isolated = item.deaths > 0
        item.batch_ref = batch
        self.high_water = max(self.high_water, len(self._items))

    def _pump_retries(self) -> None:
        while self._retry:
            replica = self._free_replica(suspect=True)
            if replica is None:
                return
            seq = self._retry.popleft()
            self._dispatch(self._items[seq], replica)

    # -- completions ----------------------------------------------------------
    def _reap(self, timeout: float) -> None:
        self._check_starting()
        refs = [ref for r in self.replicas if r.state == "live" for ref in r.inflight]
        if refs:
            # Wake at the first completion (a replica idles until it gets its next item),
            # then take every other one that is ready too.
            ready, _ = ray.wait(refs, num_returns=1, timeout=timeout, fetch_local=False)
            if ready and len(refs) > 1:
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
            for ref in ready:
                self._complete(ref)
        elif timeout:
            time.sleep(min(timeout, 0.02))
        self._pump_retries()
        self._forward()
        self._check_alive()

    def _complete(self, ref: Any) -> None:
        replica = next((r for r in self.replicas if ref in r.inflight), None)
        if replica is None or replica.state != "live":
            return  # that replica was declared dead meanwhile; its items are requeued
        try:
            status = ray.get(ref, timeout=WAIT_SLICE_S)
        except GetTimeoutError:
            return
        except RayError as exc:  # the actor died, or its node (and the result) was lost
            self._replica_died(replica, exc)
            return
        seq = replica.inflight.pop(ref)
        replica.isolated = False
        self._warnings.extend(status.get("warnings", ()))
        if not status.get("ok"):
            raise PipelineError(self.pool, f"{status['cause']} (on {self._items[seq].label})",
                                status.get("details", ""))
        replica.items += 1
        replica.busy_s += status["busy_s"]
        replica.counters = status["counters"]
        self._done[seq] = self._items[seq]

    def _forward(self) -> None:
        """Hand finished results downstream in dispatch order."""
        while self._next_out in self._done:
            item = self._done.pop(self._next_out)
            out = Outgoing(Batch(), [item.batch_ref], item.out.nbytes)
            for sender in self.downstream:
                sender.offer(out)
            del self._items[item.seq]
            self._next_out += 1

    # -- losing replicas ------------------------------------------------------
    def _replica_died(self, replica: Replica, exc: BaseException) -> None:
        replica.state = "dead"
        self.lost += 1
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        log.warning("pool %s: replica %s died (%s); requeueing %d item(s)", self.pool,
                    replica.name, first[:200], len(replica.inflight))
        for seq in sorted(replica.inflight.values()):
            item = self._items[seq]
            item.deaths += 1
            if item.deaths >= POISON_LIMIT:
                raise PipelineError(
                    self.pool, f"{item.label} was in flight on {item.deaths} replicas that "
                    "died; giving up on it (a poison item: check that input, or the nodes)")
            self._retry.append(seq)
            self.requeued += 1
        replica.inflight.clear()
        try:
            ray.kill(replica.handle, no_restart=True)
        except Exception:
            log.debug("kill of %s failed", replica.name, exc_info=True)
        self._start_replacement()

    def _start_replacement(self) -> None:
        limit = REPLACEMENTS_PER_REPLICA * len(self.spec["replicas"])
        if self._started - len(self.spec["replicas"]) >= limit:
            log.warning("pool %s: %d replacements already; not starting more", self.pool, limit)
            return
        name = f"{self.pool}#{self._started}"
        self._started += 1
        spec = self.spec["replacement"]
        try:
            # The driver passes placement.start_host in (placement imports the host module).
            handle = spec["start"](spec["pipeline"], name, spec["elements"], spec["placement"],
                                   spread=True)
        except Exception as exc:  # no node can host it any more
            log.warning("pool %s: cannot start a replacement: %s", self.pool, exc)
            return
        replica = Replica(name, handle)
        replica.ready_ref = handle.start_replica.remote(self.spec["caps_in"],
                                                        self.spec["upstream"])
        self.replicas.append(replica)

    def _check_starting(self) -> None:
        for r in self.replicas:
            if r.state != "starting":
                continue
            ready, _ = ray.wait([r.ready_ref], timeout=0)
            if not ready:
                continue
            try:
                reply = ray.get(r.ready_ref, timeout=WAIT_SLICE_S)
            except RayError as exc:
                r.state = "dead"
                log.warning("pool %s: replacement %s failed to start: %s", self.pool, r.name,
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                continue
            if "error" in reply:
                raise PipelineError(r.name, reply["error"])
            r.node_id, r.pid, r.state = reply.get("node_id", ""), reply.get("pid", 0), "live"
            log.info("pool %s: replacement %s is live", self.pool, r.name)

    def _check_alive(self) -> None:
        if any(r.state in ("live", "starting") for r in self.replicas):
            return
        raise PipelineError(self.pool, f"every replica of the pool died ({self.lost} lost) "
                            "and no replacement could be started; no node can host it")

    def _check_abort(self) -> None:
        if self._abort.is_set():
            raise Aborted()

    def _stop_replicas(self) -> None:
        for r in self.replicas:
            if r.state == "live":
                r.handle.stop.remote(True)

    def _pool_counters(self) -> dict[str, Any]:
        """The pool element's counters: the sum over its replicas, dead ones included."""
        total: dict[str, Any] = {}
        for r in self.replicas:
            for key, value in r.counters.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    total[key] = total.get(key, 0) + value
                elif isinstance(value, list):
                    total.setdefault(key, []).extend(value)
                elif key == "last_buffer_time":
                    total[key] = max(filter(None, (total.get(key), value)), default=None)
        return total

