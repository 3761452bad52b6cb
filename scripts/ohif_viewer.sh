#!/usr/bin/env bash
# The app's results in the OHIF Viewer, offline: download the pinned OHIF build (npm @ohif/app 3.13.2,
# checked against its sha512) into build/ohif/, then regenerate docs/figures/viewer_ohif_ct_perfusion.png
# and viewer_ohif_sc.png: the sample study stored in a loopback-only Orthanc, processed and pushed back
# by `python -m app.pacs`, served with OHIF on loopback and photographed by headless Chromium.
# Needs root and the packages of scripts/install_system_deps.sh; npm and the npm registry only for the
# first download.  Takes about as long as `make demo` plus 1-2 minutes.  Exits non-zero if a screenshot
# does not show a rendered image or the page asked for anything outside loopback.  See docs/viewer.md.
# Usage: bash scripts/ohif_viewer.sh [OUT_DIR]     (default: docs/figures)
#        bash scripts/ohif_viewer.sh fetch         (only download and unpack OHIF)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ulimit -s 32768 || true
if [[ "${1:-}" == "fetch" ]]; then
    exec $PY -m tests.pacs.ohif --fetch-only
fi
exec $PY -m tests.pacs.ohif --out "${1:-docs/figures}"
