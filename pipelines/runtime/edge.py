"""One edge between two hosts: the sender's credit window and the receiver's reorder buffer.

A credit is a push call that has not completed yet. The consumer completes a
push only once it has *released* the item (processed it and handed its outputs
on), so at most ``window`` items of an edge exist at any time: in the call
queue, the reorder buffer, the mailbox or the element. That bound is what
keeps memory bounded.

Ray may run calls from one caller out of order on an async actor, so every
item carries a per-edge sequence number and the receiver restores the order.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError

from actors.flow import FlowPolicy, FlowState, SignalTracker
from actors.types import DISCONT, EOS, item_nbytes
from pipelines.runtime.defaults import INLINE_MAX_BYTES, WAIT_SLICE_S

CLOSED = "closed"  # what a push returns when the receiver is shutting down
# How long a sender whose consumer died waits for the driver to wire in a replacement
# (a restart takes 1-3 s here) before it gives up as if there were no restart policy.
REPLACEMENT_WAIT_S = 30.0


class PeerClosed(Exception):
    """The receiver is shutting down (stop or another element's failure): stop quietly."""


class PeerFailed(Exception):
    """The receiver died or failed; the driver will report the receiver, not us."""

    def __init__(self, peer: str, cause: str) -> None:
        self.peer = peer
        super().__init__(f"downstream element '{peer}' failed: {cause}")


class Aborted(Exception):
    """This host was told to abort while waiting."""


class Outgoing:
    """An output item and what travels in the push call for it.

    Large payloads are put into the object store once and the reference is
    wrapped in a list, so Ray hands the consumer the reference instead of
    resolving it; a fan-out sends that one reference on every edge. The put
    happens at the first send, once an edge has granted credit, so the store
    never holds an item that waits for credit (nor one a Drop policy drops).
    """

    def __init__(self, item: Any, payload: Any = None, nbytes: int = 0,
                 put: bool = False) -> None:
        self.item, self._payload, self.nbytes, self._put = item, payload, nbytes, put

    @property
    def payload(self) -> Any:
        if self._put:
            self._payload, self._put = [ray.put(self.item)], False
        return self._payload

    @classmethod
    def wrap(cls, item: Any, reuse_ref: Any = None) -> Outgoing:
        size = item_nbytes(item)
        if reuse_ref is not None:
            return cls(item, [reuse_ref], size)
        if item is not EOS and size >= INLINE_MAX_BYTES:
            return cls(item, None, size, put=True)
        return cls(item, item, size)


def resolve(payload: Any) -> tuple[Any, Any]:
    """(item, object ref or None) for a received payload. Reading a ref is zero-copy."""
    if isinstance(payload, list) and len(payload) == 1 and isinstance(payload[0], ray.ObjectRef):
        return ray.get(payload[0]), payload[0]
    return payload, None


class ReorderBuffer:
    """Delivers items of one edge in sequence order. Never holds more than ``window`` items."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.next_seq = 0
        self.pending: dict[int, Any] = {}

    def put(self, seq: int, entry: Any) -> list[Any]:
        """Accept item ``seq``; return the entries now deliverable, in order."""
        if seq < self.next_seq or seq in self.pending:
            raise RuntimeError(f"sequence {seq} received twice (next expected {self.next_seq})")
        if len(self.pending) >= self.window:
            raise RuntimeError(
                f"reorder buffer overflow: {len(self.pending)} items waiting for "
                f"seq {self.next_seq} with a window of {self.window}"
            )
        self.pending[seq] = entry
        ready = []
        while self.next_seq in self.pending:
            ready.append(self.pending.pop(self.next_seq))
            self.next_seq += 1
        return ready

    def __len__(self) -> int:
        return len(self.pending)


class EdgeSender:
    """The producer's end of one edge: credits, sequence numbers, flow policy and signals."""

    def __init__(
        self,
        edge_id: str,
        consumer: Any,
        consumer_name: str,
        window: int,
        policy: FlowPolicy,
        abort: threading.Event,
        restartable: bool = False,
    ) -> None:
        self.name = edge_id
        self.consumer = consumer
        self.consumer_name = consumer_name
        self.restartable = restartable
        """The consumer has a restart policy: its death means wait for a replacement."""
        self.epoch = 0  # which incarnation of the consumer this edge feeds
        self.lost = 0  # items that were in flight on a consumer that died
        self._lost_since: float | None = None
        self._replacement: tuple[Any, int] | None = None
        self.window = window
        self.policy = policy
        self.flow = FlowState()
        self.signals = SignalTracker(window)
        self._abort = abort
        self._inflight: list[ray.ObjectRef] = []
        self._seq = 0
        self.high_water = 0
        self.sent = 0
        self.bytes_sent = 0
        self.blocked_time = 0.0

    # -- the CreditWindow interface the policies use --------------------------
    def has_credit(self) -> bool:
        self._reap(timeout=0)
        if self._waiting_for_replacement():
            return False
        return len(self._inflight) < self.window

    def wait_for_credit(self) -> None:
        if self.has_credit():
            return
        t0 = time.perf_counter()
        while not self.has_credit():
            if self._abort.is_set():
                raise Aborted()
            if self._lost_since is not None:
                time.sleep(WAIT_SLICE_S / 4)
            else:
                self._reap(timeout=WAIT_SLICE_S, num_returns=1)
        self.blocked_time += time.perf_counter() - t0

    def send(self, out: Outgoing) -> None:
        ref = self.consumer.push.remote(self.name, self._seq, out.payload, self.epoch)
        self._seq += 1
        self._inflight.append(ref)
        self.high_water = max(self.high_water, len(self._inflight))
        if out.item is not EOS and out.item is not DISCONT:
            self.sent += 1
            self.bytes_sent += out.nbytes

    # -- used by the host -----------------------------------------------------
    def offer(self, out: Outgoing) -> None:
        self.policy.offer(out, self, self.flow)

    def finish(self) -> None:
        """Send what the policy still holds, then EOS, then wait until all is released."""
        self.policy.drain(self, self.flow)
        while True:
            self.wait_for_credit()
            self.send(Outgoing(EOS, EOS, 0))
            while self._inflight:
                if self._abort.is_set():
                    raise Aborted()
                self._reap(timeout=WAIT_SLICE_S, num_returns=len(self._inflight))
            if self._lost_since is None:
                return
            # The consumer died before it released EOS: its replacement gets one too.

    def rewire(self, consumer: Any, epoch: int) -> None:
        """The driver started a replacement for our dead consumer (called from the host's
        event loop; the worker thread picks it up at its next credit check)."""
        self._replacement = (consumer, epoch)

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def credits(self) -> int:
        """Items this edge lets be in flight."""
        return self.window

    def snapshots(self) -> list[dict[str, Any]]:
        """This edge's figures (a pool's dispatcher also reports the edges behind it)."""
        return [self.snapshot()]

    def snapshot(self) -> dict[str, Any]:
        return {
            "edge": self.name,
            "consumer": self.consumer_name,
            "window": self.window,
            "in_flight": len(self._inflight),
            "high_water": self.high_water,
            "sent": self.sent,
            "bytes_sent": self.bytes_sent,
            "drops": self.flow.drops + self.lost,
            "held": len(self.flow.ring),
            "policy": self.policy.describe(),
            "signal": self.signals.current.value,
        }

    def _waiting_for_replacement(self) -> bool:
        if self._replacement is not None:
            (self.consumer, self.epoch), self._replacement = self._replacement, None
            self.lost += len(self._inflight)  # sent to the dead one: gone with it
            self._inflight, self._seq, self._lost_since = [], 0, None
        if self._lost_since is None:
            return False
        if time.monotonic() - self._lost_since > REPLACEMENT_WAIT_S:
            raise PeerFailed(self.consumer_name, f"actor died and no replacement came "
                             f"within {REPLACEMENT_WAIT_S:g} s")
        return True

    def _consumer_died(self, exc: BaseException, unreleased: int) -> None:
        if not self.restartable:
            raise PeerFailed(self.consumer_name, "actor died") from exc
        if self._lost_since is None:
            self._lost_since = time.monotonic()
        self.lost += unreleased + len(self._inflight)
        self._inflight = []

    def _reap(self, timeout: float, num_returns: int | None = None) -> None:
        if not self._inflight or self._lost_since is not None:
            return
        ready, self._inflight = ray.wait(
            self._inflight,
            num_returns=num_returns or len(self._inflight),
            timeout=timeout,
            fetch_local=False,
        )
        for i, ref in enumerate(ready):
            try:
                result = ray.get(ref, timeout=WAIT_SLICE_S)
            except RayActorError as exc:
                self._consumer_died(exc, unreleased=len(ready) - i)
                return
            except GetTimeoutError:
                continue
            except RayError as exc:
                raise PeerFailed(self.consumer_name, type(exc).__name__) from exc
            if result == CLOSED:
                raise PeerClosed(self.consumer_name)
