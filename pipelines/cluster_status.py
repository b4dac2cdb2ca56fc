"""``parallax cluster``: the nodes of the cluster RAY_ADDRESS points at, and its pipelines.

Plain lines (they read the same in a terminal, a log or a pipe); ``--json`` for machines.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any

GIB = 1024**3


def add_parser(sub: Any) -> None:
    c = sub.add_parser("cluster", help="list the cluster's nodes, labels, encoders, pipelines",
                       description="List the nodes of the Ray cluster at RAY_ADDRESS "
                                   "(HEAD_IP:6379): address, CPUs, memory, object store, "
                                   "Parallax labels and working encoders, and the Parallax "
                                   "pipelines running, element by element. Exits 2 when no "
                                   "cluster answers.")
    c.add_argument("--address", help="the head's address, HEAD_IP:6379 (default $RAY_ADDRESS)")
    c.add_argument("--json", action="store_true", help="one JSON object on stdout")


def cmd_cluster(args: argparse.Namespace) -> int:
    from pipelines.runtime.cluster_info import cluster_snapshot

    snap = cluster_snapshot(args.address)
    out = getattr(args, "json_out", sys.stdout)
    if args.json:
        print(json.dumps(snap, indent=2), file=out, flush=True)
    else:
        print_snapshot(snap, out)
    return 0


def print_snapshot(snap: dict[str, Any], out: IO[str]) -> None:
    nodes = snap["nodes"]
    alive = sum(n["alive"] for n in nodes)
    print(f"cluster at {snap['address']}: {alive} node(s) alive"
          f"{f', {len(nodes) - alive} dead' if alive < len(nodes) else ''}", file=out)
    for n in nodes:
        role = "head" if n["head"] else "worker"
        state = "" if n["alive"] else "  DEAD"
        print(f"  node {n['node_id'][:8]}  {n['address']}  {role}{state}  "
              f"cpus {n['cpus']:g}  memory {n['memory_bytes'] / GIB:.1f} GiB  "
              f"object store {n['object_store_bytes'] / GIB:.1f} GiB", file=out)
        labels = ", ".join(f"{k}={v}" for k, v in sorted(n["labels"].items())) or "none"
        print(f"    labels: {labels}", file=out)
        encoders = ", ".join(n["encoders"]) or "none advertised (start-node.sh advertises them)"
        print(f"    encoders: {encoders}", file=out)
    pipelines = snap["pipelines"]
    if not pipelines:
        print("no Parallax pipeline is running", file=out)
    for p in pipelines:
        hosts = ", ".join(f"{h['host']}@{h['node_id'][:8]}" for h in p["hosts"])
        print(f"pipeline {p['pipeline']}: {hosts}", file=out)
