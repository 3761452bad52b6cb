#!/usr/bin/env bash
# Build the MONAI Application Package (MAP) image of the application (CPU only); see docs/deploy.md.
#
#   scripts/build_map.sh [TAG]        TAG defaults to perfusion-map:<version in app.yaml>
#   scripts/build_map.sh --stage-only only step 1 (e.g. for `holoscan package`, see docs/deploy.md)
#
# 1. writes app.json / pkg.json from app.yaml (python -m deploy.map.manifests) and stages the build
#    context in $MAP_BUILD_DIR/context (app code, models, docs, manifests, the torch CPU wheel);
# 2. builds deploy/map/Dockerfile with `docker build` when a Docker engine answers (`docker info`),
#    otherwise with buildah (vfs storage, chroot isolation) on a Debian bookworm base image that it
#    makes itself from a debootstrap root file system (cached), so that no registry is needed.
#
# Environment (all optional):
#   MAP_ENGINE      docker or buildah (default: docker when `docker info` succeeds, else buildah)
#   MAP_BUILD_DIR   staging folder (default: build/map, ignored by git)
#   MAP_CACHE_DIR   debootstrap root file system cache (default: build/map-cache)
#   BUILDAH_ROOT    buildah storage folder (default: buildah's own, /var/lib/containers/storage)
#   DEBIAN_MIRROR   mirror for debootstrap (default: http://deb.debian.org/debian)
#   TORCH_WHEEL     the torch CPU wheel (default: torch-<pinned version>+cpu-*.whl in /opt/wheels)
#   PIP_CERT        CA bundle pip needs behind a TLS-inspecting proxy (default: pip's own `global.cert`
#                   setting, if any); mounted for the pip step only, never stored in the image
#   PYTHON          Python with PyYAML (default: .venv/bin/python)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
BUILD_DIR="${MAP_BUILD_DIR:-$REPO/build/map}"
CACHE_DIR="${MAP_CACHE_DIR:-$REPO/build/map-cache}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE_IMAGE="localhost/perfusion-map-base:bookworm"
CONTEXT="$BUILD_DIR/context"

die() {
    echo "build_map.sh: ERROR: $*" >&2
    exit 1
}
log() { echo "build_map.sh: $*" >&2; }

buildah_cmd() {
    local storage=(--storage-driver vfs)
    if [[ -n "${BUILDAH_ROOT:-}" ]]; then
        storage+=(--root "$BUILDAH_ROOT/root" --runroot "$BUILDAH_ROOT/run")
    fi
    buildah "${storage[@]}" "$@"
}

stage_context() {
    [[ -x "$PYTHON" ]] || die "$PYTHON not found; run 'make setup' first (or set PYTHON)"
    rm -rf "$CONTEXT"
    mkdir -p "$CONTEXT/app" "$CONTEXT/models" "$CONTEXT/docs" "$CONTEXT/wheels" "$CONTEXT/pip-ca"
    (cd "$REPO" && "$PYTHON" -m deploy.map.manifests --out "$CONTEXT/map") || die "app.yaml is not valid (see above)"
    tar -C "$REPO" --exclude=__pycache__ -cf - app core operators | tar -C "$CONTEXT/app" -xf -
    local model
    for model in $("$PYTHON" -c 'import json, sys; print(" ".join(m["name"] for m in json.load(open(sys.argv[1]))["models"]))' "$CONTEXT/map/pkg.json"); do
        cp -R "$REPO/models/$model" "$CONTEXT/models/$model"
    done
    cp "$REPO/README.md" "$REPO/CHANGELOG.md" "$REPO/docs/deploy.md" "$CONTEXT/docs/"
    cp "$REPO/app/README.md" "$CONTEXT/docs/app.md"
    cp "$REPO/app.yaml" "$REPO/requirements.txt" "$REPO/deploy/map/Dockerfile" "$REPO/deploy/map/entrypoint.sh" "$CONTEXT/"
    local torch_version wheel
    torch_version="$(sed -n 's/^torch==\([^ ]*\).*/\1/p' "$REPO/requirements.txt")"
    [[ -n "$torch_version" ]] || die "requirements.txt does not pin torch=="
    wheel="${TORCH_WHEEL:-$(ls /opt/wheels/torch-"$torch_version"+cpu-*.whl 2>/dev/null | head -n 1)}"
    [[ -f "$wheel" ]] || die "torch $torch_version CPU wheel not found; set TORCH_WHEEL=/path/to/torch-$torch_version+cpu-...whl"
    ln -f "$wheel" "$CONTEXT/wheels/" 2>/dev/null || cp "$wheel" "$CONTEXT/wheels/"
    local cert="${PIP_CERT:-$("$PYTHON" -m pip config list 2>/dev/null | sed -n "s/^global\.cert='\(.*\)'$/\1/p" | head -n 1)}"
    if [[ -n "$cert" ]]; then
        [[ -f "$cert" ]] || die "PIP_CERT / pip's global.cert names $cert, which is not a file"
        cp "$cert" "$CONTEXT/pip-ca/ca.pem"
        log "pip inside the build trusts the CA bundle $cert"
    fi
}

