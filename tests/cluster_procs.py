"""Real Ray nodes for the cluster tests: `ray start` processes of our own.

Every node of a ``LoopbackCluster`` lives under one temp dir of the test's, on ports
picked free, with token auth on and a token of its own, so it never attaches to (or is
joined by) another Ray on the machine. ``stop()`` ends only the processes it started:
those whose command line names its temp dir, and everything below them (workers, job
drivers), by pid; never with Ray's own stop command, which would kill every Ray of
every user on the machine.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackCluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.temp_dir = root / "ray"  # short: Ray's socket paths must stay under 108 bytes
        self.temp_dir.mkdir(parents=True)
        self.port = free_port()
        self.dashboard_port = free_port()
        self.metrics_ports: list[int] = []
        self.env = {
            **os.environ,
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
        }
        # ray start turns --node-ip-address=127.0.0.1 into the host's address; the one
        # switch against it (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0) refuses a second node.
        self.env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        self.env.pop("RAY_ADDRESS", None)
        self.logs: list[Path] = []

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def job_address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _node_ports(self) -> list[str]:
        metrics = free_port()
        self.metrics_ports.append(metrics)
        return ["--node-ip-address=127.0.0.1", f"--metrics-export-port={metrics}",
                f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
                f"--dashboard-agent-listen-port={free_port()}",
                f"--dashboard-agent-grpc-port={free_port()}",
                f"--runtime-env-agent-port={free_port()}",
                "--object-store-memory=200000000", "--disable-usage-stats"]

    def _run(self, argv: list[str], name: str, env: dict[str, str] | None = None) -> None:
        log = self.root / f"{name}.log"
        self.logs.append(log)
        with open(log, "w") as out:
            proc = subprocess.run(argv, env=env or self.env, stdout=out, stderr=subprocess.STDOUT,
                                  cwd=self.root, timeout=120, start_new_session=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed ({proc.returncode}):\n{log.read_text()[-3000:]}")

    def start_head(self, num_cpus: int = 1) -> None:
        self._run([str(BIN / "ray"), "start", "--head", f"--port={self.port}",
                   f"--temp-dir={self.temp_dir}", "--dashboard-host=127.0.0.1",
                   f"--dashboard-port={self.dashboard_port}",
                   f"--ray-client-server-port={free_port()}", f"--num-cpus={num_cpus}",
                   *self._node_ports()], "head")

    def add_node(self, labels: str, fake_encoders: str, num_cpus: int = 1) -> None:
        """A second node through cluster/start-node.sh, advertising ``fake_encoders``."""
        env = {**self.env, "PARALLAX_FAKE_ENCODERS": fake_encoders}
        self._run([str(REPO / "cluster" / "start-node.sh"), f"--address={self.gcs_address}",
                   f"--labels={labels}", f"--num-cpus={num_cpus}", *self._node_ports()],
                  f"node{len(self.logs)}", env)

    def ray(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "ray"), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, cwd=self.root)

    def processes(self) -> list[psutil.Process]:
        """Ours: every process naming our temp dir, and all their descendants."""
        mark = str(self.temp_dir)
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error, TypeError):
                if any(mark in part for part in proc.info["cmdline"] or ()):
                    found[proc.pid] = proc
                    for child in proc.children(recursive=True):
                        found[child.pid] = child
        found.pop(os.getpid(), None)
        return list(found.values())

    def stop(self) -> None:
        procs = self.processes()
        for proc in procs:  # stopped first, so that none restarts another meanwhile
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGSTOP)
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(procs, timeout=10)
        deadline = time.monotonic() + 10
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.2)
