"""--source-node / --output-node on a 3-node local cluster: the input is read and the
output written on the labelled node, and errors there come back as one line naming it.

All nodes of the test cluster share this machine's filesystem, so a path that exists on
one node and not on another cannot be staged; node_pinning_cluster.py checks where the
reads and writes ran (element node ids) and that a failure on the node names it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from actors.errors import ConfigError
from pipelines.cli import main
from pipelines.transcode import TranscodeOptions

pytestmark = pytest.mark.slow


# Ray gives a starting node 30 s to register (hard-coded in ray/_private/node.py); a
# machine busy with other test runs can miss that before any Parallax code runs.
RAY_START_TIMEOUT = "timed out during startup"


@pytest.fixture(scope="module")
def observed():
    script = Path(__file__).with_name("node_pinning_cluster.py")
    for _ in range(2):  # once more only when Ray itself could not start a node
        run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             timeout=400, cwd=script.parent)
        if run.returncode == 0 or RAY_START_TIMEOUT not in run.stderr:
            break
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_the_farm_reads_and_writes_on_the_labelled_node(observed):
    farm, b = observed["farm"], observed["nodes"]["b"]
    assert observed["driver"] == observed["nodes"]["head"] != b
    assert farm["frames"] == 60
    for name in ("src", "stitch", "mux"):
        assert farm["nodes"][name] == b, (name, farm["nodes"])


def test_the_linear_pipeline_keeps_raw_frames_on_the_source_node(observed):
    linear, b = observed["linear"], observed["nodes"]["b"]
    assert linear["frames"] == 30
    for name in ("src", "scale", "encode", "mux"):
        assert linear["nodes"][name] == b, (name, linear["nodes"])


def test_a_selector_no_node_has_is_one_line_naming_it(observed):
    nowhere = observed["nowhere"]
    assert nowhere["kind"] == "PlacementError"
    assert "--source-node site=mars" in nowhere["error"] and "\n" not in nowhere["error"]
    cli = observed["cli_nowhere"]
    assert cli["code"] == 2
    lines = cli["stderr"].strip().splitlines()
    assert len(lines) == 1 and "--output-node site=mars" in lines[0], cli["stderr"]


def test_a_missing_input_is_reported_from_the_source_node(observed):
    b = observed["nodes"]["b"][:8]
    missing = observed["missing"]
    assert missing["kind"] == "MediaError"
    assert "does not exist" in missing["error"] and b in missing["error"]
    cli = observed["cli_missing"]
    assert cli["code"] == 2
    lines = cli["stderr"].strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0] and b in lines[0], cli["stderr"]


def test_a_missing_output_directory_names_the_output_node(observed):
    no_dir = observed["no_dir"]
    assert no_dir["kind"] == "ConfigError"
    assert "does not exist" in no_dir["error"] and observed["nodes"]["b"][:8] in no_dir["error"]


def test_a_pinned_path_must_be_absolute(tmp_path):
    # Relative to what? A Ray worker on that node runs in a directory of Ray's.
    with pytest.raises(ConfigError, match="absolute path"):
        TranscodeOptions("in.mp4", "out.mp4", source_node=(("site", "b"),))
    with pytest.raises(ConfigError, match="absolute path"):
        TranscodeOptions("testsrc", "out.mp4", output_node=(("site", "b"),))
    TranscodeOptions("testsrc", "null", source_node=(("site", "b"),),
                     output_node=(("site", "b"),))


def test_pinning_is_refused_for_a_batch(tmp_path, capsys):
    code = main(["transcode", "a.mp4", "--output-dir", str(tmp_path),
                 "--source-node", "site=b"])
    assert code == 2
    assert "--output-dir" in capsys.readouterr().err
