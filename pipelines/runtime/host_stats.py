"""What a host reports when the driver polls it: its elements' counters, its edges' and
its pools' figures, its flow signal, and the warnings logged since the last poll."""

from __future__ import annotations

import time
from typing import Any

from actors.element import Counters, Element
from pipelines.runtime import host_log
from pipelines.runtime.pool import PoolDispatcher


def figures(el: Element | None) -> dict[str, Any]:
    """An element's raw counters, as hosts report them (zeros for None)."""
    c = el.counters if el is not None else Counters()
    return {
        "buffers_in": c.buffers_in, "buffers_out": c.buffers_out, "frames_in": c.frames_in,
        "bytes_in": c.bytes_in, "bytes_out": c.bytes_out,
        "processing_time": c.processing_time, "blocked_time": c.blocked_time,
        "last_buffer_time": c.last_buffer_time, "errors": c.errors, "drops": c.drops,
        "latencies": list(c.latencies), "e2e_latencies": list(c.e2e_latencies),
    }


def snapshot(host: Any, owner: str) -> dict[str, Any]:
    """One poll's figures of ``host`` (an ElementHost); ``owner``: the element whose
    counters its outgoing edges' drops and blocked time add to."""
    elements = {el.name: figures(el) for el in host.elements}
    elements[host.names[0]]["reordered"] = host.reordered
    if host.is_source:
        elements[host.names[0]]["live"] = host.elements[0].live_status()
    senders = [snap for s in host.senders for snap in s.snapshots()]
    elements[owner]["drops"] += sum(s["drops"] for s in senders)
    elements[owner]["blocked_time"] += sum(s.blocked_time for s in host.senders)
    pools = [s.pool_snapshot() for s in host.senders if isinstance(s, PoolDispatcher)]
    for pool in pools:
        if pool["counters"]:
            elements[pool["pool"]] = {**figures(None), **pool["counters"]}
    return {
        "pools": pools,
        "time": time.time(),
        "elements": elements,
        "edges": senders,
        "mailbox_depth": host.mailbox.qsize() + sum(len(r) for r in host.reorder.values()),
        "credits_in_use": sum(s["in_flight"] for s in senders),
        "credits_total": sum(s["window"] for s in senders),
        "signal": host.signal.value,
        "signal_log": list(host.signal_log),
        "reordered": host.reordered,
        "warnings": [w for s in host.senders if isinstance(s, PoolDispatcher)
                     for w in s.take_warnings()] + host_log.drain(),
    }
