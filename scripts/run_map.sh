#!/usr/bin/env bash
# Run the MAP image on a study folder, the way a hosting service would; see docs/deploy.md.
#
#   scripts/run_map.sh INPUT_DIR OUTPUT_DIR [TAG] [-- APP_ARGS...]
#
# INPUT_DIR is mounted read-only at /var/holoscan/input, OUTPUT_DIR (new or empty) at
# /var/holoscan/output; the image's entry point runs the app as its non-root user (uid 1000) and
# the output files are handed back to the caller.  APP_ARGS go to `python -m app` (e.g. -l DEBUG,
# --ctp-method network).  TAG defaults to perfusion-map:<version in app.yaml>.
#
# Environment: MAP_ENGINE (docker or buildah; default docker when `docker info` succeeds),
# BUILDAH_ROOT (the storage folder given to scripts/build_map.sh, if any).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE_UID=1000
IMAGE_GID=1000

die() {
    echo "run_map.sh: ERROR: $*" >&2
    exit 2
}

buildah_cmd() {
    local storage=(--storage-driver vfs)
    if [[ -n "${BUILDAH_ROOT:-}" ]]; then
        storage+=(--root "$BUILDAH_ROOT/root" --runroot "$BUILDAH_ROOT/run")
    fi
    buildah "${storage[@]}" "$@"
}

(($# >= 2)) || die "usage: scripts/run_map.sh INPUT_DIR OUTPUT_DIR [TAG] [-- APP_ARGS...]"
input="$(realpath "$1")"
output="$(realpath -m "$2")"
shift 2
tag="perfusion-map:$(sed -n 's/^  version: *//p' "$REPO/app.yaml" | head -n 1)"
if (($# > 0)) && [[ "$1" != "--" ]]; then
    tag="$1"
    shift
fi
[[ "${1:-}" == "--" ]] && shift

[[ -d "$input" ]] || die "input folder $input does not exist"
mkdir -p "$output"
[[ -z "$(ls -A "$output")" ]] || die "output folder $output is not empty; give a new or empty folder"

engine="${MAP_ENGINE:-}"
if [[ -z "$engine" ]]; then
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then engine=docker; else engine=buildah; fi
fi

owner="$(id -u):$(id -g)"
docker_user=()
if [[ "$(id -u)" -eq 0 ]]; then
    chown "$IMAGE_UID:$IMAGE_GID" "$output"  # the image's own user writes the results
else
    docker_user=(--user "$owner")  # a non-root caller's own user writes them
fi
start=$SECONDS
status=0
case "$engine" in
    docker)
        docker run --rm --ulimit stack=33554432 "${docker_user[@]}" \
            -v "$input:/var/holoscan/input:ro" -v "$output:/var/holoscan/output" \
            "$tag" "$@" || status=$?
        ;;
    buildah)
        ctr="$(buildah_cmd from --pull=never "$tag")" || die "image $tag not found; build it with scripts/build_map.sh"
        trap 'buildah_cmd rm "$ctr" >/dev/null' EXIT
        buildah_cmd run --isolation chroot \
            -v "$input:/var/holoscan/input:ro" -v "$output:/var/holoscan/output" \
            "$ctr" -- /opt/holoscan/entrypoint.sh "$@" || status=$?
        ;;
    *) die "MAP_ENGINE must be docker or buildah, not '$engine'" ;;
esac
if [[ "$(id -u)" -eq 0 ]]; then
    chown -R "$owner" "$output"
fi
echo "run_map.sh: $tag ($engine) exited with $status after $((SECONDS - start)) s; results in $output" >&2
exit "$status"
