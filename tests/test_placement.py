"""Placement on a 3-node local cluster whose nodes carry different labels and resources."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def observed():
    # Its own process: a multi-node Cluster cannot share the session's Ray instance.
    script = Path(__file__).with_name("placement_cluster.py")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300, cwd=script.parent)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_elements_land_where_they_asked(observed):
    nodes = observed["nodes"]
    assert len(set(nodes.values())) == 3
    assert observed["placed"] == {"src": nodes["vaapi"], "enc": nodes["nvenc"],
                                  "sink": nodes["head"]}
    assert observed["in_order"] is True


def test_unsatisfiable_selector_fails_at_once_with_what_exists(observed):
    res = observed["unsatisfiable"]
    assert res["error"] is not None and res["seconds"] < 10
    assert "no node can host 'sink'" in res["error"]
    assert "parallax.encoder.qsv" in res["error"]
    assert "parallax.encoder.nvenc" in res["error"]  # it lists what the nodes do offer


def test_occupied_resources_fail_within_the_placement_timeout(observed):
    res = observed["occupied"]
    assert res["error"] is not None and "not placed within 3 s" in res["error"]
    assert 3 <= res["seconds"] < 15
