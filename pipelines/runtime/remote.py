"""Running a plain function on the node an element will run on: reading an input there.

``--source-node site=b`` puts the source on a node chosen by label, so the checks that read
the input before anything starts (does it exist, its streams, its rotation) must read it on
that node too, or they would look at the driver's disk. ``node_for`` turns a label
selector into one live node (the probe and the element then see the same disk, even when
several nodes match) and ``call_on`` runs a function there as a Ray task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import ray
from ray.exceptions import GetTimeoutError, RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors import errors
from actors.element import Placement
from actors.errors import ConfigError, MediaError, ParallaxError, PlacementError
from pipelines.runtime.connection import ensure_ray
from pipelines.runtime.placement import (
    DRIVER_NODE,
    check_feasible,
    describe_node,
    node_fits,
    pinned_node,
)

T = TypeVar("T")

# A task on another node may need a worker process started there first (seconds on a
# busy machine); a node that cannot run one in this long is reported, not waited on.
CALL_TIMEOUT_S = 120.0


def node_for(what: str, selector: dict[str, str]) -> Placement:
    """A placement pinned to one live node whose labels match ``selector`` (hard), the
    driver's own node first when it matches (nothing then leaves this machine), else the
    first by node id. No match: the PlacementError of the placement pre-check, naming
    ``what`` (e.g. "--source-node site=b") and what the live nodes offer."""
    ensure_ray()
    wanted = Placement(label_selector=dict(selector))
    here = ray.get_runtime_context().get_node_id()
    fits = sorted((n["NodeID"] for n in ray.nodes() if n["Alive"] and node_fits(n, wanted)),
                  key=lambda n: (n != here, n))
    if not fits:
        check_feasible(what, wanted)  # raises, with the offer of every live node
        raise PlacementError(f"no live node has the labels of {what}")  # one joined since
    return Placement(label_selector=dict(selector), node=fits[0])


def _run(fn: Callable[..., Any], args: tuple[Any, ...]) -> dict[str, Any]:
    """In the task: the result, or the Parallax error as data (its class by name), so the
    driver raises the same class with the same one-line message, not a RayTaskError with
    a remote traceback."""
    try:
        return {"result": fn(*args)}
    except ParallaxError as exc:
        return {"error": str(exc), "kind": type(exc).__name__}


_remote_run = ray.remote(num_cpus=0, max_retries=0)(_run)


def call_on(placement: Placement | None, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the node ``placement`` pins to (see node_for); here when it pins
    to nothing, to the driver, or to this very node. A ConfigError or MediaError raised
    there is raised here as the same class, its message naming the node."""
    if placement is None or placement.node in (None, DRIVER_NODE):
        return fn(*args)
    node = pinned_node(placement)
    if ray.is_initialized() and node == ray.get_runtime_context().get_node_id():
        return fn(*args)
    ensure_ray()
    task = _remote_run.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        label_selector=dict(placement.label_selector) or None)
    try:
        reply = ray.get(task.remote(fn, args), timeout=CALL_TIMEOUT_S)
    except GetTimeoutError:
        raise ConfigError(f"no answer from node {node[:8]} within {CALL_TIMEOUT_S:g} s"
                          f"{describe_node(placement)}: is it alive, with Parallax "
                          "installed?") from None
    except RayError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"cannot run on node {node[:8]}{describe_node(placement)}: "
                          f"{first}") from None
    if "error" in reply:
        cls = getattr(errors, reply["kind"], None)
        if not (isinstance(cls, type) and issubclass(cls, (ConfigError, MediaError))):
            cls = ConfigError  # e.g. PipelineError, which takes an element name first
        raise cls(reply["error"] + describe_node(placement))
    return reply["result"]
