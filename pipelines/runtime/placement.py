"""Placing hosts on nodes: Ray resources and label selectors, with a bounded wait.

Ray leaves an actor pending forever when no node can take it. We check the
request against the live nodes first, for an immediate and precise error, and
then bound the wait for the actor to come up, for everything a static check
cannot see (resources all taken, nodes still joining).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import time
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.element import Element, Placement
from actors.errors import ConfigError, PipelineError, PlacementError
from pipelines.runtime.host import ElementHost

# An async actor serves one push per credit of every input edge, plus control calls.
HOST_MAX_CONCURRENCY = 1000
# At teardown a host gets this long to close its elements and exit by itself, and the
# driver waits a little longer before it kills what is left.
EXIT_JOIN_S = 2.0
EXIT_GRACE_S = EXIT_JOIN_S + 1.0

_HostActor = ray.remote(ElementHost)

log = logging.getLogger("parallax.placement")


def _label_matches(want: str, have: str | None) -> bool:
    """Ray's selector syntax: "v", "!v", "in(a,b)" and "!in(a,b)"."""
    negate = want.startswith("!")
    want = want[1:] if negate else want
    if want.startswith("in(") and want.endswith(")"):
        hit = have in {v.strip() for v in want[3:-1].split(",")}
    else:
        hit = have == want
    return hit != negate


def node_fits(node: dict[str, Any], placement: Placement) -> bool:
    labels = node.get("Labels") or {}
    if not all(_label_matches(v, labels.get(k)) for k, v in placement.label_selector.items()):
        return False
    res = node.get("Resources") or {}
    asks = dict(placement.resources)
    if placement.num_cpus:
        asks["CPU"] = placement.num_cpus
    if placement.num_gpus:
        asks["GPU"] = placement.num_gpus
    return all(res.get(k, 0) >= v for k, v in asks.items())


DRIVER_NODE = "driver"


def pinned_node(placement: Placement) -> str | None:
    """The node id a placement pins to ("driver": this process's node), or None."""
    if placement.node == DRIVER_NODE:
        return ray.get_runtime_context().get_node_id()
    return placement.node


def describe_node(placement: Placement | None) -> str:
    """' (on node 1a2b3c4d, label_selector {...})' for a placement pinned to a node by
    id (--source-node / --output-node), to add to an error raised there; else ''."""
    if placement is None or placement.node in (None, DRIVER_NODE):
        return ""
    sel = f", label_selector {placement.label_selector}" if placement.label_selector else ""
    return f" (on node {placement.node[:8]}{sel})"


def check_feasible(host: str, placement: Placement) -> None:
    nodes = [n for n in ray.nodes() if n["Alive"]]
    pinned = pinned_node(placement)
    if pinned is not None:
        nodes = [n for n in nodes if n["NodeID"] == pinned]
        if not nodes:
            raise PlacementError(f"'{host}' is pinned to node {pinned}, which is not a live "
                                 "node of this cluster")
    if any(node_fits(n, placement) for n in nodes):
        return
    seen = "; ".join(
        f"{n['NodeID'][:8]}: labels "
        f"{ {k: v for k, v in (n.get('Labels') or {}).items() if not k.startswith('ray.io/')} } "
        f"resources { {k: v for k, v in n['Resources'].items() if not k.startswith('node:')} }"
        for n in nodes
    )
    raise PlacementError(
        f"no node can host '{host}': it asks for label_selector={placement.label_selector} "
        f"resources={placement.resources} num_cpus={placement.num_cpus} "
        f"num_gpus={placement.num_gpus}, and the {len(nodes)} live node(s) offer: {seen}. "
        "Start a node with matching labels/resources (see cluster/), or change the placement"
    )


def spread_nodes(placement: Placement, count: int) -> list[str]:
    """A node for each of ``count`` replicas: one per node in turn, each node taking as many
    as it has CPUs before any takes more. Ray's SPREAD strategy, and a soft node affinity,
    both put all three replicas of a 0-CPU pool on one node of three at times (measured);
    a hard affinity to a node that was alive a moment ago does not."""
    slots: list[list[str]] = []
    for node in sorted(ray.nodes(), key=lambda n: n["NodeID"]):
        if node["Alive"] and node_fits(node, placement):
            cpus = int((node.get("Resources") or {}).get("CPU", 0))
            slots.append([node["NodeID"]] * max(1, cpus))
    order = [n for round_ in itertools.zip_longest(*slots) for n in round_ if n is not None]
    return [order[i % len(order)] for i in range(count)] if order else []


