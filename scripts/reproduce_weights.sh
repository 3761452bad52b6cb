#!/usr/bin/env bash
# Reproduce the shipped lung-function weights (models/ddran_lung) on a CPU machine:
# phantom cohort (80 cases) -> DDRAN final fit on the 60 % training cases -> test on the other 40 %
# -> TorchScript export with metadata.json and the training report.  Measured: see CHANGELOG.
# Usage: bash scripts/reproduce_weights.sh        (or: make weights)
# With COMPARE=1 it also trains the two single-decoder ARNNs and writes runs/comparison.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CASES=${CASES:-80}
ulimit -s 32768 || true
start=$(date +%s)
$PY -m trainer.phantom_cohort --out data/phantom_training --cases "$CASES"
echo "cohort ready after $(( $(date +%s) - start )) s"
$PY -m trainer.train --config trainer/configs/ddran_cpu_small.toml --out runs/ddran_lung --stage final \
    --export models/ddran_lung --version "${VERSION:-0.1.0}"
echo "models/ddran_lung written after $(( $(date +%s) - start )) s"
if [[ "${COMPARE:-0}" == "1" ]]; then
    for function in perfusion ventilation; do
        $PY -m trainer.train --config "trainer/configs/arnn_${function}_cpu.toml" --out "runs/arnn_${function}" --stage final
    done
    $PY -m trainer.compare --ddran runs/ddran_lung/final \
        --arnn runs/arnn_perfusion/final runs/arnn_ventilation/final --out runs/comparison.md
    cp runs/comparison.md models/ddran_lung/report/comparison.md
    echo "comparison written after $(( $(date +%s) - start )) s"
fi
