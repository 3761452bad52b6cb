#!/usr/bin/env bash
# Reproduce the shipped DSC-MRI stU-Net (models/stunet_dsc, seed 004) on a CPU machine:
# brain-tumour DSC phantoms (core.simulation.dsc_phantom, cached under data/dsc_cases) with Eq. 1 low doses
# -> training on two threads with trainer/configs/stunet_cpu.toml (runs/stunet_dsc)
# -> TorchScript export with metadata.json; the same for the per-frame-channel 2D CNN baseline
# (trainer/configs/frame_cnn_cpu.toml, runs/frame_cnn_dsc_model) -> the paper's Table 1 on the held-out phantoms
# with both networks and SVD (runs/stunet_eval), copied to where they ship (models/stunet_dsc/evaluation.json,
# docs/dsc_table1.md, docs/figures/dsc_figure1_cbv.png), and the Eq. 1 validation (runs/dsc_low_dose).
# Measured: see CHANGELOG.
# Usage: bash scripts/reproduce_dsc_weights.sh        (or: make weights-dsc)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ulimit -s 32768 || true
start=$(date +%s)
$PY -m trainer.dsc.train --config trainer/configs/stunet_cpu.toml --run runs/stunet_dsc
echo "trained after $(( $(date +%s) - start )) s"
$PY -m trainer.dsc.export --run runs/stunet_dsc --out models/stunet_dsc --version "${VERSION:-1.1.0}"
echo "models/stunet_dsc written after $(( $(date +%s) - start )) s"
$PY -m trainer.dsc.train --config trainer/configs/frame_cnn_cpu.toml --run runs/frame_cnn_dsc
$PY -m trainer.dsc.export --run runs/frame_cnn_dsc --out runs/frame_cnn_dsc_model --version "${VERSION:-1.1.0}"
echo "runs/frame_cnn_dsc_model written after $(( $(date +%s) - start )) s"
$PY -m trainer.dsc.evaluate --model models/stunet_dsc --baseline runs/frame_cnn_dsc_model --out runs/stunet_eval
cp runs/stunet_eval/results.json models/stunet_dsc/evaluation.json
cp runs/stunet_eval/table.md docs/dsc_table1.md
cp runs/stunet_eval/figure1_cbv.png docs/figures/dsc_figure1_cbv.png
$PY -m trainer.low_dose_validation --out runs/dsc_low_dose
echo "evaluated after $(( $(date +%s) - start )) s"
