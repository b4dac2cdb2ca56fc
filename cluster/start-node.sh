#!/usr/bin/env bash
# Start a Ray node that advertises its working encoders as labels and resources.
#   head:   cluster/start-node.sh --head
#   worker: cluster/start-node.sh --address HEAD_IP:6379
# Extra arguments go to `ray start`. Encoders are probed for real (a test encode),
# so a GPU without NVENC (H100, A100) is not advertised as an NVENC node.
set -euo pipefail

# Ray frees objects in batches; a short period keeps the object store close to what
# the credit windows allow (Parallax sets the same for its embedded local Ray).
export RAY_free_objects_period_milliseconds="${RAY_free_objects_period_milliseconds:-20}"

read -r LABELS RESOURCES < <(python - <<'PY'
import json
from cluster.detect import node_labels_and_resources
labels, resources = node_labels_and_resources()
print(json.dumps(labels, separators=(",", ":")), json.dumps(resources, separators=(",", ":")))
PY
)
echo "parallax: labels ${LABELS} resources ${RESOURCES}" >&2
exec ray start --labels="${LABELS}" --resources="${RESOURCES}" "$@"
