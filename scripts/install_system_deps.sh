#!/usr/bin/env bash
# Install the system (non-Python) tools this project needs, on Debian 12 / Ubuntu.
#
#   dicom3tools  provides dciodvfy, the DICOM IOD validator that the tests run on
#                every object the project writes (see tests/dciodvfy.py).
#   orthanc, orthanc-dicomweb, orthanc-webviewer
#                a real PACS with its DICOMweb and Web Viewer plugins for the PACS round
#                trip and viewer tests (tests/pacs/).  The tests start their own Orthanc
#                with a temporary configuration; the system service is never used.
#   chromium     headless browser for the viewer screenshots (tests/pacs/webviewer.py).
#   iproute2, util-linux
#                ip, unshare and nsenter: the tests' Orthanc runs in a private,
#                loopback-only network namespace (tests/pacs/orthanc_sandbox.py).
#   npm          downloads the pinned OHIF Viewer build once (tests/pacs/ohif.py,
#                scripts/ohif_viewer.sh fetch); installed only when no `npm` is on PATH,
#                so a Node.js from elsewhere (e.g. NodeSource) is left alone.
#
# Idempotent: packages already installed are left alone, and `apt-get update`
# runs only when something is missing.  Run as root (or with sudo available).
# Exits non-zero with a message saying what failed.
set -euo pipefail

PACKAGES=(dicom3tools orthanc orthanc-dicomweb orthanc-webviewer chromium iproute2 util-linux)
REQUIRED_COMMANDS=(dciodvfy Orthanc chromium ip unshare nsenter)
REQUIRED_FILES=(/usr/share/orthanc/plugins/libOrthancDicomWeb.so /usr/share/orthanc/plugins/libOrthancWebViewer.so)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)
REQUIRED_COMMANDS+=(npm)
# Orthanc and ip live in sbin, which a non-root PATH may lack.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

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
for file in "${REQUIRED_FILES[@]}"; do
    [[ -e "$file" ]] || die "$file is missing after installing ${PACKAGES[*]}"
done
echo "install_system_deps.sh: OK (${REQUIRED_COMMANDS[*]} found)"
