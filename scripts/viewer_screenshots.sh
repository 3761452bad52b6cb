#!/usr/bin/env bash
# Regenerate docs/figures/viewer_orthanc_sc.png and viewer_orthanc_ct.png: the app's results in the
# Orthanc Web Viewer, photographed by headless Chromium after a PACS round trip (sample study stored
# in a loopback-only Orthanc, pulled, processed and pushed back by `python -m app.pacs`).
# Needs root and the packages of scripts/install_system_deps.sh.  Takes about as long as `make demo`
# plus 15 s.  Exits non-zero if a screenshot does not show a rendered image.
# Usage: bash scripts/viewer_screenshots.sh [OUT_DIR]      (default: docs/figures)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ulimit -s 32768 || true
$PY -m tests.pacs.webviewer --out "${1:-docs/figures}"
