"""The embedded Ray starts a stand-in for the raylet's two agents (agent_stub.py): the
raylet waits for their ports before it registers, and the real agents cost about 1 s of
a 2 s start-up on 2 cores (bench/startup.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_ray_hygiene import process_tree, watch_transcode

from pipelines.runtime import agent_stub

NODE = "ab" * 28
RAYLET = ["/ray/raylet", "--node_manager_port=0",
          "--dashboard_agent_command=/usr/bin/python3 /ray/dashboard/agent.py "
          f"--node-id={NODE} --node-ip-address=127.0.0.1 --session-dir=/tmp/s --head",
          "--runtime_env_agent_command=/usr/bin/python3 /ray/agent/main.py "
          f"--node-id={NODE} --session-dir=/tmp/s --runtime-env-agent-port=0", "--head"]


def test_the_raylet_command_gets_the_stand_in_for_both_agents_and_nothing_else():
    out = agent_stub.stub_agents(RAYLET)
    assert out is not None and len(out) == len(RAYLET)
    assert [a for a in out if "agent_command" not in a] == [RAYLET[0], RAYLET[1], RAYLET[4]]
    for arg in out[2:4]:
        assert "agent_stub.py" in arg and f"--node-id={NODE}" in arg
        assert "--session-dir=/tmp/s" in arg and "/ray/" not in arg
    assert out[2].endswith("--ports=dashboard_agent_listen_port,metrics_agent_port,"
                           "metrics_export_port")
    assert out[3].endswith("--ports=runtime_env_agent_port")


@pytest.mark.parametrize("command", [RAYLET[:3] + RAYLET[4:],  # one agent flag missing
                                     [a.replace("--session-dir=/tmp/s", "") for a in RAYLET]],
                         ids=["one-agent", "no-session-dir"])
def test_a_raylet_command_it_does_not_know_is_left_to_ray(command):
    assert agent_stub.stub_agents(command) is None


def exited(pid: int) -> bool:
    """Gone, or a zombie waiting for init to reap it (it has exited either way)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_the_stand_in_writes_unused_ports_and_ends_with_its_raylet(tmp_path):
    """Its parent (the raylet) SIGKILLed, the stand-in ends too: nothing is left."""
    ports = "metrics_agent_port,metrics_export_port"
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time; p = subprocess.Popen(sys.argv[1:]);"
         " print(p.pid, flush=True); time.sleep(120)", sys.executable, agent_stub.__file__,
         f"--node-id={NODE}", f"--session-dir={tmp_path}", f"--ports={ports}", "--ignored=1"],
        stdout=subprocess.PIPE, text=True)
    try:
        stub = int(parent.stdout.readline())
        files = [tmp_path / f"{name}_{NODE}" for name in ports.split(",")]
        deadline = time.monotonic() + 10
        while not all(f.exists() for f in files) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [f.read_text() for f in files] == ["-1", "-1"]
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in files)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 5
        while not exited(stub) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert exited(stub), "the stand-in outlived its raylet"
    finally:
        parent.kill()


@pytest.mark.slow
def test_a_cli_run_starts_no_ray_agent_and_leaves_no_stand_in(tmp_path):
    seen: dict[int, str] = {}

    def look(driver: int) -> None:
        for pid in process_tree(driver) - {driver}:
            with contextlib.suppress(OSError):
                seen[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(
                    b"\0", b" ").decode()

    code, err = watch_transcode(tmp_path, look, interval=0.1)
    assert code == 0, err
    assert (tmp_path / "out.mp4").stat().st_size > 0
    # (the raylet's own command line names it too, in its agent flags)
    stubs = [pid for pid, args in seen.items() if args.split()[1:2] == [agent_stub.__file__]]
    assert len(stubs) == 2, sorted(seen.values())
    agents = [a for a in seen.values() if a.startswith(("ray::DashboardAgent",
                                                         "ray::RuntimeEnvAgent"))
              or any(w.endswith(("dashboard/agent.py", "runtime_env/agent/main.py"))
                     for w in a.split()[:3])]
    assert not agents, agents
    time.sleep(0.5)
    assert not [pid for pid in stubs if Path(f"/proc/{pid}").exists()], "a stand-in is left"


@pytest.mark.slow
def test_an_embedded_ray_with_a_runtime_env_keeps_its_agents(tmp_path):
    """The runtime-env agent sets up such workers; with the stand-in the raylet died."""
    script = tmp_path / "renv.py"
    script.write_text(
        "import os, ray\n"
        "from pipelines.runtime import connection\n"
        "connection.start_local_ray(quiet=True, runtime_env={'env_vars': {'PX_T': 'set'}})\n"
        "f = ray.remote(num_cpus=0)(lambda: os.environ.get('PX_T'))\n"
        "print(ray.get(f.remote(), timeout=60), flush=True)\n"
        "ray.shutdown()\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(Path(agent_stub.__file__).parents[2])
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env=env, cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.strip() == "set", run.stderr[-2000:]