def auto_replicas(placement: Placement) -> int:
    """One replica per CPU of the live nodes that fit (per unit of a custom resource, when
    the placement asks for one, e.g. one per NVENC session)."""
    total = 0
    for node in ray.nodes():
        if not node["Alive"] or not node_fits(node, placement):
            continue
        res = node.get("Resources") or {}
        asks = {k: v for k, v in placement.resources.items() if v > 0}
        if asks:
            total += int(min(res.get(k, 0) // v for k, v in asks.items()))
        else:
            total += int(res.get("CPU", 0))
    return max(1, total)


MAX_REPLICAS_PER_SLOT = 4
"""Replicas of a pool per CPU (or resource unit) of the nodes it fits, at most: each is a
process, and 100,000 of them on a laptop is a typo that would hang the start."""


def pool_size(name: str, placement: Placement, replicas: int | None) -> int:
    """How many replicas a pool runs: ``replicas``, or one per slot when None ("auto")."""
    slots = auto_replicas(placement)
    if replicas is None:
        return slots
    if replicas > MAX_REPLICAS_PER_SLOT * slots:
        raise ConfigError(
            f"pool {name!r}: {replicas} replicas is more than the nodes it may run on can "
            f"hold ({slots} CPU slot(s), at most {MAX_REPLICAS_PER_SLOT} replicas each); ask "
            f"for at most {MAX_REPLICAS_PER_SLOT * slots}, or auto")
    return replicas


def start_host(pipeline: str, name: str, elements: list[Element], placement: Placement,
               spread: bool = False, node: str | None = None) -> Any:
    """Start a host actor; ``spread``: prefer nodes that have fewer of them (pools);
    ``node``: run on this node (a pool's share, see spread_nodes)."""
    check_feasible(name, placement)
    options: dict[str, Any] = {
        "num_cpus": placement.num_cpus,
        "num_gpus": placement.num_gpus,
        "resources": dict(placement.resources),
        "max_concurrency": HOST_MAX_CONCURRENCY,
        "max_restarts": 0,
        "name": f"parallax:{pipeline}:{name}",
        "namespace": "parallax",
        "get_if_exists": False,
    }
    if placement.label_selector:
        options["label_selector"] = dict(placement.label_selector)
    pinned = pinned_node(placement)
    if pinned is not None:
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(pinned, soft=False)
    elif node is not None:  # hard: a soft affinity fell back to one node (measured)
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
    elif spread:
        options["scheduling_strategy"] = "SPREAD"
    return _HostActor.options(**options).remote(pipeline, elements)


def wait_placed(hosts: dict[str, Any], placements: dict[str, Placement],
                timeout: float) -> dict[str, dict[str, Any]]:
    """Wait until every host actor runs; raise PlacementError for those that don't in time."""
    refs = {name: h.ready.remote() for name, h in hosts.items()}
    _, pending = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout)
    info: dict[str, dict[str, Any]] = {}
    for name, ref in refs.items():
        if ref in pending:
            p = placements[name]
            raise PlacementError(
                f"'{name}' was not placed within {timeout:g} s: no node with "
                f"label_selector={p.label_selector} resources={p.resources} has room for it. "
                "Free resources, add a node, or raise placement_timeout"
            )
        try:
            info[name] = ray.get(ref, timeout=timeout)
        except (RayActorError, GetTimeoutError) as exc:
            missing = re.search(r"No module named '([^']+)'", str(exc))
            if missing:
                raise ConfigError(
                    f"'{name}' cannot start on its node: module '{missing.group(1)}' is not "
                    "importable there; pip install it on every node, or pass it to Ray with "
                    "runtime_env={'py_modules': [...]} or {'working_dir': ...}"
                ) from None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PipelineError(name, f"failed to start: {first}") from exc
    return info


def wait_gone(pids: list[int], timeout: float) -> None:
    """Wait (bounded) until these local processes have exited, so that none still writes
    to a file the driver is about to finish."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            except PermissionError:  # not ours to signal: assume it lives on
                pass
            time.sleep(0.05)


def wind_up_hosts(hosts: list[Any], grace: float = EXIT_GRACE_S) -> list[dict[str, Any]]:
    """Have every host close its elements; returns the warnings they logged meanwhile,
    oldest first. A host that is dead, or takes longer than ``grace``, says nothing."""
    calls = []
    for h in hosts:
        with contextlib.suppress(Exception):  # a handle Ray no longer knows
            calls.append(h.wind_up.remote(EXIT_JOIN_S))
    if not calls:
        return []
    ready, _ = ray.wait(calls, num_returns=len(calls), timeout=grace, fetch_local=True)
    records = []
    for ref in ready:
        with contextlib.suppress(RayError):
            records += ray.get(ref, timeout=grace)
    return sorted(records, key=lambda r: r["time"])


def end_hosts(hosts: list[Any], grace: float = EXIT_GRACE_S) -> list[Any]:
    """Ask every host to exit by itself; kill those still there after ``grace`` seconds.

    Returns the hosts that had to be killed. An exit call's result is the actor's death
    (RayActorError), so ray.wait sees each host go.
    """
    calls: dict[Any, Any] = {}
    killed = []
    for h in hosts:
        try:
            calls[h] = h.exit.remote(EXIT_JOIN_S)
        except Exception:  # a handle Ray no longer knows: nothing to ask
            killed.append(h)
    pending: list[Any] = []
    if calls:
        _, pending = ray.wait(list(calls.values()), num_returns=len(calls), timeout=grace,
                              fetch_local=False)
    killed += [h for h, ref in calls.items() if ref in pending]
    for h in killed:
        try:
            ray.kill(h, no_restart=True)
        except Exception:
            log.debug("kill failed", exc_info=True)
    if killed:
        log.debug("%d host(s) did not exit within %.0f s and were killed", len(killed), grace)
    return killed
