#!/usr/bin/env bash
# Submit a transcode as a Ray job:  cluster/submit.sh INPUT OUTPUT [parallax options...]
# Needs RAY_ADDRESS (e.g. http://HEAD_IP:8265). With Ray's token auth on, also set
# RAY_AUTH_MODE=token and the token (see Ray's token-auth docs).
set -euo pipefail
: "${RAY_ADDRESS:?set RAY_ADDRESS to the cluster's dashboard address, e.g. http://head:8265}"
exec ray job submit --working-dir . -- parallax transcode "$@"
