#!/usr/bin/env bash
# Reproduce the shipped CT perfusion Transformer (models/ctp_transformer, seed 002) on a CPU machine:
# simulated tissue curves (core.perfusion.datasets.training_parameters, cached under data/ctp_curves)
# -> training on one thread with trainer/configs/ctp_transformer_cpu.toml (runs/ctp_transformer)
# -> TorchScript export with metadata.json (validation CBF and BAD RMSE).  Measured: see CHANGELOG.
# Usage: bash scripts/reproduce_ctp_weights.sh        (or: make weights-ctp)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ulimit -s 32768 || true
start=$(date +%s)
$PY -m trainer.ctp.train --config trainer/configs/ctp_transformer_cpu.toml --run runs/ctp_transformer
echo "trained after $(( $(date +%s) - start )) s"
$PY -m trainer.ctp.export --run runs/ctp_transformer --out models/ctp_transformer --version "${VERSION:-1.0.0}"
echo "models/ctp_transformer written after $(( $(date +%s) - start )) s"
