"""Connecting to Ray: an embedded local instance unless a cluster address is given.

The embedded instance is private to this process and starts lean. ``ray.init()`` on a
fresh machine starts, besides the GCS, the raylet and its two agents, an autoscaler
monitor, a dashboard (API server) process even with ``include_dashboard=False``, and a
log monitor: five more Python processes, each 0.3-1.1 CPU-seconds of imports (measured
on 2 cores), competing with the critical path of a start-up that is CPU-bound on small
machines; ray.init() waits for the dashboard to come up before it starts the raylet,
and the raylet for its agents before it registers. A one-node instance that only this
process uses needs none of them at start-up; see ``LocalRayOptions`` and
bench/startup.py for what each costs.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import ray

from pipelines.runtime.interrupts import (
    core_worker_uninterrupted,
    in_main_thread,
    interrupts_ignored,
    sigterm_kept,
)

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
    start_log_forwarding()). It forwards what actors write to stderr (tracebacks,
    FFmpeg's own messages; elements' warnings come with their stats, runtime/host_log.py)
    to this process (log_to_driver), reading every worker log from its beginning: output
    written before it runs is forwarded then, not lost, unless the process ends first.
    0: at start-up, as Ray does; None: never (actor output then stays in the session's
    log files)."""
    worker_prestart: bool = True
    """Let the raylet start idle workers when the driver connects (Ray's default)."""
    dynamic_agent_port: bool = True
    """Let the dashboard agent pick a free HTTP port instead of Ray's fixed 52365, which
    another Ray instance on the machine may hold: the agent then retries for up to 3 s
    (exponential back-off) and the raylet, which waits for that port, with it."""
    agents: bool = False
    """The raylet's dashboard agent and runtime-env agent. The raylet waits for both to
    start before it registers (about 1 s of a 2 s ray.init() on 2 cores, measured), and
    the embedded Ray needs neither: they serve Ray's metrics export (an unauthenticated
    Prometheus port), the job, log and state APIs, and runtime environments. Off, a
    stand-in (agent_stub.py) tells the raylet that none of their ports is in use."""
    preload: tuple[str, ...] = ("pipelines.runtime.host", "actors.media", "actors.farm")
    """Modules each worker process imports as it starts, before it is given an actor
    (Ray's preload_python_modules): the raylet starts workers while ray.init() runs, so
    PyAV, numpy and the elements are loaded by the time the hosts are created."""
    loopback: bool = True
    """Keep the node on 127.0.0.1. ray.init() rewrites a _node_ip_address of 127.0.0.1
    to the machine's routable address (services.resolve_ip_for_localhost), so the GCS,
    the raylet and the workers would listen on every interface."""

    @classmethod
    def ray_default(cls) -> LocalRayOptions:
        """What ray.init() starts by itself (the embedded Ray before these options)."""
        return cls(dashboard=True, autoscaler=True, log_monitor_delay=0,
                   dynamic_agent_port=False, agents=True, preload=(), loopback=False)


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
        # quiet: without "Connecting to existing Ray cluster" lines, so that an error is
        # the only line the CLI prints
        with sigterm_kept(), core_worker_uninterrupted():  # as for the embedded start
            ray.init(address=address, namespace="parallax", log_to_driver=True,
                     logging_level=logging.ERROR if quiet else logging.INFO)
        return
    with sigterm_kept():
        start_local_ray(num_cpus=num_cpus, quiet=quiet)
    log.info("started a local Ray instance (no cluster address given)")


def start_local_ray(num_cpus: int | None = None, quiet: bool = False,
                    options: LocalRayOptions = LEAN, **init_kwargs: Any) -> None:
    """Start a new single-node Ray for this process only, and connect to it.

    ``address="local"``: a new instance even when ``ray start`` or a test cluster runs
    on this machine (plain ray.init() would join that one, and then refuse our
    _system_config). ``init_kwargs`` go to ray.init() as they are.
    """
    if init_kwargs.get("runtime_env") and not options.agents:
        # Workers with a runtime environment are set up by the runtime-env agent: the
        # raylet dies asking the stand-in (measured), so this instance keeps its agents.
        options = replace(options, agents=True)
    system_config = {"free_objects_period_milliseconds": FREE_OBJECTS_PERIOD_MS}
    if not options.worker_prestart:
        system_config["enable_worker_prestart"] = False
    if options.preload:
        system_config["preload_python_modules"] = list(options.preload)
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
    # Outermost, so that a Ctrl-C it held back is raised after the others have exited.
    with core_worker_uninterrupted():
        with _lean_head_node(options) as started:
            try:
                ray.init(**kwargs)
            except BaseException:
                _abandon_start(started.get("node"))
                raise
        node = started.get("node")
        if node is None:
            return
        _make_private(node.get_session_dir_path())
        if options.log_monitor_delay:
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
    """Disconnect, and end the embedded Ray if this process started one. A Ctrl-C
    meanwhile is ignored: an interrupted ray.shutdown() leaves Ray's agents running."""
    if ray.is_initialized():
        with interrupts_ignored():
            ray.shutdown()


