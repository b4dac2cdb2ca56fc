"""The host actor: one generic Ray actor that runs one element or a fused chain of them.

RPCs (push, stats, pause, stop) run on the actor's asyncio loop and return
quickly; the media work runs on one worker thread per host, so a slow encode
never delays a stats poll or a stop. A push completes when the worker has
released its item, which is what makes the caller's credit come back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import socket
import threading
import time
import traceback
from typing import Any

import ray
from ray.exceptions import ObjectLostError

from actors.element import Element, Source
from actors.errors import ConfigError, ParallaxError, PipelineError
from actors.flow import Block, FlowSignal
from actors.pacing import Backlog
from actors.types import DISCONT, EOS, MAIN_PAD, Caps, OnPad
from pipelines.runtime import host_log
from pipelines.runtime.defaults import WAIT_SLICE_S
from pipelines.runtime.edge import (
    CLOSED,
    Aborted,
    EdgeSender,
    Outgoing,
    PeerClosed,
    PeerFailed,
    ReorderBuffer,
    resolve,
)
from pipelines.runtime.host_stats import figures, snapshot
from pipelines.runtime.metrics import HostMetrics
from pipelines.runtime.pool import Batch, PoolDispatcher

log = logging.getLogger("parallax.host")

SIGNAL_RANK = {FlowSignal.Ok: 0, FlowSignal.Busy: 1, FlowSignal.Drop: 2}


class ElementHost:
    """Hosts ``elements`` (a chain: each feeds the next in-process) on one Ray actor."""

    def __init__(self, pipeline: str, elements: list[Element]) -> None:
        self.pipeline = pipeline
        self.elements = elements
        self.names = [e.name for e in elements]
        self.is_source = isinstance(elements[0], Source)
        self.mailbox: queue.Queue = queue.Queue()
        self.reorder: dict[str, ReorderBuffer] = {}
        self.senders: list[EdgeSender | PoolDispatcher] = []
        self.sender_pads: list[str] = []  # the producer pad each sender takes
        self.edge_pads: dict[str, str] = {}  # input edge -> the input pad it feeds
        self.epochs: dict[str, int] = {}  # input edge -> the incarnation of its producer
        self.restartable_inputs: set[str] = set()  # producers that may die and come back
        self.restarted = False  # a replacement for a host that died
        self.pool_member = False  # a pool replica: items come by process_item, not push
        self.pool_pending: set[asyncio.Future] = set()
        self.playing = threading.Event()
        self.stop_requested = threading.Event()
        self.abort = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.done: asyncio.Future | None = None
        self.pending: set[asyncio.Future] = set()
        self.worker: threading.Thread | None = None
        self.current = self.names[0]
        self.signal = FlowSignal.Ok
        self.signal_log: list[str] = []
        self.reordered = 0  # items that arrived ahead of their turn (Ray reordered the calls)
        self.metrics = HostMetrics(pipeline, self.names)
        _quiet_blocking_get_warning()
        if ray._private.worker.global_worker.mode == ray.WORKER_MODE:  # an actor's process
            host_log.install()

    # -- setup, driven by the driver ------------------------------------------
    async def ready(self) -> dict[str, Any]:
        self._bind_loop()
        self.metrics.register()
        ctx = ray.get_runtime_context()
        return {"node_id": ctx.get_node_id(), "pid": os.getpid(), "hostname": socket.gethostname()}

    async def negotiate(self, caps_in: list[Caps], upstream: list[str],
                        pads: list[str] | None = None) -> dict[str, Any]:
        """Run caps negotiation through the chain. Errors come back as data, not exceptions."""
        try:
            caps, peers = caps_in, upstream
            for el in self.elements:
                caps, peers, pads = [el.negotiate(caps, peers, pads)], [el.name], None
            frames_total = self.elements[0].frames_total() if self.is_source else None
            return {"caps": caps[0], "frames_total": frames_total}
        except ParallaxError as exc:
            return {"error": str(exc), "kind": type(exc).__name__}
        except Exception as exc:
            return {"error": _describe(exc), "kind": None}

    async def connect(self, inputs: dict[str, int], outputs: list[dict[str, Any]],
                      pool_member: bool = False,
                      input_pads: dict[str, str] | None = None,
                      restartable_inputs: list[str] | None = None,
                      epochs: dict[str, int] | None = None,
                      restarted: bool = False) -> None:
        self.pool_member = pool_member
        self.reorder = {edge: ReorderBuffer(window) for edge, window in inputs.items()}
        self.edge_pads = dict(input_pads or {})
        self.restartable_inputs = set(restartable_inputs or ())
        self.epochs = dict(epochs or {})
        self.restarted = restarted
        self.senders = [self._sender(o) for o in outputs]
        self.sender_pads = [o.get("pad", MAIN_PAD) for o in outputs]
        pools = [len(s.replicas) for s in self.senders if isinstance(s, PoolDispatcher)]
        if self.is_source and len(self.elements) == 1 and pools:
            self.elements[0].consumers = max(pools)

    def _sender(self, o: dict[str, Any]) -> EdgeSender | PoolDispatcher:
        if "pool" in o:  # the edge into a pool; the pool's own outputs leave from here
            return PoolDispatcher(o, [self._sender(d) for d in o["downstream"]], self.abort)
        sender = EdgeSender(o["edge"], o["consumer"], o["consumer_name"], o["window"],
                            o["policy"], self.abort, restartable=o.get("restartable", False))
        sender.epoch = o.get("epoch", 0)
        return sender

    # -- restarts, driven by the driver ---------------------------------------
    async def reset_input(self, edge: str, epoch: int) -> None:
        """The producer of ``edge`` was replaced: its new incarnation numbers items from 0.
        What its dead one sent in order is in the mailbox and still taken; what waits in
        the reorder buffer for an item that will never come, or arrives late, is not."""
        old = self.reorder.get(edge)
        if old is None:
            return
        self.epochs[edge] = epoch
        self.reorder[edge] = ReorderBuffer(old.window)
        for _, fut, _ in old.pending.values():
            self._release(fut, CLOSED)

    async def request_keyframe(self) -> None:
        """An element downstream was replaced: the encoders here start a new GOP."""
        for el in self.elements:
            el.request_keyframe()

    async def rewire(self, edge: str, consumer: Any, epoch: int) -> None:
        """The consumer of our output ``edge`` was replaced: send to the new one."""
        for top in self.senders:
            for sender in [top, *getattr(top, "downstream", ())]:
                if sender.name == edge and isinstance(sender, EdgeSender):
                    sender.rewire(consumer, epoch)

    async def start_replica(self, caps_in: list[Caps], upstream: list[str]) -> dict[str, Any]:
        """A pool's replacement replica, in one call: negotiate, connect and play.

        One call, because Ray does not keep the order of calls to an async actor.
        """
        info = await self.ready()
        reply = await self.negotiate(caps_in, upstream)
        if "error" in reply:
            return reply
        await self.connect({}, [], pool_member=True)
        await self.play()
        return info

    async def play(self) -> None:
        self._bind_loop()
        if self.worker is None:
            self.worker = threading.Thread(target=self._work, name=f"host-{self.names[0]}",
                                           daemon=True)
            self.worker.start()
        self.playing.set()

    async def pause(self) -> None:
        self.playing.clear()

    async def stop(self, drain: bool = True) -> None:
        """drain: sources end the stream (EOS flows). Otherwise abort at once."""
        self.stop_requested.set()
        self.playing.set()
        if not drain:
            self._abort_now()

    async def wait_done(self) -> dict[str, Any]:
        self._bind_loop()
        return await asyncio.shield(self.done)

    async def wind_up(self, join_s: float) -> list[dict[str, Any]]:
        """Abort what still runs, give the worker thread ``join_s`` to close its elements,
        and return the warnings logged since the last poll: a writer that closes an
        output early says so then ("holds 19 complete fragments"), and the host is gone
        before the next poll would have carried it."""
        self._bind_loop()
        if not self.done.done():
            self._abort_now()
        if self.worker is not None and self.worker.is_alive():
            await asyncio.to_thread(self.worker.join, join_s)
        return host_log.drain()

    async def exit(self, join_s: float) -> None:
        """Leave by ourselves, at the driver's teardown: ray.kill() ends a worker while
        calls still run in it, and the C++ side then aborted with bad_optional_access
        (its stack trace reached the user's terminal). Work still running is aborted;
        the worker thread gets ``join_s`` to close its elements (finish or remove an
        output). Ray ends the actor once the calls running now return."""
        await self.wind_up(join_s)  # done already at a teardown, which took the warnings
        ray.actor.exit_actor()

    # -- data path ------------------------------------------------------------
    # Data-path calls record no task events: the GCS keeps every call's events, which
    # grew it by about 3.2 KB per item pushed (+51 MiB in a 10-minute 720p30 soak).
    @ray.method(enable_task_events=False)
    async def push(self, edge: str, seq: int, payload: Any, epoch: int = 0) -> str:
        if self.abort.is_set() or self.done.done() or epoch != self.epochs.get(edge, 0):
            return CLOSED  # or from a producer that died and was replaced since
        fut = self.loop.create_future()
        self.pending.add(fut)
        try:
            ready = self.reorder[edge].put(seq, (payload, fut, time.perf_counter()))
            self.reordered += not ready
            for entry in ready:
                self.mailbox.put((edge, *entry))
        except RuntimeError as exc:
            self.pending.discard(fut)
            self._fail(self.current, f"edge {edge}: {exc}", "", secondary=False)
            return CLOSED
        return await fut

    @ray.method(num_returns=2, enable_task_events=False)
    async def process_item(self, edge: str, seq: int, payload: Any) -> tuple[dict, Batch]:
        """A pool replica's data path: process one item, return (status, its outputs).

        The outputs are the call's result, so they belong to the dispatcher that called:
        they outlive this replica. Items are independent; there is no order to keep here.
        """
        if self.abort.is_set() or self.done.done():
            return {"ok": False, "cause": "the replica is stopping"}, Batch()
        fut = self.loop.create_future()
        self.pool_pending.add(fut)
        self.mailbox.put((edge, payload, fut, time.perf_counter()))
        return await fut

    # -- queries --------------------------------------------------------------
    # Polled about once a second for as long as the run lasts: without task events, like
    # the data path, so that the GCS does not grow with a long run's length either.
    @ray.method(enable_task_events=False)
    async def stats(self) -> dict[str, Any]:
        snap = snapshot(self, self._sender_owner())
        self.metrics.update(snap)
        return snap

    async def results(self) -> dict[str, Any]:
        return {el.name: el.results() for el in self.elements}

    # -- the worker thread ----------------------------------------------------
    def _work(self) -> None:
        ok = False
        try:
            for el in self.elements:
                self.current = el.name
                if self.restarted:
                    el.restarted()
                el.start()
            if self.restarted:  # downstream: what follows does not continue what was
                self._signal_all(DISCONT)
            if self.pool_member:
                self._run_pool_member()
            elif self.is_source:
                self._run_source()
            else:
                self._run_consumer()
            self._finish_stream()
            ok = True
            self._finish({"ok": True})
        except (PeerClosed, Aborted):
            self._finish({"ok": False, "stopped": True})
        except PeerFailed as exc:
            self._fail(self.current, str(exc), "", secondary=True, peer=exc.peer)
        except PipelineError as exc:  # a pool this host dispatches to failed: name the pool
            self._fail(exc.element, exc.cause, exc.details, secondary=False)
        except Exception as exc:
            self._fail(self.current, _describe(exc), traceback.format_exc(), secondary=False)
        finally:
            for el in self.elements:
                try:
                    el.close(ok)
                except Exception:
                    log.exception("closing %s", el.name)

    def _run_source(self) -> None:
        source: Source = self.elements[0]  # type: ignore[assignment]
        while not self.stop_requested.is_set():
            if not self.playing.wait(WAIT_SLICE_S):
                self._check_abort()
                continue
            self._update_signal(source)
            self.current = source.name
            item = source.handle_produce()
            if item is EOS:
                return
            if item is not None:
                self._emit(self._through(1, [item], None), None, None)
            self._check_abort()

    def _run_consumer(self) -> None:
        open_inputs = set(self.reorder)
        while open_inputs:
            try:
                edge, payload, fut, arrived = self.mailbox.get(timeout=WAIT_SLICE_S)
            except queue.Empty:
                self._check_abort()
                continue
            try:
                item, ref = resolve(payload)
            except ObjectLostError:
                if edge not in self.restartable_inputs:
                    raise
                self._release(fut, CLOSED)  # it lived in the store of a producer that died
                continue
            pad = self.edge_pads.get(edge, MAIN_PAD)
            if item is DISCONT:
                self._discontinuity()
            elif item is EOS:
                open_inputs.discard(edge)
                if open_inputs and not any(self.edge_pads.get(e, MAIN_PAD) == pad
                                           for e in open_inputs):
                    self._end_pad(pad)
            elif isinstance(item, Batch):  # the outputs of one item of a pool, in order
                for one in item:
                    self._emit(self._through(0, [one], time.perf_counter() - arrived), None,
                               None)
            else:
                waited = time.perf_counter() - arrived
                self._emit(self._through(0, [item], waited, pad), item, ref)
            self._release(fut, "ok")

    def _discontinuity(self) -> None:
        """An upstream host was replaced: each element hears it in chain order (what it
        returns goes through the rest), then it goes on to the hosts downstream."""
        for i, el in enumerate(self.elements):
            self.current = el.name
            self._emit(self._through(i + 1, list(el.discontinuity() or ()), None), None, None)
        self._signal_all(DISCONT)

    def _signal_all(self, signal: Any) -> None:
        """A signal goes out on every output, whatever its pad."""
        for sender in self.senders:
            sender.offer(Outgoing.wrap(signal))

    def _end_pad(self, pad: str) -> None:
        """One input pad ended while others go on: the element may flush what it held."""
        el = self.elements[0]
        self.current = el.name
        self._emit(self._through(1, el.handle_eos(pad), None), None, None)

    def _run_pool_member(self) -> None:
        while not self.stop_requested.is_set():
            try:
                _, payload, fut, arrived = self.mailbox.get(timeout=WAIT_SLICE_S)
            except queue.Empty:
                self._check_abort()
                continue
            el = self.elements[0]
            t0 = el.counters.processing_time
            try:
                item, _ = resolve(payload)
                outputs = self._through(0, [item], time.perf_counter() - arrived)
                status = {"ok": True, "busy_s": el.counters.processing_time - t0,
                          "counters": figures(el), "warnings": host_log.drain()}
                self._release(fut, (status, Batch(outputs)))
            except Exception as exc:
                el.counters.errors += 1
                status = {"ok": False, "cause": _describe(exc),
                          "details": traceback.format_exc(), "warnings": host_log.drain()}
                self._release(fut, (status, Batch()))

    def _through(self, start: int, items: list[Any], latency: float | None,
                 pad: str = MAIN_PAD) -> list[Any]:
        """Pass items through elements[start:], in-process (the fused part of the chain)."""
        for i, el in enumerate(self.elements[start:], start):
            self.current = el.name
            if i > start and any(isinstance(it, OnPad) for it in items):
                raise ConfigError(f"'{self.elements[i - 1].name}' produced an item on a pad "
                                  "other than its main one inside a fused chain")
            items = [out for it in items for out in el.handle(it, latency, pad)]
            latency, pad = None, MAIN_PAD
        return items

    def _emit(self, items: list[Any], in_item: Any, in_ref: Any) -> None:
        if items:
            self.current = self._sender_owner()
        for item in items:
            pad = MAIN_PAD
            if isinstance(item, OnPad):
                pad, item = item.pad, item.item
            out = Outgoing.wrap(item, in_ref if item is in_item else None)
            sent = False
            for sender, sender_pad in zip(self.senders, self.sender_pads):
                if sender_pad == pad:
                    sender.offer(out)
                    sent = True
            if not sent and pad != MAIN_PAD:
                raise ConfigError(f"'{self._sender_owner()}' produced an item on pad {pad!r}, "
                                  "which it did not declare in configure()")
            if self.is_source:
                self._update_signal(self.elements[0])

    def _finish_stream(self) -> None:
        """EOS: flush each element in chain order, then send EOS on every output."""
        if self.pool_member:
            left = self.elements[0].handle_eos()
            if left:  # pool elements must be 1:1 per item; a flush has nowhere to go
                log.warning("%s: %d item(s) left at the end of a pool replica were dropped",
                            self.names[0], len(left))
            return
        for i, el in enumerate(self.elements):
            if i == 0 and self.is_source:
                continue
            self.current = el.name
            self._emit(self._through(i + 1, el.handle_eos(), None), None, None)
        self.current = self.names[-1]
        for sender in self.senders:
            sender.finish()
        if self.is_source:
            self._deliver_signal(self.elements[0], FlowSignal.Eos)

    def _update_signal(self, source: Source) -> None:
        for sender in self.senders:
            if not isinstance(sender.policy, Block):
                # A live source that skips ticks sends nothing, and only a send reaps the
                # finished items: reap here, or its pacer would see a stall that is not.
                sender.has_credit()
            sender.policy.pump(sender, sender.flow)
            dropping = sender.flow.consecutive_drops > 0
            sender.signals.update(sender.in_flight, dropping=dropping)
        fullest = max(self.senders, key=lambda s: s.in_flight / s.credits, default=None)
        if fullest is not None:
            source.backlog = Backlog(fullest.credits, fullest.in_flight,
                                     fullest.sent - fullest.in_flight)
        worst = max((s.signals.current for s in self.senders), key=SIGNAL_RANK.get,
                    default=FlowSignal.Ok)
        if worst is not self.signal:
            self._deliver_signal(source, worst)

    def _deliver_signal(self, source: Source, signal: FlowSignal) -> None:
        self.signal = signal
        self.signal_log.append(signal.value)
        source.handle_flow_signal(signal)

    def _sender_owner(self) -> str:
        """The element answerable for the output edges: a source owns its flow policy."""
        return self.names[0] if self.is_source else self.names[-1]

    # -- completion -----------------------------------------------------------
    def _check_abort(self) -> None:
        if self.abort.is_set():
            raise Aborted()

    def _bind_loop(self) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
            self.done = self.loop.create_future()

    def _release(self, fut: asyncio.Future, value: Any) -> None:
        def settle() -> None:
            self.pending.discard(fut)
            self.pool_pending.discard(fut)
            if not fut.done():
                fut.set_result(value)

        self.loop.call_soon_threadsafe(settle)

    def _finish(self, result: dict[str, Any]) -> None:
        result.setdefault("element", self.current)

        def settle() -> None:
            if not self.done.done():
                self.done.set_result(result)
            for fut in list(self.pending):
                if not fut.done():
                    fut.set_result(CLOSED)
            self.pending.clear()
            for fut in list(self.pool_pending):
                if not fut.done():
                    fut.set_result(({"ok": False, "cause": "the replica stopped"}, Batch()))
            self.pool_pending.clear()

        self.loop.call_soon_threadsafe(settle)

    def _fail(self, element: str, cause: str, details: str, secondary: bool,
              peer: str | None = None) -> None:
        for el in self.elements:
            if el.name == element:
                el.counters.errors += 1
        self.abort.set()
        self._finish({"ok": False, "element": element, "cause": cause, "details": details,
                      "secondary": secondary, "peer": peer})

    def _abort_now(self) -> None:
        self.abort.set()
        if self.worker is None or not self.worker.is_alive():
            self._finish({"ok": False, "stopped": True})


def _quiet_blocking_get_warning() -> None:
    """Our blocking ray.get calls run on the worker thread, never on the event loop, so
    Ray's once-per-process warning about blocking gets in async actors does not apply."""
    try:
        import ray._private.worker as ray_worker

        ray_worker.blocking_get_inside_async_warned = True
    except (ImportError, AttributeError):
        pass


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ConfigError):
        return text
    return f"{type(exc).__name__}: {text}"