build_args() {
    local line args=()
    while IFS= read -r line; do
        args+=(--build-arg "$line")
    done < "$CONTEXT/map/build-args.env"
    printf '%s\0' "${args[@]}"
}

debootstrap_rootfs() {
    local rootfs="$CACHE_DIR/rootfs-bookworm"
    if [[ -d "$rootfs" ]]; then
        log "using the cached root file system $rootfs"
    else
        command -v debootstrap >/dev/null || die "debootstrap not found; install it with: apt-get install debootstrap"
        log "debootstrap Debian bookworm (minbase) into $rootfs (a few minutes)"
        rm -rf "$rootfs.partial"
        mkdir -p "$CACHE_DIR"
        debootstrap --variant=minbase bookworm "$rootfs.partial" "$DEBIAN_MIRROR" >&2 \
            || die "debootstrap failed; see $rootfs.partial/debootstrap/debootstrap.log"
        mv "$rootfs.partial" "$rootfs"
    fi
    echo "$rootfs"
}

make_base_image() {
    if buildah_cmd inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
        log "base image $BASE_IMAGE exists"
        return
    fi
    local rootfs ctr mnt
    rootfs="$(debootstrap_rootfs)"
    ctr="$(buildah_cmd from scratch)"
    trap 'buildah_cmd umount "$ctr" >/dev/null 2>&1 || true; buildah_cmd rm "$ctr" >/dev/null 2>&1 || true' EXIT
    mnt="$(buildah_cmd mount "$ctr")"
    tar -C "$rootfs" --exclude=./var/cache/apt/archives/*.deb --exclude=./var/lib/apt/lists/* \
        --exclude=./debootstrap -cf - . | tar -C "$mnt" -xf -
    buildah_cmd umount "$ctr" >/dev/null
    buildah_cmd config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --cmd /bin/bash --label org.opencontainers.image.description="Debian bookworm minbase (debootstrap)" "$ctr"
    buildah_cmd commit --rm "$ctr" "$BASE_IMAGE" >/dev/null
    trap - EXIT
    log "base image $BASE_IMAGE committed"
}

main() {
    local engine="${MAP_ENGINE:-}"
    if [[ -z "$engine" ]]; then
        if command -v docker >/dev/null && docker info >/dev/null 2>&1; then engine=docker; else engine=buildah; fi
    fi
    local start=$SECONDS
    stage_context
    if [[ "${1:-}" == "--stage-only" ]]; then
        log "staged the build context in $CONTEXT"
        return
    fi
    local version tag
    version="$(sed -n 's/^APP_VERSION=//p' "$CONTEXT/map/build-args.env")"
    tag="${1:-perfusion-map:$version}"
    local args=()
    mapfile -d '' args < <(build_args)
    case "$engine" in
        docker)
            log "building $tag with docker"
            DOCKER_BUILDKIT=1 docker build "${args[@]}" -t "$tag" -f "$CONTEXT/Dockerfile" "$CONTEXT"
            docker image ls "$tag"
            ;;
        buildah)
            command -v buildah >/dev/null || die "neither a Docker engine nor buildah found; install buildah (apt-get install buildah)"
            make_base_image
            log "building $tag with buildah (vfs, chroot isolation)"
            buildah_cmd bud --isolation chroot --layers=false --build-arg BASE_IMAGE="$BASE_IMAGE" "${args[@]}" \
                -t "$tag" -f "$CONTEXT/Dockerfile" "$CONTEXT"
            buildah_cmd images "$tag"
            ;;
        *) die "MAP_ENGINE must be docker or buildah, not '$engine'" ;;
    esac
    log "built $tag with $engine in $((SECONDS - start)) s"
}

main "$@"
