"""The farm on a 3-node local cluster: chunks spread over nodes, or stay where labels say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def observed():
    script = Path(__file__).with_name("farm_cluster.py")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=400, cwd=script.parent)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_auto_workers_spread_chunks_over_the_nodes(observed):
    spread = observed["spread"]
    assert spread["frames"] == observed["input_frames"] == 120
    busy = [n for n, v in spread["per_node"].items() if v["items"] > 0]
    assert len(busy) >= 2, spread["per_node"]  # chunks really ran on several nodes
    assert sum(v["items"] for v in spread["per_node"].values()) == spread["chunks"] >= 4
    assert sum(v["replicas"] for v in spread["per_node"].values()) == 3  # one per CPU


def test_the_source_and_the_muxer_stay_on_the_drivers_node(observed):
    # The file is read and written where the command runs; only workers spread out.
    assert observed["driver"] == observed["nodes"]["head"]
    for run in ("spread", "pinned"):
        assert observed[run]["src_node"] == observed[run]["mux_node"] == observed["driver"]


def test_a_worker_label_puts_every_chunk_on_the_matching_node(observed):
    pinned = observed["pinned"]
    assert pinned["frames"] == 120
    assert set(pinned["per_node"]) == {observed["nodes"]["b"]}
    assert pinned["per_node"][observed["nodes"]["b"]]["items"] == pinned["chunks"]
