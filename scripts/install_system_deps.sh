#!/usr/bin/env bash
# Install the system (non-Python) tools this project needs, on Debian 12 / Ubuntu.
#
#   dicom3tools  provides dciodvfy, the DICOM IOD validator that the tests run on
#                every object the project writes (see tests/dciodvfy.py).
#
# Idempotent: packages already installed are left alone, and `apt-get update`
# runs only when something is missing.  Run as root (or with sudo available).
# Exits non-zero with a message saying what failed.
set -euo pipefail

PACKAGES=(dicom3tools)
REQUIRED_COMMANDS=(dciodvfy)

die() {
    echo "install_system_deps.sh: ERROR: $*" >&2
    exit 1
}

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

if [[ "$(id -u)" -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    die "must run as root (or with sudo) to install: ${PACKAGES[*]}"
fi

command -v apt-get >/dev/null 2>&1 || die "apt-get not found; this script supports Debian/Ubuntu only. Install ${PACKAGES[*]} by hand."

missing=()
for pkg in "${PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} > 0)); then
    echo "install_system_deps.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q || die "apt-get update failed; check network access to the Debian mirrors"
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed; see the apt output above"
else
    echo "install_system_deps.sh: already installed: ${PACKAGES[*]}"
fi

for cmd in "${REQUIRED_COMMANDS[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is still not on PATH after installing ${PACKAGES[*]}"
done
echo "install_system_deps.sh: OK ($(command -v dciodvfy))"
