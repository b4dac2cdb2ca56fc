"""`parallax cluster`: nodes, labels, encoders and pipelines of a running cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cluster_procs import free_port

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def observed():
    env = {**os.environ, "PYTHONPATH": f"{HERE}:{HERE.parent}"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, str(HERE / "cluster_status_cluster.py")], env=env,
                          capture_output=True, text=True, timeout=280, cwd=HERE.parent)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_lists_three_labelled_nodes_as_json(observed):
    run = observed["json"]
    assert run["rc"] == 0, run["stderr"]
    snap = json.loads(run["stdout"])
    by_id = {n["node_id"]: n for n in snap["nodes"]}
    ids = observed["nodes"]
    assert set(by_id) == set(ids.values())
    assert by_id[ids["head"]]["head"] and not by_id[ids["nvenc"]]["head"]
    assert by_id[ids["nvenc"]]["labels"] == {"parallax.encoder.nvenc": "true",
                                             "parallax.encoder.software": "true",
                                             "site": "paris"}
    assert by_id[ids["nvenc"]]["encoders"] == ["nvenc", "software"]
    assert by_id[ids["nvenc"]]["cpus"] == 2
    assert by_id[ids["nvenc"]]["resources"] == {"parallax.encoder.nvenc": 4}
    assert by_id[ids["vaapi"]]["encoders"] == ["vaapi"]
    assert by_id[ids["vaapi"]]["labels"]["site"] == "lyon"
    assert all(n["alive"] and n["object_store_bytes"] > 0 for n in snap["nodes"])
    (pipeline,) = snap["pipelines"]
    assert pipeline["pipeline"].startswith("listed-")
    assert {h["host"] for h in pipeline["hosts"]} == {"src", "sink"}
    assert all(h["node_id"] in by_id for h in pipeline["hosts"])


def test_lists_them_for_people(observed):
    run = observed["plain"]
    assert run["rc"] == 0, run["stderr"]
    lines = run["stdout"].splitlines()
    assert lines[0].endswith(": 3 node(s) alive")
    for node_id in observed["nodes"].values():
        assert any(f"node {node_id[:8]}" in ln for ln in lines)
    assert "    labels: parallax.encoder.vaapi=true, site=lyon" in lines
    assert "    encoders: nvenc, software" in lines
    assert any(ln.startswith("pipeline listed-") and "src@" in ln for ln in lines)


@pytest.mark.parametrize("address, says", [
    (None, "no cluster address: set RAY_ADDRESS"),
    ("127.0.0.1:{port}", "no Ray cluster answers at 127.0.0.1:"),
    ("http://127.0.0.1:8265", "is a job server"),
    ("head:port", "give HEAD_IP:PORT"),
])
def test_no_cluster_is_one_line_and_exit_2(address, says):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    if address:
        env["RAY_ADDRESS"] = address.format(port=free_port())
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "cluster"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=HERE.parent)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert says in proc.stderr
    assert proc.stdout == ""
    assert time.monotonic() - t0 < 20  # no wait for a GCS that is not there
