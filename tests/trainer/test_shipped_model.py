"""The shipped weights (models/ddran_lung): contract, TorchScript load, and behaviour on an unseen phantom."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from core.lung.synthesis import preprocessing_contract
from core.metrics import spearman_nonzero
from trainer.evaluate import evaluate, hu_baseline, summarise
from trainer.export import SYNTHETIC_NOTICE

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "ddran_lung"


@pytest.fixture(scope="module")
def metadata():
    return json.loads((MODEL_DIR / "metadata.json").read_text())


@pytest.fixture(scope="module")
def scripted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(MODEL_DIR / "model.ts"))


def test_metadata_matches_the_preprocessing_the_app_uses(metadata):
    assert metadata["input"]["preprocessing"] == json.loads(json.dumps(preprocessing_contract()))
    assert metadata["input"]["shape"] == [1, 1, 128, 64, 64]
    assert [o["name"] for o in metadata["outputs"]] == ["perfusion", "ventilation"]
    assert metadata["notice"] == SYNTHETIC_NOTICE
    assert metadata["trained_on"]["train_cases"] + metadata["trained_on"]["test_cases"] == 80


def test_recorded_test_metrics_beat_the_hu_baseline(metadata):
    summary = metadata["test_metrics"]
    for function in ("perfusion", "ventilation"):
        network, baseline = summary[f"{function}/network/spect"], summary[f"{function}/hu_baseline/spect"]
        for metric in ("spearman", "ssim", "ssim_lung", "dice_high", "dice_low"):
            assert network[metric]["mean"] > baseline[metric]["mean"], (function, metric)


def test_shipped_model_on_an_unseen_phantom_beats_the_hu_baseline(scripted, phantom_samples):
    # phantom seed 3 on a coarser grid than the training cohort (seeds 10000-10079): unseen data
    def predict(sample):
        with torch.no_grad():
            perfusion, ventilation = scripted(torch.from_numpy(sample.ct[None, None]))
        return {"perfusion": perfusion[0, 0].numpy(), "ventilation": ventilation[0, 0].numpy()}

    for sample in phantom_samples:
        outputs = predict(sample)
        for name, output in outputs.items():
            assert output.shape == (128, 64, 64) and output.min() >= 0.0 and output.max() <= 1.0
            r_network = spearman_nonzero(output, sample.spect[name], sample.mask)
            r_baseline = spearman_nonzero(hu_baseline(sample, name), sample.spect[name], sample.mask)
            assert r_network > r_baseline, (sample.name, name, r_network, r_baseline)
    summary = summarise(evaluate(phantom_samples, predict, ("perfusion", "ventilation")))
    assert summary["perfusion/network/spect"]["spearman"]["mean"] > 0.5
    assert np.isfinite(summary["ventilation/network/spect"]["dice_high"]["mean"])
