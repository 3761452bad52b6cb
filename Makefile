# Quick start:  make demo   (set up, then run the app on the bundled sample study)
#               make test   (set up, then run the test suite)
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAMPLE ?= dicom_samples/thorax_small/dicom
OUT ?= output/demo

.PHONY: setup demo test lint bench weights weights-denoise weights-ctp weights-dsc clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	rm -rf $(OUT)
	ulimit -s 32768 && $(PY) -m app -i $(SAMPLE) -o $(OUT)
	@echo "Run record: $(OUT)/run_record.json"

test: $(STAMP)
	bash scripts/install_system_deps.sh
	bash scripts/ohif_viewer.sh fetch
	ulimit -s 32768 && $(PY) -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && $(PY) -m mypy

bench: $(STAMP)
	$(PY) bench/bench_generate_clinical.py
	$(PY) bench/bench_ct_ventilation_calibration.py
	$(PY) bench/bench_spect_denoising.py
	$(PY) bench/bench_ctp_osvd.py
	$(PY) bench/bench_dsc.py
	$(PY) bench/bench_end_to_end.py

# Reproduce models/ddran_lung from phantoms on this CPU (about 55 minutes; COMPARE=1 adds the ARNN comparison)
weights: $(STAMP)
	PY=$(PY) bash scripts/reproduce_weights.sh

# Reproduce models/u2net_spect_bone (SPECT denoising, seed 003) from phantoms on this CPU (about 65 minutes)
weights-denoise: $(STAMP)
	PY=$(PY) bash scripts/reproduce_denoise_weights.sh

# Reproduce models/ctp_transformer (CT perfusion Transformer, seed 002) from simulated curves on one CPU thread
# (about 30 minutes)
weights-ctp: $(STAMP)
	PY=$(PY) bash scripts/reproduce_ctp_weights.sh

# Reproduce models/stunet_dsc (DSC-MRI stU-Net, seed 004) and the 2D CNN baseline (runs/, not shipped) from
# brain-tumour DSC phantoms on two CPU threads, then Table 1 and the Eq. 1 validation (about 105 minutes)
weights-dsc: $(STAMP)
	PY=$(PY) bash scripts/reproduce_dsc_weights.sh

clean:
	rm -rf output .pytest_cache .mypy_cache .ruff_cache
