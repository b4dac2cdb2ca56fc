"""Connecting to Ray: an embedded local instance unless a cluster address is given."""

from __future__ import annotations

import logging
import os

import ray

log = logging.getLogger("parallax.runtime")

LOOPBACK = "127.0.0.1"
# Ray frees dead objects in batches, by default once a second; at 1080p30 that is
# 250 MB of frames that are gone but still occupy the store. 20 ms keeps the arena
# close to what the credit windows allow. Cluster nodes get the same through
# RAY_free_objects_period_milliseconds (see cluster/start-node.sh).
FREE_OBJECTS_PERIOD_MS = 20


def ensure_ray(address: str | None = None, num_cpus: int | None = None,
               quiet: bool = False) -> None:
    """Connect to ``address`` (or $RAY_ADDRESS); with neither, start a local Ray on loopback.

    Token authentication stays on (Ray's default); jobs submitted with
    ``ray job submit`` connect to their cluster through $RAY_ADDRESS.
    """
    if ray.is_initialized():
        return
    if quiet:  # the CLI shows its own progress; Ray's start-up chatter is noise there
        logging.getLogger("ray").setLevel(logging.ERROR)
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, namespace="parallax", log_to_driver=True)
        return
    ray.init(
        num_cpus=num_cpus,
        logging_level=logging.ERROR if quiet else logging.INFO,
        include_dashboard=False,
        namespace="parallax",
        _node_ip_address=LOOPBACK,
        _system_config={"free_objects_period_milliseconds": FREE_OBJECTS_PERIOD_MS},
        log_to_driver=True,
    )
    log.info("started a local Ray instance (no cluster address given)")


def shutdown_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()
