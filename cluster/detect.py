"""What a node has for media work, and the Ray labels and resources that advertise it.

Hardware is reported as found (device nodes, driver libraries); encoders are
reported as *working* only after a real test encode (``actors.media.encoders.probe``).
"""

from __future__ import annotations

import glob
import os
import platform
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


def working_backends() -> set[EncoderBackend]:
    return {r.backend for r in probe() if r.available}


def node_labels_and_resources() -> tuple[dict[str, str], dict[str, float]]:
    """Labels like parallax.encoder.nvenc=true and a resource per working backend."""
    labels, resources = {}, {}
    for backend in working_backends():
        labels[f"{LABEL_PREFIX}{backend.value}"] = "true"
        resources[f"{LABEL_PREFIX}{backend.value}"] = 4.0  # concurrent encode sessions
    return labels, resources


if __name__ == "__main__":
    import json

    labels, resources = node_labels_and_resources()
    print(json.dumps({"hardware": detect_hardware(), "labels": labels, "resources": resources},
                     indent=2))
