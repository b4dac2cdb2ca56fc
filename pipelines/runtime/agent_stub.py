"""Stands in for the raylet's agents on the embedded Ray (LocalRayOptions.agents).

The raylet starts a dashboard agent and a runtime-env agent on every node and waits for
the ports they write to the session directory before it registers the node; each agent
is a Python process importing most of Ray (0.3-0.7 CPU-seconds on 2 cores, measured), so
both sit on ray.init()'s critical path: about 1 s of a 2 s start. The embedded Ray
serves no dashboard, exports no metrics and runs no runtime environments, so this
process writes "not in use" (-1) for each of their ports, as Ray's minimal agent does
for the services it lacks, and lives as long as its raylet, which shares its fate with
its agents.

Run as a script, so that it imports no Ray: ``python agent_stub.py --node-id=ID
--session-dir=DIR --ports=NAME[,NAME...]``. ``stub_agents`` rewrites a raylet command
line to start it; this module imports nothing else, for either use.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import signal
import subprocess
import sys
import time

# The raylet's flag for each agent's command line, and the ports that agent writes
# (ray._raylet's *_PORT_NAME values; connection.py checks them against Ray's).
AGENTS = {
    "--dashboard_agent_command=": ("dashboard_agent_listen_port", "metrics_agent_port",
                                   "metrics_export_port"),
    "--runtime_env_agent_command=": ("runtime_env_agent_port",),
}
KEPT = ("--node-id=", "--session-dir=")
POLL_S = 0.25
PR_SET_PDEATHSIG = 1


def stub_agents(raylet_command: list[str]) -> list[str] | None:
    """``raylet_command`` with this script in place of both agents; None when it does not
    hold both agent flags with a node id and a session directory (another Ray)."""
    out, stubbed = [], 0
    for arg in raylet_command:
        flag = next((f for f in AGENTS if arg.startswith(f)), None)
        if flag is not None:
            kept = [a for a in shlex.split(arg[len(flag):]) if a.startswith(KEPT)]
            if len(kept) != len(KEPT):
                return None
            arg = flag + subprocess.list2cmdline(
                [sys.executable, os.path.abspath(__file__), *kept,
                 "--ports=" + ",".join(AGENTS[flag])])
            stubbed += 1
        out.append(arg)
    return out if stubbed == len(AGENTS) else None


def persist_port(session_dir: str, node_id: str, name: str, port: int) -> None:
    """As ray._raylet.persist_port writes it: the number, in NAME_NODEID, atomically."""
    path = os.path.join(session_dir, f"{name}_{node_id}")
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    args = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    raylet = os.getppid()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # End with the raylet at once, however it ends (the poll below is the fallback).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    for name in args["ports"].split(","):
        persist_port(args["session-dir"], args["node-id"], name, -1)
    while os.getppid() == raylet:  # re-parented: the raylet is gone
        time.sleep(POLL_S)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
