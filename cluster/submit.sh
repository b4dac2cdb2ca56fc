#!/usr/bin/env bash
# Submit a transcode as a Ray job:
#   cluster/submit.sh INPUT OUTPUT [parallax transcode options...]
#   cluster/submit.sh INPUT... --output-dir DIR [options...]
#
# RAY_ADDRESS is the head's job server (the dashboard port), e.g. http://10.0.0.5:8265.
# The job's entrypoint runs on the head node (or where PARALLAX_JOB_OPTIONS'
# --entrypoint-label-selector sends it); INPUT is read and OUTPUT written there, so give
# absolute paths on that node. With token auth on (RAY_AUTH_MODE=token on the cluster),
# set RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
# ~/.ray/auth_token) here too.
# PARALLAX_JOB_OPTIONS: extra `ray job submit` options, e.g. "--no-wait" or
# "--entrypoint-label-selector {\"parallax.storage\":\"media\"}". Exits 2 on bad usage.
set -euo pipefail

fail() {
    echo "error: $*" >&2
    exit 2
}

if [[ -z "${RAY_ADDRESS:-}${RAY_API_SERVER_ADDRESS:-}" ]]; then
    fail "set RAY_ADDRESS to the head's job server address, e.g. http://10.0.0.5:8265"
fi
if (( $# < 2 )); then
    fail "usage: cluster/submit.sh INPUT OUTPUT [parallax transcode options...]"
fi

# Paths are resolved on the entrypoint node, in whatever directory its raylet was started
# from: a relative path would land somewhere nobody looks.
check_path() {
    case "$1" in
        /* | null | testsrc | testsrc:* | zenoh:* | @/*) ;;
        *) fail "'$1' is a relative path; a job reads and writes on its entrypoint node" \
                "(the head), so give an absolute path there, e.g. /data/$1" ;;
    esac
}
expect_dir=0 in_options=0
for arg in "$@"; do
    if (( expect_dir )); then
        check_path "$arg"
        expect_dir=0
    elif [[ "$arg" == --output-dir ]]; then
        expect_dir=1
    elif [[ "$arg" == --output-dir=* ]]; then
        check_path "${arg#--output-dir=}"
    elif [[ "$arg" == -* ]]; then
        in_options=1  # the paths come first; option values are not paths
    elif (( ! in_options )); then
        check_path "$arg"
    fi
done

# Word splitting is wanted here: the variable holds several options.
# shellcheck disable=SC2086
exec ray job submit ${PARALLAX_JOB_OPTIONS:-} -- parallax transcode "$@"
