"""What a running Ray cluster holds, for ``parallax cluster``: nodes and Parallax pipelines.

Reads the GCS only (node and actor tables), so it needs no dashboard and starts nothing;
it never starts a local Ray when no cluster answers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import Any

import ray

from actors.errors import ConfigError

ENCODER_LABEL_PREFIX = "parallax.encoder."
HOST_NAME_PREFIX = "parallax:"  # pipelines/runtime/placement.py names its host actors so
HEAD_RESOURCE = "node:__internal_head__"
CONNECT_CHECK_S = 3.0  # seconds: a GCS that does not accept a TCP connection is not there
GCS_DEFAULT_PORT = 6379


def cluster_address(address: str | None) -> str:
    """The GCS address to connect to (HOST:PORT), or a ConfigError saying what to set."""
    address = (address or os.environ.get("RAY_ADDRESS") or "").strip()
    if not address:
        raise ConfigError("no cluster address: set RAY_ADDRESS=HEAD_IP:6379 (or pass "
                          "--address); start a head with cluster/start-node.sh --head")
    if address.startswith(("http://", "https://")):
        raise ConfigError(f"RAY_ADDRESS {address!r} is a job server (ray job submit); "
                          "parallax cluster needs the head's GCS address, HEAD_IP:6379")
    if address in ("local", "auto"):
        raise ConfigError(f"address {address!r}: give the head's address, HEAD_IP:6379")
    return address


def _check_reachable(address: str) -> None:
    """ray.init() would wait about 40 s, printing C++ warnings, for a GCS that is not
    there; a TCP connect says the same in at most CONNECT_CHECK_S."""
    if address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host:
        host, port = address, str(GCS_DEFAULT_PORT)
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_CHECK_S):
            pass
    except ValueError:
        raise ConfigError(f"cluster address {address!r}: give HEAD_IP:PORT, e.g. "
                          "10.0.0.5:6379") from None
    except OSError as exc:
        raise ConfigError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); "
                          "start one with cluster/start-node.sh --head, or fix RAY_ADDRESS"
                          ) from None


def connect(address: str) -> None:
    """Join the cluster as a driver that runs nothing."""
    _check_reachable(address)
    logging.getLogger("ray").setLevel(logging.ERROR)
    try:
        ray.init(address=address, namespace="parallax", log_to_driver=False,
                 logging_level=logging.ERROR, configure_logging=False)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        hint = ""
        if "auth" in first.lower() or "token" in first.lower():
            hint = ("; this cluster uses token auth: set RAY_AUTH_MODE=token and its token "
                    "(RAY_AUTH_TOKEN or ~/.ray/auth_token)")
        raise ConfigError(f"could not join the Ray cluster at {address}: {first}{hint}"
                          ) from None


def _node(n: dict[str, Any]) -> dict[str, Any]:
    res = n.get("Resources") or {}
    labels = {k: v for k, v in (n.get("Labels") or {}).items() if not k.startswith("ray.io/")}
    encoders = sorted(k[len(ENCODER_LABEL_PREFIX):] for k, v in labels.items()
                      if k.startswith(ENCODER_LABEL_PREFIX) and v == "true")
    return {
        "node_id": n["NodeID"],
        "address": n.get("NodeManagerAddress"),
        "hostname": n.get("NodeManagerHostname"),
        "head": HEAD_RESOURCE in res,
        "alive": bool(n.get("Alive")),
        "cpus": res.get("CPU", 0),
        "gpus": res.get("GPU", 0),
        "memory_bytes": int(res.get("memory", 0)),
        "object_store_bytes": int(res.get("object_store_memory", 0)),
        "labels": labels,
        "encoders": encoders,
        "resources": {k: v for k, v in res.items() if not k.startswith("node:")
                      and k not in ("CPU", "GPU", "memory", "object_store_memory")},
    }


def _pipelines() -> list[dict[str, Any]]:
    """Parallax pipelines with live hosts: host actors are named parallax:PIPELINE:HOST."""
    found: dict[str, list[dict[str, Any]]] = {}
    actors = ray._private.state.actors(actor_state_name="ALIVE")
    for info in actors.values():
        name = info.get("Name") or ""
        if not name.startswith(HOST_NAME_PREFIX):
            continue
        pipeline, _, host = name[len(HOST_NAME_PREFIX):].partition(":")
        found.setdefault(pipeline, []).append(
            {"host": host, "node_id": info["Address"]["NodeID"], "pid": info.get("Pid")})
    return [{"pipeline": p, "hosts": sorted(hosts, key=lambda h: h["host"])}
            for p, hosts in sorted(found.items())]


def cluster_snapshot(address: str | None = None) -> dict[str, Any]:
    """Nodes (resources, Parallax labels, working encoders) and running pipelines of the
    cluster at ``address`` (or $RAY_ADDRESS); a ConfigError when there is none."""
    address = cluster_address(address)
    connect(address)
    try:
        nodes = sorted((_node(n) for n in ray.nodes()),
                       key=lambda n: (not n["head"], not n["alive"], n["node_id"]))
        return {"address": address, "nodes": nodes, "pipelines": _pipelines()}
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