@atexit.register  # after ray's own hook in registration, so it runs first
def _shutdown_at_exit() -> None:
    """Ray shuts down at exit by itself; a Ctrl-C then (the second of two quick ones)
    interrupted it, printed a traceback and left the agents running. The process is
    ending, so SIGINT stays ignored for Ray's own hook too."""
    driver = getattr(ray._private.worker.global_worker, "mode", None) == ray.SCRIPT_MODE
    if driver and ray.is_initialized() and in_main_thread():  # hosts import this too
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        ray.shutdown(_exiting_interpreter=True)


def _abandon_start(node: Any) -> None:
    """ray.init() failed or was interrupted (Ctrl-C) after it started processes: end them.

    Ray kills nothing then (it never got a node to shut down). The GCS and the raylet
    die with this process, but the raylet's children, the dashboard and runtime-env
    agents, outlived it (7 of 8 SIGINTs during start-up, measured): they are found as
    the raylet's descendants while it is stopped, so that it forks no more.
    """
    if node is None:
        return
    with interrupts_ignored():
        pids = [info.process.pid for infos in dict(node.all_processes).values()
                for info in infos if info.process is not None]
        for pid in pids:
            _signal(pid, signal.SIGSTOP)
        for pid in [*_descendants(pids), *pids]:
            _signal(pid, signal.SIGKILL)
        try:
            node.kill_all_processes(check_alive=False, allow_graceful=False, wait=True)
        except Exception:
            log.debug("could not reap Ray's processes", exc_info=True)
        _restore_auth_env()
        try:
            ray.shutdown()  # the half-made connection, so that ray.init() may run again
        except Exception:
            log.debug("ray.shutdown() after a failed start", exc_info=True)


def _descendants(roots: list[int]) -> list[int]:
    """Every process below ``roots`` (Linux /proc; elsewhere none are found)."""
    children: dict[int, list[int]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in () may hold spaces
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _make_private(session_dir: str) -> None:
    """Ray makes every directory it creates mode 0777 (try_make_directory_shared), so any
    local user could read the logs or replace the raylet's socket; this instance is ours
    alone, and its workers run as this user."""
    try:
        os.chmod(session_dir, 0o700)
    except OSError:
        log.debug("could not make %s private", session_dir, exc_info=True)


AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
_own_token: dict[str, str] = {}


def _private_auth_token() -> None:
    """Give the embedded Ray a token of its own, in the environment its processes inherit.

    Left to itself, ray.init() turns token authentication on and, without a token,
    writes one to ~/.ray/auth_token with the umask's mode (0644: every local user
    could read it, and it stays valid for any later Ray of this user). A token in
    RAY_AUTH_TOKEN takes precedence over that file, so none is written. An explicit
    RAY_AUTH_* setting is the user's choice and is kept.
    """
    if any(name in os.environ for name in AUTH_ENV):
        return
    _own_token["token"] = os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    _reset_token_cache()


def _restore_auth_env() -> None:
    """Once the embedded Ray is gone, a later connection of this process (to a cluster)
    must use the user's token again, not ours."""
    token = _own_token.pop("token", None)
    if token is not None and os.environ.get("RAY_AUTH_TOKEN") == token:
        del os.environ["RAY_AUTH_TOKEN"]
        _reset_token_cache()


def _reset_token_cache() -> None:
    try:
        from ray._raylet import AuthenticationTokenLoader

        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):
        log.debug("Ray has no token loader cache to reset", exc_info=True)


@contextlib.contextmanager
def _agents_stubbed() -> Iterator[None]:
    """While the raylet is started, start it with agent_stub.py for its two agents.

    Ray builds the agents' command lines inside services.start_raylet and hands the
    raylet's to start_ray_process, the one place to change them. A Ray whose flags or
    port names differ keeps its own agents."""
    import ray._private.services as services
    import ray._raylet as raylet
    from ray._private.ray_constants import PROCESS_TYPE_RAYLET

    from pipelines.runtime import agent_stub

    ports = {getattr(raylet, n, None) for n in (
        "DASHBOARD_AGENT_LISTEN_PORT_NAME", "METRICS_AGENT_PORT_NAME",
        "METRICS_EXPORT_PORT_NAME", "RUNTIME_ENV_AGENT_PORT_NAME")}
    if ports != {p for names in agent_stub.AGENTS.values() for p in names}:
        log.debug("Ray's agent ports differ from the stand-in's; keeping its agents")
        yield
        return
    start = services.start_ray_process

    def start_ray_process(command: list[str], process_type: str, *args: Any,
                          **kwargs: Any) -> Any:
        if process_type == PROCESS_TYPE_RAYLET:
            command = agent_stub.stub_agents(command) or command
        return start(command, process_type, *args, **kwargs)

    services.start_ray_process = start_ray_process
    try:
        yield
    finally:
        services.start_ray_process = start


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
                                                     "start_raylet", "kill_all_processes")))
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

        def start_raylet(self, *args: Any, **kwargs: Any) -> None:
            if options.agents:
                super().start_raylet(*args, **kwargs)
                return
            with _agents_stubbed():
                super().start_raylet(*args, **kwargs)

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
                if self is started.get("node"):
                    _restore_auth_env()

    _private_auth_token()  # before ray.init(), which writes the file before any node
    node_module.Node = LeanNode
    try:
        yield started
    except BaseException:
        _restore_auth_env()
        raise
    finally:
        node_module.Node = base
