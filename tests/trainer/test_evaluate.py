"""Evaluation table and the classical HU baseline."""

import numpy as np

from trainer.data import LungSample
from trainer.evaluate import evaluate, hu_baseline, summarise, table


def test_hu_baseline_follows_the_classical_formulas():
    hu = np.full((16, 16, 16), -500.0, dtype=np.float32)
    hu[:, :, 8:] = -900.0
    mask = np.ones(hu.shape, dtype=bool)
    mask[0] = False
    sample = LungSample("c", "right", np.zeros_like(hu), mask, hu)
    ventilation = hu_baseline(sample, "ventilation")
    perfusion = hu_baseline(sample, "perfusion")
    # F = 0.5 -> F(1-F) = 0.25; F = 0.9 -> 0.09 (far from the edge, after the 5-voxel smoothing)
    assert abs(ventilation[8, 8, 2] - 0.25) < 1e-6 and abs(ventilation[8, 8, 13] - 0.09) < 1e-6
    # 1 - F: 0.5 and 0.1
    assert abs(perfusion[8, 8, 2] - 0.5) < 1e-6 and abs(perfusion[8, 8, 13] - 0.1) < 1e-6
    assert not ventilation[0].any()


def test_a_perfect_prediction_beats_the_baseline_and_scores_one(phantom_samples):
    def oracle(sample):
        return {name: sample.spect[name] for name in ("perfusion", "ventilation")}

    rows = evaluate(phantom_samples, oracle, ("perfusion", "ventilation"))
    summary = summarise(rows)
    network = summary["perfusion/network/spect"]
    baseline = summary["perfusion/hu_baseline/spect"]
    assert network["spearman"]["mean"] > 0.999 and network["dice_high"]["mean"] > 0.999
    assert baseline["spearman"]["mean"] < network["spearman"]["mean"]
    assert "perfusion/network/truth" in summary and network["spearman"]["n"] == 2
    assert "| perfusion/network/spect | 2 |" in table(summary)
