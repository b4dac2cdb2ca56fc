"""The object store as the arena: usage figures and the READY-time budget check.

Ray quietly spills to disk when the store fills, which turns a memory bug into a
slow pipeline; so before any data flows we check that every edge's window,
times its slot size, fits the store of the nodes the edge touches.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import ray

from actors.errors import BudgetError

log = logging.getLogger("parallax.arena")

_warned_store_stats = False

# Room left for everything that is not an edge slot (encoder state, Ray's own objects).
BUDGET_FRACTION = 0.8


@dataclass
class StoreStats:
    used: int = 0
    spilled: int = 0
    capacity: int = 0


@dataclass
class EdgeBudget:
    edge: str
    window: int
    slot_size: int
    nodes: tuple[str, ...]

    @property
    def reserved(self) -> int:
        return self.window * self.slot_size


def object_store_stats() -> StoreStats:
    """Bytes used and spilled across the cluster's object stores.

    Ray has no public API for this; the raylet answers the same request that
    ``ray memory --stats-only`` makes. If that ever changes we report zeros
    rather than fail the pipeline.
    """
    capacity = int(sum(
        n["Resources"].get("object_store_memory", 0) for n in ray.nodes() if n["Alive"]
    ))
    try:
        from ray._private.internal_api import get_memory_info_reply, get_state_from_address

        state = get_state_from_address(ray.get_runtime_context().gcs_address)
        reply = get_memory_info_reply(state, timeout_seconds=5.0)
        store = reply.store_stats
        return StoreStats(int(store.object_store_bytes_used), int(store.spilled_bytes_total),
                          capacity)
    except Exception as exc:
        global _warned_store_stats
        if not _warned_store_stats:
            _warned_store_stats = True
            log.warning("object store usage unavailable (%s: %s); memory figures will read 0. "
                        "Install ray[default]", type(exc).__name__, exc)
        return StoreStats(capacity=capacity)


def node_store_capacity() -> dict[str, int]:
    return {
        n["NodeID"]: int(n["Resources"].get("object_store_memory", 0))
        for n in ray.nodes()
        if n["Alive"]
    }


def check_budget(edges: list[EdgeBudget], capacity: dict[str, int] | None = None) -> int:
    """Refuse windows that cannot fit the object store. Returns the bytes reserved in all."""
    capacity = node_store_capacity() if capacity is None else capacity
    per_node: dict[str, list[EdgeBudget]] = defaultdict(list)
    for e in edges:
        for node in set(e.nodes):
            per_node[node].append(e)
    for node, node_edges in per_node.items():
        need = sum(e.reserved for e in node_edges)
        have = int(capacity.get(node, 0) * BUDGET_FRACTION)
        if need > have:
            worst = max(node_edges, key=lambda e: e.reserved)
            listed = ", ".join(
                f"{e.edge} {e.window} x {_human(e.slot_size)}" for e in node_edges
            )
            raise BudgetError(
                f"the edges' windows need {_human(need)} of object store on node {node[:8]} "
                f"but only {_human(have)} is usable ({BUDGET_FRACTION:.0%} of "
                f"{_human(capacity.get(node, 0))}): {listed}. Lower window= on the largest "
                f"edge ({worst.edge}), scale frames down earlier, or start Ray with a larger "
                "object_store_memory"
            )
    return sum(e.reserved for e in edges)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"
