"""cluster/: the launcher YAML against Ray's own schema, and the two scripts' arguments.

No machine is started: `ray` is replaced on PATH by a stub that records its arguments.
"""

from __future__ import annotations

import copy
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parent.parent
CLUSTER_YAML = REPO / "cluster" / "cluster.yaml"
SCHEMA = Path(__import__("ray.autoscaler", fromlist=["_"]).__file__).parent / "ray-schema.json"


def load_config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_is_valid_for_ray_up():
    config = load_config()
    jsonschema.validate(config, json.loads(SCHEMA.read_text()))
    # What `ray up` does with it before any ssh: defaults filled in, then validated.
    validate_config(prepare_config(copy.deepcopy(config)))


@pytest.mark.parametrize("breakage", ["unknown_key", "bad_type"])
def test_schema_check_catches_a_broken_config(breakage):
    config = load_config()
    if breakage == "unknown_key":
        config["max_worker"] = 3  # a typo of max_workers
    else:
        config["provider"]["worker_ips"] = "10.0.0.2"  # a string, not a list
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(config))


def test_every_node_starts_through_start_node_sh():
    config = load_config()
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in config[key] if "start-node.sh" in c]
        assert len(starts) == 1, f"{key} must start Ray through cluster/start-node.sh"
        assert "RAY_AUTH_MODE=token" in starts[0]
    assert "--head" in config["head_start_ray_commands"][-1]
    assert "$RAY_HEAD_IP" in config["worker_start_ray_commands"][-1]
    for script in ("start-node.sh", "submit.sh"):
        path = REPO / "cluster" / script
        assert path.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"
        subprocess.run(["bash", "-n", str(path)], check=True)


@pytest.fixture
def fake_ray(tmp_path):
    """A `ray` that writes its arguments (one per line) to a file and exits 0."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    record = tmp_path / "ray-args"
    stub = bindir / "ray"
    stub.write_text(f"#!/usr/bin/env bash\nprintf '%s\\n' \"$@\" > {record}\n"
                    f"for a; do case $a in --labels-file=*) cp \"${{a#*=}}\" {record}.labels;; "
                    "esac; done\n")
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return env, record


def test_start_node_merges_probed_and_user_labels_and_resources(fake_ray):
    env, record = fake_ray
    env = {**env, "PARALLAX_FAKE_ENCODERS": "nvenc"}
    proc = subprocess.run([str(REPO / "cluster" / "start-node.sh"), "--address=127.0.0.1:1",
                           "--labels", "site=paris", "--resources", '{"disk": 2}'],
                          env=env, capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    args = record.read_text().splitlines()
    assert args[0] == "start" and "--address=127.0.0.1:1" in args
    assert args[args.index("--labels") + 1] == "site=paris"  # Ray puts it over the file's
    resources = json.loads(next(a for a in args if a.startswith("--resources="))[12:])
    assert resources == {"parallax.encoder.nvenc": 4.0, "disk": 2}
    assert yaml.safe_load((record.parent / "ray-args.labels").read_text()) == {
        "parallax.encoder.nvenc": "true"}


def test_start_node_refuses_bad_resources(fake_ray):
    env, record = fake_ray
    proc = subprocess.run([str(REPO / "cluster" / "start-node.sh"), "--resources", "disk=2"],
                          env={**env, "PARALLAX_FAKE_ENCODERS": ""}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --resources 'disk=2'")
    assert not record.exists()


def test_submit_passes_the_transcode_and_refuses_relative_paths(fake_ray):
    env, record = fake_ray
    env = {**env, "RAY_ADDRESS": "http://127.0.0.1:1", "PARALLAX_JOB_OPTIONS": "--no-wait"}
    submit = str(REPO / "cluster" / "submit.sh")
    ok = subprocess.run([submit, "/in put.mp4", "/out.mp4", "--height", "720"], env=env,
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert record.read_text().splitlines() == [
        "job", "submit", "--no-wait", "--", "parallax", "transcode", "/in put.mp4",
        "/out.mp4", "--height", "720"]
    record.unlink()
    for argv, named in ((["in.mp4", "/out.mp4"], "'in.mp4'"),
                        (["/a.mp4", "--output-dir", "out"], "'out'")):
        bad = subprocess.run([submit, *argv], env=env, capture_output=True, text=True,
                             timeout=30)
        assert bad.returncode == 2
        assert bad.stderr.count("\n") == 1 and named in bad.stderr
        assert "absolute path" in bad.stderr
    assert not record.exists()
    unset = subprocess.run([submit, "/a.mp4", "/b.mp4"], capture_output=True, text=True,
                           env={k: v for k, v in env.items() if not k.startswith("RAY_")})
    assert unset.returncode == 2 and "RAY_ADDRESS" in unset.stderr
