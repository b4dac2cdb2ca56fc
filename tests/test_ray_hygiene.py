"""The embedded Ray as a user meets it: what it listens on, what it leaves behind, what
it writes to the home directory, and what a Ctrl-C during its start-up leaves running.

Each test runs the CLI in a fresh process with its own embedded Ray and looks at that
run's processes only: the driver's process tree while it runs, and afterwards whatever
still refers to the run's Ray session directory (Ray names it after the driver's pid).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from media import make_video

RAY_TEMP = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray"
# Ray's processes set their titles (ray::IDLE, ray::DashboardAgent): ss shows those.
RAY_CORE = {"gcs_server", "raylet"}

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(),
                                reason="needs Linux /proc to attribute processes to a run")


def start_cli(*args: str, home: Path, cwd: Path) -> subprocess.Popen:
    """The CLI as a user starts it, in its own session so that our signals reach only it."""
    env = {k: v for k, v in os.environ.items()
           if k != "RAY_ADDRESS" and not k.startswith("RAY_AUTH")}
    env["HOME"] = str(home)
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def process_tree(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def session_dir(driver: int) -> Path | None:
    dirs = list(RAY_TEMP.glob(f"session_*_{driver}"))
    return dirs[0] if dirs else None


def session_processes(driver: int) -> list[str]:
    """Processes (but the driver) whose command line or open files are in the run's Ray
    session directory: an agent retitles itself, but keeps its log files open there."""
    found = session_dir(driver)
    if found is None:
        return []
    where = str(found.resolve())
    hits = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        if int(entry) == driver:
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            hit = where in args
            for fd in ([] if hit else os.listdir(f"/proc/{entry}/fd")):
                with contextlib.suppress(OSError):
                    hit = hit or os.readlink(f"/proc/{entry}/fd/{fd}").startswith(where)
        except OSError:
            continue
        if hit:
            hits.append(f"{entry} {args.strip()[:80]}")
    return hits


def kill_all(lines: list[str]) -> None:
    for line in lines:  # only what this test's run left behind
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(line.split()[0]), signal.SIGKILL)


def listening(pids: set[int]) -> set[tuple[str, str, str]]:
    """(protocol, local address, process name) of every listening socket of ``pids``."""
    out = subprocess.run(["ss", "-ltnupH"], capture_output=True, text=True).stdout
    found = set()
    for line in out.splitlines():
        fields = line.split()
        for name, pid in re.findall(r'\("([^"]+)",pid=(\d+),', line):
            if int(pid) in pids:
                found.add((fields[0], fields[4].rsplit(":", 1)[0], name))
    return found


def is_loopback(address: str) -> bool:
    text = address.strip("[]").split("%")[0]
    if text == "*":
        return False
    ip = ipaddress.ip_address(text)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to list sockets")
def test_embedded_ray_listens_on_loopback_only_and_keeps_its_token_off_disk(tmp_path):
    home = tmp_path / "home"
    seen: set[tuple[str, str, str]] = set()
    modes = set()

    def look(driver: int) -> None:
        seen.update(listening(process_tree(driver)))
        found = session_dir(driver)
        if found is not None:
            modes.add(found.stat().st_mode & 0o777)

    code, err = watch_transcode(tmp_path, look)
    assert code == 0, err
    names = {name for _, _, name in seen}
    assert names >= RAY_CORE, f"the listing missed Ray's own servers: {sorted(seen)}"
    wide = sorted(s for s in seen if not is_loopback(s[1]))
    assert not wide, f"listening beyond loopback: {wide}"
    assert not (home / ".ray" / "auth_token").exists(), "Ray wrote its token to ~/.ray"
    assert 0o700 in modes, f"the session directory stayed shared: {sorted(map(oct, modes))}"


def watch_transcode(tmp_path: Path, look: Callable[[int], None], interval: float = 0.2,
                    ) -> tuple[int, str]:
    """A short transcode through the CLI, with ``look(driver pid)`` every ``interval``
    seconds while it runs; (exit code, stderr)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    run = start_cli("transcode", "testsrc:duration=3", "out.mp4", "--quiet", home=home,
                    cwd=tmp_path)
    try:
        while run.poll() is None:
            look(run.pid)
            time.sleep(interval)
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    return run.returncode, err


