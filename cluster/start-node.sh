#!/usr/bin/env bash
# Start a Ray node that advertises its working encoders as labels and resources.
#   head:   cluster/start-node.sh --head --port=6379 --dashboard-host=0.0.0.0
#   worker: cluster/start-node.sh --address=HEAD_IP:6379
# Extra arguments go to `ray start`. Encoders are probed for real (a test encode),
# so a GPU without NVENC (H100, A100) is not advertised as an NVENC node.
# Labels of your own: --labels "site=paris,parallax.storage=media" (merged with the
# probed ones by Ray; yours win). Resources: --resources '{"disk": 1}' (merged here).
# PARALLAX_FAKE_ENCODERS=nvenc,qsv advertises those backends without probing (tests,
# and dry runs of a placement on machines without the hardware).
set -euo pipefail

# Ray frees objects in batches; a short period keeps the object store close to what
# the credit windows allow (Parallax sets the same for its embedded local Ray).
export RAY_free_objects_period_milliseconds="${RAY_free_objects_period_milliseconds:-20}"

# The user's --resources is merged with the probed ones, not replaced by them.
user_resources="{}"
args=()
while (( $# )); do
    case "$1" in
        --resources) user_resources="${2:?--resources needs a JSON object}"; shift 2 ;;
        --resources=*) user_resources="${1#--resources=}"; shift ;;
        *) args+=("$1"); shift ;;
    esac
done

labels_file="$(mktemp "${TMPDIR:-/tmp}/parallax-labels.XXXXXX")"
trap 'rm -f "$labels_file"' EXIT
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RESOURCES="$(PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" \
    python -m cluster.detect --start-args "$labels_file" "$user_resources")"
echo "parallax: labels $(tr '\n' ' ' < "$labels_file")resources ${RESOURCES}" >&2
# Not exec: the labels file is removed once `ray start` has read it.
ray start --labels-file="$labels_file" --resources="$RESOURCES" "${args[@]}"
