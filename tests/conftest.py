"""One local Ray instance for the whole test session, on loopback, no dashboard."""

from __future__ import annotations

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