def interrupt_during_start(tmp_path: Path, after: float, twice: bool = False,
                           sig: int = signal.SIGINT, source: str = "testsrc:duration=3") -> tuple:
    """SIGINT ``after`` seconds into Ray's start-up (its first process), as `kill -INT`
    does (the driver only: a terminal's Ctrl-C also hits Ray's processes, which then end
    by themselves; this is the harder case). Or ``sig``, as a scheduler sends it."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    run = start_cli("transcode", source, "out.mp4", "-y", home=home, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not session_processes(run.pid) and run.poll() is None:
            assert time.monotonic() < deadline, "Ray did not start"
            time.sleep(0.05)
        time.sleep(after)
        run.send_signal(sig)
        if twice:
            time.sleep(0.15)
            run.send_signal(sig)
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    time.sleep(0.5)
    left = session_processes(run.pid)
    kill_all(left)
    return run.returncode, err, left


@pytest.mark.slow
# 0.5 s lands in the making of the driver's core worker on 2 cores (issue 12: the driver
# hung at exit when it did; see interrupts.core_worker_uninterrupted).
@pytest.mark.parametrize("after, twice", [(0.3, False), (0.5, False), (1.0, False),
                                          (1.0, True)])
def test_ctrl_c_during_ray_start_up_leaves_nothing_running(tmp_path, after, twice):
    code, err, left = interrupt_during_start(tmp_path, after, twice)
    assert not left, f"still running after the run ended: {left}\n{err}"
    assert "Traceback" not in err, err
    # 130 as the CLI returns it; -SIGINT when the second Ctrl-C lands as Python exits
    # (it then restores SIGINT's default action), which a shell also reports as 130.
    assert code in (130, -signal.SIGINT), err


@pytest.fixture(scope="module")
def clip_720p(tmp_path_factory):
    """30 s of 720p: about 2.5 s of a farm's work on 2 cores, after its 2 s start."""
    return make_video(str(tmp_path_factory.mktemp("clip") / "in.mp4"), width=1280,
                      height=720, frames=900)


@pytest.mark.slow
# 0.5-1.0 s: inside ray.init(), where Ray's own handlers (and its C++ one, which printed
# a stack and aborted) took SIGTERM; 3 s: a farm transcode writing its output.
@pytest.mark.parametrize("after", [0.3, 0.7, 1.0, 3.0])
def test_sigterm_ends_the_run_at_once_and_leaves_nothing(tmp_path, clip_720p, after):
    """SIGTERM, as `ray job stop`, a scheduler or `timeout` sends it: exit 143 with one
    line, no partial output, no process left; Ray's own handlers exited 15, 134 or 139."""
    code, err, left = interrupt_during_start(tmp_path, after, sig=signal.SIGTERM,
                                             source=clip_720p)
    assert not left, f"still running after the run ended: {left}\n{err}"
    assert code == 143, err
    assert err.strip().splitlines()[-1] == "error: terminated", err
    assert "Traceback" not in err and "SIGTERM received" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"], err


def test_a_ctrl_c_while_ray_makes_its_core_worker_waits_for_the_whole_object(monkeypatch):
    """A KeyboardInterrupt inside ray._raylet.CoreWorker(...) would lose the object that
    ray.shutdown() ends the C++ core worker with: it is raised once the block is done."""
    import ray._raylet

    from pipelines.runtime.interrupts import core_worker_uninterrupted

    made = []

    def core_worker():
        signal.raise_signal(signal.SIGINT)  # as a Ctrl-C halfway through the real one
        made.append("whole")
        return made

    monkeypatch.setattr(ray._raylet, "CoreWorker", core_worker)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), core_worker_uninterrupted():
        assert ray._raylet.CoreWorker() == ["whole"]
        made.append("stored")
    assert made == ["whole", "stored"]
    assert ray._raylet.CoreWorker is core_worker
    assert signal.getsignal(signal.SIGINT) is handler


def test_ctrl_c_while_the_command_is_still_importing_is_one_line(tmp_path):
    """The installed ``parallax`` command imports the CLI inside its main, so a Ctrl-C
    while Ray and PyAV load exits 130 with one line, not a KeyboardInterrupt traceback."""
    command = Path(sys.executable).with_name("parallax")
    if not command.exists():
        pytest.skip("the parallax console script is not installed (pip install -e .)")
    proc = subprocess.Popen([str(command), "transcode", "testsrc:duration=3", "x.mp4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    time.sleep(0.15)  # imports take a second or more: this lands inside them
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "error: interrupted"
