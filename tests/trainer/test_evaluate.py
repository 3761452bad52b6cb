"""Evaluation table and the classical HU baseline."""

import numpy as np
import pytest
from scipy import ndimage

from core.geometry import Grid
from trainer.data import LungSample, NativeSpect
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


def test_the_spect_itself_scores_high_at_spect_resolution_and_beats_the_baseline(phantom_samples):
    def spect_on_the_crop(sample):
        return {name: sample.spect[name] for name in ("perfusion", "ventilation")}

    rows = evaluate(phantom_samples, spect_on_the_crop, ("perfusion", "ventilation"))
    assert {r["grid"] for r in rows} == {"spect"}
    summary = summarise(rows)
    network = summary["perfusion/network/spect"]
    baseline = summary["perfusion/hu_baseline/spect"]
    # the crop SPECT was interpolated from the native voxels and is compared back with them: close, not exact
    assert 0.9 < network["spearman"]["mean"] < 1.0 and network["dice_high"]["mean"] > 0.85
    assert network["ssim"]["mean"] > network["ssim_lung"]["mean"] > 0.6
    assert baseline["spearman"]["mean"] < network["spearman"]["mean"]
    assert "perfusion/network/truth" in summary and network["spearman"]["n"] == 2
    assert "| perfusion/network/spect | 2 |" in table(summary)


def test_prediction_equal_to_the_native_spect_scores_one():
    grid = Grid((16, 16, 16), (4.0, 4.0, 4.0), (0.0, 0.0, 0.0))
    mask = np.zeros(grid.shape, dtype=bool)
    mask[2:14, 3:13, 2:12] = True
    rng = np.random.default_rng(5)
    values = np.where(mask, ndimage.gaussian_filter(rng.random(grid.shape), 1.5) * 4, 0.0).astype(np.float32)
    values = np.where(mask, values / np.percentile(values[mask], 75), 0.0).astype(np.float32)
    hu = np.full(grid.shape, -800.0, dtype=np.float32)
    # crop grid = native grid, so the resampling is the identity
    sample = LungSample("c", "left", np.zeros(grid.shape, np.float32), mask, hu, crop_grid=grid)
    sample.native["perfusion"] = NativeSpect(values, mask, grid)
    rows = evaluate([sample], lambda s: {"perfusion": np.clip(values, 0.0, 1.0)}, ("perfusion",))
    network = next(r for r in rows if r["method"] == "network" and r["reference"] == "spect")
    assert network["grid"] == "spect"
    for key in ("ssim", "ssim_lung", "dice_high", "dice_low"):
        assert network[key] == pytest.approx(1.0, abs=1e-6), key
    # ranks agree below the P75 clip; the clipped quarter is one tie, so Spearman is high but not 1
    assert 0.9 < network["spearman"] < 1.0


def test_samples_without_native_voxels_are_scored_on_the_crop():
    mask = np.zeros((16, 16, 16), dtype=bool)
    mask[2:14, 2:14, 2:14] = True
    spect = np.where(mask, np.linspace(0.2, 1.6, 16)[None, None, :], 0.0).astype(np.float32)
    sample = LungSample("c", "left", np.zeros_like(spect), mask, np.full_like(spect, -700.0))
    sample.spect["perfusion"] = spect
    rows = evaluate([sample], lambda s: {"perfusion": spect}, ("perfusion",))
    assert {r["grid"] for r in rows} == {"crop"}
    assert next(r for r in rows if r["method"] == "network")["spearman"] == pytest.approx(1.0)
