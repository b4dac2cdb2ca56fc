"""One local Ray instance for the whole test session, on loopback, no dashboard."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import ray

from pipelines.runtime.connection import FREE_OBJECTS_PERIOD_MS

TEST_OBJECT_STORE_BYTES = 2 * 1024**3  # fixed, so that budget checks are deterministic


@pytest.fixture(scope="session")
def ray_session():
    if not ray.is_initialized():
        ray.init(
            address="local",  # a new instance, never a cluster someone started on this machine
            num_cpus=2,
            include_dashboard=False,
            namespace="parallax-tests",
            object_store_memory=TEST_OBJECT_STORE_BYTES,
            _node_ip_address="127.0.0.1",
            # Elements defined in test modules must be importable by the workers.
            runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}},
            _system_config={"free_objects_period_milliseconds": FREE_OBJECTS_PERIOD_MS},
        )
    yield ray
    ray.shutdown()


@pytest.fixture
def unwritable_dir(tmp_path):
    """An empty directory this user cannot create files in. Root ignores directory modes,
    so for root (as in CI) it is a read-only tmpfs mounted there instead of mode 0o555."""
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() != 0:
        locked.chmod(0o555)
        yield locked
        locked.chmod(0o755)
        return
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "parallax-test-ro",
                            str(locked)], capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip("root writes to any directory mode, and mounting a read-only tmpfs "
                    f"failed ({mount.stderr.strip()}): no unwritable directory to test with")
    try:
        yield locked
    finally:
        subprocess.run(["umount", str(locked)], check=False)
