#!/usr/bin/env bash
# Reproduce the shipped SPECT denoising weights (models/u2net_spect_bone) on a CPU machine:
# 40 bone SPECT/CT phantoms (standard 20 s/view and 1/7-time 3 s/view) and 3 NEMA IEC phantoms
# -> U2-Net with the CT and the no-CT ablation (seed 003), trained side by side on half the cases
# -> PSNR/SSIM table on the other half with the Gaussian baseline, NEMA sphere detectability
# -> TorchScript export with metadata.json and the evaluation report.  Measured: see CHANGELOG.
# Usage: bash scripts/reproduce_denoise_weights.sh        (or: make weights-denoise)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ulimit -s 32768 || true
start=$(date +%s)
$PY -m core.simulation --out data/spect_bone --cases 40 --first-seed 1000 --preset sample --kind bone
$PY -m core.simulation --out data/spect_nema --cases 3 --first-seed 2000 --preset sample --kind nema
$PY -c "from pathlib import Path; from trainer.denoise.data import cache_cases; \
cache_cases(Path('data/spect_bone'), Path('data/spect_bone_cache'))"
echo "phantoms ready after $(( $(date +%s) - start )) s"
# the two runs use one thread each, so they share the two cores
$PY -m trainer.denoise.train --config trainer/configs/u2net_spect_cpu.toml --run runs/u2net_spect &
with_ct=$!
$PY -m trainer.denoise.train --config trainer/configs/u2net_spect_noct_cpu.toml --run runs/u2net_spect_noct
wait "$with_ct"
echo "trained after $(( $(date +%s) - start )) s"
$PY -m trainer.denoise.evaluate --run runs/u2net_spect --ablation runs/u2net_spect_noct \
    --nema data/spect_nema/case_02000 data/spect_nema/case_02001 data/spect_nema/case_02002
$PY -m trainer.denoise.export --run runs/u2net_spect --out models/u2net_spect_bone --version "${VERSION:-1.0.0}"
echo "models/u2net_spect_bone written after $(( $(date +%s) - start )) s"
