"""What a node has for media work, and the Ray labels and resources that advertise it.

Hardware is reported as found (device nodes, driver libraries); encoders are
reported as *working* only after a real test encode (``actors.media.encoders.probe``).
"""

from __future__ import annotations

import glob
import json
import os
import platform
import sys
from typing import Any

from actors.media.encoders import EncoderBackend, probe

LABEL_PREFIX = "parallax.encoder."


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def detect_hardware() -> dict[str, Any]:
    gpus = []
    for info in sorted(glob.glob("/proc/driver/nvidia/gpus/*/information")):
        with open(info) as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("Model")), "?")
        gpus.append(model)
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "nvidia_gpus": gpus,
        "render_nodes": sorted(glob.glob("/dev/dri/renderD*")),
        "video_devices": sorted(glob.glob("/dev/video*")),
    }


# Backends to advertise without probing, e.g. "nvenc,qsv": for tests and dry runs of a
# placement on machines without the hardware (cluster/start-node.sh reads it).
FAKE_ENCODERS_ENV = "PARALLAX_FAKE_ENCODERS"


def working_backends() -> set[EncoderBackend]:
    fake = os.environ.get(FAKE_ENCODERS_ENV)
    if fake is not None:
        return {EncoderBackend.parse(b.strip()) for b in fake.split(",") if b.strip()}
    return {r.backend for r in probe() if r.available}


def node_labels_and_resources() -> tuple[dict[str, str], dict[str, float]]:
    """Labels like parallax.encoder.nvenc=true and a resource per working backend."""
    labels, resources = {}, {}
    for backend in working_backends():
        labels[f"{LABEL_PREFIX}{backend.value}"] = "true"
        resources[f"{LABEL_PREFIX}{backend.value}"] = 4.0  # concurrent encode sessions
    return labels, resources


def start_args(labels_file: str, user_resources: str) -> str:
    """For start-node.sh: write the probed labels to ``labels_file`` (YAML, Ray's
    --labels-file, under the user's --labels) and return the resources JSON, the probed
    ones merged under the user's."""
    try:
        extra = json.loads(user_resources)
    except ValueError:
        extra = None
    if not isinstance(extra, dict):
        raise ValueError(f"--resources {user_resources!r}: give a JSON object, "
                         'e.g. \'{"disk": 1}\'')
    labels, resources = node_labels_and_resources()
    with open(labels_file, "w") as f:
        f.writelines(f"{k}: {json.dumps(v)}\n" for k, v in sorted(labels.items()))
    return json.dumps({**resources, **extra}, separators=(",", ":"))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--start-args"] and len(sys.argv) == 4:
        try:
            print(start_args(sys.argv[2], sys.argv[3]))
        except ValueError as exc:  # ConfigError too: one line for the shell script
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
    else:
        labels, resources = node_labels_and_resources()
        print(json.dumps({"hardware": detect_hardware(), "labels": labels,
                          "resources": resources}, indent=2))
