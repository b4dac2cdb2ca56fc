"""Connecting to Ray: an embedded local instance unless a cluster address is given.

The embedded instance is private to this process and starts lean. ``ray.init()`` on a
fresh machine starts, besides the GCS, the raylet and its two agents, an autoscaler
monitor, a dashboard (API server) process even with ``include_dashboard=False``, and a
log monitor: three more Python processes, each 0.4-1.1 CPU-seconds of imports (measured
on 2 cores), competing with the critical path of a start-up that is CPU-bound on small
machines; and ray.init() waits for the dashboard to come up before it starts the raylet. A one-node
instance that only this process uses needs none of them at start-up; see
``LocalRayOptions`` and bench/startup.py for what each costs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ray

log = logging.getLogger("parallax.runtime")

LOOPBACK = "127.0.0.1"
# Ray frees dead objects in batches, by default once a second; at 1080p30 that is
# 250 MB of frames that are gone but still occupy the store. 20 ms keeps the arena
# close to what the credit windows allow. Cluster nodes get the same through
# RAY_free_objects_period_milliseconds (see cluster/start-node.sh).
FREE_OBJECTS_PERIOD_MS = 20


@dataclass(frozen=True)
class LocalRayOptions:
    """What the embedded local Ray starts, besides the GCS, the raylet and its agents.

    The defaults are the lean set; ``LocalRayOptions.ray_default()`` is what a plain
    ``ray.init()`` starts (bench/startup.py compares them).
    """

    dashboard: bool = False
    """The dashboard/API server process. With include_dashboard=False it only runs the
    usage-stats module, and ray.init() blocks until it is up (about 1 s of start-up).
    The job and state APIs of ``ray job`` / ``ray list`` need it; Parallax does not."""
    autoscaler: bool = False
    """The autoscaler monitor: nothing to scale on one local node."""
    log_monitor_delay: float | None = 5.0
    """Seconds after ray.init() to start the log monitor (or earlier, at
    start_log_forwarding()). It forwards what actors write to stderr (their warnings,
    e.g. a pool replica that died or an output removed as incomplete) to this process
    (log_to_driver), reading every worker log from its beginning: output written before
    it runs is forwarded then, not lost, unless the process ends first. 0: at start-up,
    as Ray does; None: never (actor output then stays in the session's log files)."""
    worker_prestart: bool = True
    """Let the raylet start idle workers when the driver connects (Ray's default)."""
    dynamic_agent_port: bool = True
    """Let the dashboard agent pick a free HTTP port instead of Ray's fixed 52365, which
    another Ray instance on the machine may hold: the agent then retries for up to 3 s
    (exponential back-off) and the raylet, which waits for that port, with it."""
    loopback: bool = True
    """Keep the node on 127.0.0.1. ray.init() rewrites a _node_ip_address of 127.0.0.1
    to the machine's routable address (services.resolve_ip_for_localhost), so the GCS,
    the raylet and the workers would listen on every interface."""

    @classmethod
    def ray_default(cls) -> LocalRayOptions:
        """What ray.init() starts by itself (the embedded Ray before these options)."""
        return cls(dashboard=True, autoscaler=True, log_monitor_delay=0,
                   dynamic_agent_port=False, loopback=False)


LEAN = LocalRayOptions()


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
    start_local_ray(num_cpus=num_cpus, quiet=quiet)
    log.info("started a local Ray instance (no cluster address given)")


def start_local_ray(num_cpus: int | None = None, quiet: bool = False,
                    options: LocalRayOptions = LEAN, **init_kwargs: Any) -> None:
    """Start a new single-node Ray for this process only, and connect to it.

    ``address="local"``: a new instance even when ``ray start`` or a test cluster runs
    on this machine (plain ray.init() would join that one, and then refuse our
    _system_config). ``init_kwargs`` go to ray.init() as they are.
    """
    system_config = {"free_objects_period_milliseconds": FREE_OBJECTS_PERIOD_MS}
    if not options.worker_prestart:
        system_config["enable_worker_prestart"] = False
    kwargs: dict[str, Any] = {
        "address": "local",
        "num_cpus": num_cpus,
        "logging_level": logging.ERROR if quiet else logging.INFO,
        "include_dashboard": False,
        "namespace": "parallax",
        "_node_ip_address": LOOPBACK,
        "_system_config": system_config,
        "log_to_driver": True,
        **init_kwargs,
    }
    with _lean_head_node(options) as started:
        ray.init(**kwargs)
    node = started.get("node")
    if node is not None and options.log_monitor_delay:
        node.start_log_monitor_later(options.log_monitor_delay)


def start_log_forwarding() -> None:
    """Forward actor output to this process now, if the embedded Ray deferred it.

    The lean embedded Ray starts its log monitor ``log_monitor_delay`` seconds after
    ray.init(), to keep it off the start-up's critical path; a pipeline that is PLAYING
    can call this to start it at once. A no-op when there is nothing deferred.
    """
    node = getattr(ray._private.worker, "_global_node", None)
    start_now = getattr(node, "start_log_monitor_now", None)
    if start_now is not None:
        start_now()


def shutdown_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()


@contextlib.contextmanager
def _lean_head_node(options: LocalRayOptions) -> Iterator[dict[str, Any]]:
    """While ray.init() runs, have it build its head node with ``options``.

    ray.init() exposes none of these settings (RayParams has no_monitor and
    include_log_monitor; nothing skips the API server), so ray.init() gets a subclass of
    ray._private.node.Node for the one call, in this process. Should Ray's internals no
    longer match, ray.init() runs unchanged: slower, but correct.
    """
    started: dict[str, Any] = {}
    try:
        import ray._private.node as node_module
        from ray._private.parameter import RayParams
        from ray._private.ray_constants import PROCESS_TYPE_LOG_MONITOR

        base = node_module.Node
        params = RayParams()
        usable = (all(hasattr(params, f) for f in ("no_monitor", "include_log_monitor",
                                                    "dashboard_agent_listen_port",
                                                    "node_ip_address"))
                  and all(hasattr(base, m) for m in ("start_api_server", "start_log_monitor",
                                                     "kill_all_processes")))
    except Exception:  # a Ray without these internals: keep its defaults
        usable = False
    if not usable:
        log.debug("Ray internals differ; starting Ray with its default processes")
        yield started
        return
    if options == LocalRayOptions.ray_default():
        yield started
        return

    class LeanNode(base):  # type: ignore[misc, valid-type]
        """A head node without the processes ``options`` leave out."""

        def __init__(self, ray_params: Any, *args: Any, **kwargs: Any) -> None:
            self._parallax_lock = threading.Lock()
            self._parallax_closing = False
            self._parallax_closed = threading.Event()
            self._parallax_wake = threading.Event()
            if kwargs.get("head") and not kwargs.get("connect_only"):
                ray_params.no_monitor = not options.autoscaler
                ray_params.include_log_monitor = options.log_monitor_delay == 0
                if options.dynamic_agent_port:
                    ray_params.dashboard_agent_listen_port = 0
                if options.loopback:
                    ray_params.node_ip_address = LOOPBACK
                started["node"] = self
            super().__init__(ray_params, *args, **kwargs)

        def start_api_server(self, *args: Any, **kwargs: Any) -> None:
            if options.dashboard:
                super().start_api_server(*args, **kwargs)

        def start_log_monitor_later(self, delay: float) -> None:
            """Start the log monitor in ``delay`` seconds, or at start_log_monitor_now().

            Ray ties the processes it starts to the thread that started them
            (PR_SET_PDEATHSIG), so the thread that starts the log monitor lives until
            the node shuts down.
            """
            def run() -> None:
                self._parallax_wake.wait(delay)
                with self._parallax_lock:
                    if self._parallax_closing or PROCESS_TYPE_LOG_MONITOR in self.all_processes:
                        return
                    try:
                        self.start_log_monitor()
                    except Exception:
                        log.warning("could not start Ray's log monitor: actor output stays "
                                    "in %s", self.get_logs_dir_path(), exc_info=True)
                        return
                self._parallax_closed.wait()

            threading.Thread(target=run, name="parallax-log-monitor", daemon=True).start()

        def start_log_monitor_now(self) -> None:
            self._parallax_wake.set()

        def kill_all_processes(self, *args: Any, **kwargs: Any) -> None:
            with self._parallax_lock:  # no log monitor may start once this began
                self._parallax_closing = True
            self._parallax_wake.set()
            try:
                super().kill_all_processes(*args, **kwargs)
            finally:
                self._parallax_closed.set()

    node_module.Node = LeanNode
    try:
        yield started
    finally:
        node_module.Node = base
