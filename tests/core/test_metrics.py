"""Evaluation metrics (seed 000 Eqs. 4-6, seed 001) against hand-computed values.

Tolerances: hand-computed correlations and Dice 1e-9 (float64 arithmetic; Dice is a ratio of
small integers); SSIM of an image with itself 1e-9; SSIM against the hand formula for constant
images 1e-9 relative; SSIM against Eq. 5 written out with scipy's Gaussian filter 1e-9 absolute;
linear resampling of a linear ramp 1e-3 (float32 values up to ~100).
"""

import logging
import math

import numpy as np
import pytest
from scipy import ndimage

from core.geometry import Grid
from core.metrics import (
    METRIC_KEYS,
    evaluate_function_map,
    functional_dice,
    pearson_nonzero,
    spearman_nonzero,
    spect_voxels_covering,
    ssim,
    to_spect_resolution,
)

RNG_SEED = 20240601


def _smooth_volume(shape=(16, 16, 16), seed=RNG_SEED):
    """A positive, spatially correlated test volume in about [0, 1]."""
    rng = np.random.default_rng(seed)
    volume = ndimage.gaussian_filter(rng.random(shape), sigma=1.0)
    return (volume - volume.min()) / np.ptp(volume)


# --- Spearman / Pearson (Eq. 4) -------------------------------------------------------------


def test_spearman_of_a_monotone_nonlinear_transform_is_one():
    truth = np.arange(1.0, 25.0).reshape(2, 3, 4)
    # exp is strictly increasing: same ranks, so Rs = 1 although the relation is not linear
    assert spearman_nonzero(np.exp(truth), truth) == pytest.approx(1.0, abs=1e-9)


def test_spearman_of_a_reversed_ranking_is_minus_one():
    truth = np.arange(1.0, 25.0).reshape(2, 3, 4)
    # 1 / x is strictly decreasing on x > 0: ranks reversed, Rs = -1
    assert spearman_nonzero(1.0 / truth, truth) == pytest.approx(-1.0, abs=1e-9)


def test_spearman_leaves_out_zero_truth_voxels():
    truth = np.array([0.0, 0.0, 1.0, 2.0, 3.0])
    prediction = np.array([5.0, 6.0, 1.0, 2.0, 3.0])
    # Non-zero truth voxels: truth (1, 2, 3), prediction (1, 2, 3) -> Rs = 1.
    # Were the zeros kept: truth ranks (1.5, 1.5, 3, 4, 5), prediction ranks (4, 5, 1, 2, 3),
    # both mean 3; deviations (-1.5, -1.5, 0, 1, 2) and (1, 2, -2, -1, 0);
    # sum of products -1.5 - 3 + 0 - 1 + 0 = -5.5, sums of squares 9.5 and 10,
    # Rs = -5.5 / sqrt(95) = -0.564.
    assert spearman_nonzero(prediction, truth) == pytest.approx(1.0, abs=1e-9)


def test_spearman_mask_restricts_the_voxels():
    truth = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    prediction = np.array([1.0, 2.0, 3.0, 4.0, 100.0, -100.0])
    mask = np.array([True, True, True, True, False, False])
    # inside the mask the ranks agree: Rs = 1; the last voxel (truth highest, prediction lowest)
    # would lower it without the mask
    assert spearman_nonzero(prediction, truth, mask) == pytest.approx(1.0, abs=1e-9)
    assert spearman_nonzero(prediction, truth) < 0.9


def test_pearson_on_a_five_voxel_hand_example():
    truth = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    prediction = np.array([9.0, 2.0, 1.0, 4.0, 3.0, 5.0])
    # The zero truth voxel is left out: y = (1, 2, 3, 4, 5), p = (2, 1, 4, 3, 5), both mean 3.
    # dy = (-2, -1, 0, 1, 2), dp = (-1, -2, 1, 0, 2); sum dy*dp = 2 + 2 + 0 + 0 + 4 = 8;
    # sum dy^2 = 10, sum dp^2 = 10; R = 8 / sqrt(10 * 10) = 0.8.
    assert pearson_nonzero(prediction, truth) == pytest.approx(0.8, abs=1e-9)


def test_pearson_differs_from_spearman_for_a_nonlinear_relation():
    truth = np.array([1.0, 2.0, 3.0])
    prediction = np.array([1.0, 2.0, 30.0])
    # y mean 2, dy = (-1, 0, 1); p mean 11, dp = (-10, -9, 19); sum dy*dp = 10 + 0 + 19 = 29;
    # sum dy^2 = 2, sum dp^2 = 100 + 81 + 361 = 542; R = 29 / sqrt(1084) = 0.880830...
    assert pearson_nonzero(prediction, truth) == pytest.approx(29.0 / math.sqrt(1084.0), abs=1e-9)
    assert spearman_nonzero(prediction, truth) == pytest.approx(1.0, abs=1e-9)


def test_correlation_of_a_constant_image_is_nan_with_a_warning(caplog):
    truth = np.array([1.0, 2.0, 3.0])
    with caplog.at_level(logging.WARNING, logger="core.metrics"):
        assert math.isnan(spearman_nonzero(np.full(3, 0.5), truth))
        assert math.isnan(pearson_nonzero(truth, np.array([0.0, 0.0, 7.0])))  # one non-zero voxel
    assert "prediction is constant" in caplog.text
    assert "1 voxel(s)" in caplog.text


def test_correlation_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="prediction shape"):
        spearman_nonzero(np.ones(3), np.ones(4))


# --- SSIM (Eq. 5) ---------------------------------------------------------------------------


def test_ssim_of_an_image_with_itself_is_one():
    volume = _smooth_volume()
    assert ssim(volume, volume) == pytest.approx(1.0, abs=1e-9)


def test_ssim_drops_as_noise_grows():
    truth = _smooth_volume()
    rng = np.random.default_rng(RNG_SEED + 1)
    noise = rng.normal(size=truth.shape)
    values = [ssim(truth + level * noise, truth, data_range=1.0) for level in (0.01, 0.05, 0.2)]
    assert values[0] < 1.0
    assert values[0] > values[1] > values[2]


def test_ssim_of_constant_images_is_the_luminance_term():
    # Constant truth a = 1 and prediction b = 0: every local sigma is 0, so the contrast and
    # structure terms are C2 / C2 = 1 and SSIM = (2ab + C1) / (a^2 + b^2 + C1) = C1 / (1 + C1).
    truth = np.ones((12, 12, 12))
    prediction = np.zeros((12, 12, 12))
    # L = 1, k1 = 0.01: C1 = 1e-4 -> 1e-4 / 1.0001
    assert ssim(prediction, truth, data_range=1.0) == pytest.approx(1e-4 / 1.0001, rel=1e-9)
    # L = 1, k1 = 0.1: C1 = 1e-2 -> 1e-2 / 1.01
    assert ssim(prediction, truth, data_range=1.0, k1=0.1) == pytest.approx(1e-2 / 1.01, rel=1e-9)
    # L = 2, k1 = 0.01: C1 = (0.02)^2 = 4e-4 -> 4e-4 / 1.0004
    assert ssim(prediction, truth, data_range=2.0) == pytest.approx(4e-4 / 1.0004, rel=1e-9)


def _eq5_written_out(prediction, truth, k1, k2, L):
    """Eq. 5 with Gaussian (sigma 1.5, 3.5 sigma) local statistics and population covariances.

    L*C*S = (2 mu_y mu_p + C1)/(mu_y^2 + mu_p^2 + C1) * (2 s_y s_p + C2)/(s_y^2 + s_p^2 + C2)
            * (2 s_yp + C2)/(2 s_y s_p + C2); the middle numerator cancels the last denominator.
    """

    def local_mean(image):
        return ndimage.gaussian_filter(image, sigma=1.5, truncate=3.5, mode="reflect")

    mu_y, mu_p = local_mean(truth), local_mean(prediction)
    var_y = local_mean(truth * truth) - mu_y**2
    var_p = local_mean(prediction * prediction) - mu_p**2
    cov = local_mean(truth * prediction) - mu_y * mu_p
    C1, C2 = (k1 * L) ** 2, (k2 * L) ** 2
    return (2 * mu_y * mu_p + C1) * (2 * cov + C2) / ((mu_y**2 + mu_p**2 + C1) * (var_y + var_p + C2))


def test_ssim_follows_eq5_and_uses_k2():
    truth = _smooth_volume()
    prediction = np.clip(truth + np.random.default_rng(RNG_SEED + 2).normal(0.0, 0.1, truth.shape), 0, None)
    interior = np.zeros(truth.shape, dtype=bool)
    interior[5:-5, 5:-5, 5:-5] = True  # the 11-voxel window never leaves the volume here
    values = {}
    for k2 in (0.03, 0.3):
        expected = _eq5_written_out(prediction, truth, 0.01, k2, 1.0)[interior].mean()
        values[k2] = ssim(prediction, truth, k2=k2, data_range=1.0, mask=interior)
        assert values[k2] == pytest.approx(expected, abs=1e-9)
    # a larger C2 pulls the contrast/structure term towards 1
    assert values[0.3] > values[0.03] + 0.01


def test_ssim_mask_averages_the_map_inside_the_mask():
    truth = _smooth_volume((12, 12, 30))
    prediction = truth.copy()
    prediction[:, :, 15:] += np.random.default_rng(RNG_SEED + 3).normal(0.0, 0.2, (12, 12, 15))
    mask = np.zeros(truth.shape, dtype=bool)
    mask[:, :, :8] = True  # windows centred at x <= 7 reach x <= 12 < 15: identical images there
    assert ssim(prediction, truth, data_range=1.0, mask=mask) == pytest.approx(1.0, abs=1e-9)
    assert ssim(prediction, truth, data_range=1.0) < 0.9


def test_ssim_default_range_is_the_truth_range(caplog):
    truth = 3.0 * _smooth_volume() + 2.0  # range exactly 3 (min 2, max 5)
    prediction = truth + np.random.default_rng(RNG_SEED + 4).normal(0.0, 0.1, truth.shape)
    assert ssim(prediction, truth) == pytest.approx(ssim(prediction, truth, data_range=3.0), abs=1e-12)
    assert ssim(prediction, truth) != pytest.approx(ssim(prediction, truth, data_range=1.0), abs=1e-3)
    with caplog.at_level(logging.WARNING, logger="core.metrics"):
        assert math.isnan(ssim(prediction, np.full(truth.shape, 2.0)))
    assert "dynamic range L is 0" in caplog.text


def test_ssim_rejects_volumes_smaller_than_the_window():
    with pytest.raises(ValueError, match="at least 11 voxels"):
        ssim(np.ones((10, 12, 12)), np.ones((10, 12, 12)), data_range=1.0)


# --- Function-wise Dice (Eq. 6) -------------------------------------------------------------


def _dice_case():
    """Nine lung voxels (flat indices 0-8) and three voxels outside the lung (9-11)."""
    truth = np.array([0, 1, 2, 3, 4, 5, 6, 10, 20, 100, 100, 100], dtype=np.float64).reshape(1, 3, 4)
    prediction = np.array([0.5, 1, 1.5, 2, 2.5, 2, 8, 8, 10, 0, 0, 0], dtype=np.float64).reshape(1, 3, 4)
    mask = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], dtype=bool).reshape(1, 3, 4)
    return prediction, truth, mask


def test_functional_dice_on_a_hand_made_volume():
    prediction, truth, mask = _dice_case()
    # Truth in the lung, sorted: 0 1 2 3 4 5 6 10 20 (n = 9); P75 at position 0.75 * 8 = 6 -> 6.
    #   normalised: 0 .17 .33 .50 .67 .83 1 1.67 3.33; >= 0.66: voxels {4..8} (4/6 = 0.667 > 0.66).
    # Prediction in the lung, sorted: 0.5 1 1.5 2 2 2.5 8 8 10; P75 = 8.
    #   normalised: .06 .12 .19 .25 .31 .25 1 1 1.25; >= 0.66: voxels {6, 7, 8}.
    # High: |{6,7,8} & {4..8}| = 3 -> 2 * 3 / (3 + 5) = 0.75.
    # Low:  prediction {0..5}, truth {0..3}, overlap 4 -> 2 * 4 / (6 + 4) = 0.8.
    # (Without the mask the truth P75 over 12 values would be 20 + 0.25 * 80 = 40.)
    assert functional_dice(prediction, truth, mask) == pytest.approx((0.75, 0.8), abs=1e-9)


def test_functional_dice_threshold_keyword():
    prediction, truth, mask = _dice_case()
    # threshold 0.4: truth high {3..8} (3/6 = 0.5), prediction high still {6,7,8} (max low 2.5/8 = 0.31)
    # high: overlap 3 -> 6 / 9; low: prediction {0..5}, truth {0,1,2}, overlap 3 -> 6 / 9
    assert functional_dice(prediction, truth, mask, threshold=0.4) == pytest.approx((6 / 9, 6 / 9), abs=1e-9)


def test_functional_dice_empty_in_both_is_one_empty_in_one_is_zero():
    mask = np.ones((2, 2, 2), dtype=bool)
    truth = np.full((2, 2, 2), 2.0)  # constant: normalised 1 everywhere, all high, no low
    assert functional_dice(np.full((2, 2, 2), 5.0), truth, mask) == (1.0, 1.0)
    prediction = np.array([1.0, 1, 1, 1, 1, 1, 1, 0.1]).reshape(2, 2, 2)
    # prediction P75 = 1; low {7}, high {0..6}. High: 2 * 7 / (7 + 8) = 14 / 15; low: 2 * 0 / (1 + 0) = 0
    assert functional_dice(prediction, truth, mask) == pytest.approx((14 / 15, 0.0), abs=1e-9)


def test_functional_dice_of_a_zero_prediction_is_nan_with_a_warning(caplog):
    _, truth, mask = _dice_case()
    with caplog.at_level(logging.WARNING, logger="core.metrics"):
        high, low = functional_dice(np.zeros(truth.shape), truth, mask)
    assert math.isnan(high)
    assert math.isnan(low)
    assert "cannot normalise the prediction" in caplog.text


# --- All metrics, and the SPECT grid ----------------------------------------------------------


def test_evaluate_function_map_keys_and_perfect_agreement():
    mask = np.zeros((16, 16, 16), dtype=bool)
    mask[3:13, 3:13, 3:13] = True
    truth = np.where(mask, 0.1 + 0.9 * _smooth_volume(), 0.0)  # inside the [0, 1] range of Eq. 2
    result = evaluate_function_map(truth, truth, mask)
    assert tuple(result) == METRIC_KEYS == ("spearman", "pearson", "ssim", "ssim_lung", "dice_high", "dice_low")
    assert result == pytest.approx(dict.fromkeys(METRIC_KEYS, 1.0), abs=1e-9)


def test_evaluate_function_map_ssim_clips_truth_to_the_eq2_range_and_ignores_outside_the_mask():
    mask = np.zeros((16, 16, 16), dtype=bool)
    mask[3:13, 3:13, 3:13] = True
    truth = np.where(mask, 0.1 + 1.9 * _smooth_volume(), 0.0)  # SPECT / P75 reaches 2
    prediction = np.clip(truth, 0.0, 1.0) + np.where(mask, 0.0, 5.0)  # garbage outside the lung
    result = evaluate_function_map(prediction, truth, mask)
    # the prediction equals clip(truth, 0, 1) in the lung and is zeroed outside it: SSIM 1
    assert result["ssim"] == pytest.approx(1.0, abs=1e-9)
    assert result["ssim_lung"] == pytest.approx(1.0, abs=1e-9)
    unclipped = evaluate_function_map(prediction, truth, mask, data_range=2.0)
    assert unclipped["ssim_lung"] < 0.99
    # the whole-crop mean counts the agreeing zeros outside the lung, so it is the higher one
    noisy = prediction + np.random.default_rng(RNG_SEED + 9).normal(0.0, 0.1, truth.shape)
    noisy_result = evaluate_function_map(noisy, truth, mask)
    assert noisy_result["ssim"] > noisy_result["ssim_lung"]


def test_evaluate_function_map_matches_the_single_metrics():
    truth = _smooth_volume() + 0.1
    prediction = np.sqrt(truth) + np.random.default_rng(RNG_SEED + 5).normal(0.0, 0.05, truth.shape)
    mask = np.zeros(truth.shape, dtype=bool)
    mask[2:14, 2:14, 2:14] = True
    result = evaluate_function_map(prediction, truth, mask, data_range=1.0)
    dice_high, dice_low = functional_dice(prediction, truth, mask)
    assert result["spearman"] == spearman_nonzero(prediction, truth, mask)
    assert result["pearson"] == pearson_nonzero(prediction, truth, mask)
    assert result["ssim_lung"] != result["ssim"]
    outside_zero = np.where(mask, prediction, 0.0)
    assert result["ssim_lung"] == ssim(outside_zero, truth, data_range=1.0, mask=mask)
    assert result["ssim"] == ssim(outside_zero, truth, data_range=1.0, mask=np.ones_like(mask))
    assert (result["dice_high"], result["dice_low"]) == (dice_high, dice_low)


def test_to_spect_resolution_is_exact_for_a_linear_ramp():
    # Source: 1 mm voxels, centre of voxel [0, 0, 0] at LPS (0, 0, 0); value = x + 2 y + 3 z (mm).
    source = Grid((20, 20, 20), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    z, y, x = np.meshgrid(np.arange(20.0), np.arange(20.0), np.arange(20.0), indexing="ij")
    ramp = x + 2 * y + 3 * z
    # SPECT grid: 2.5 mm voxels from LPS (2, 3, 1); centres x = 2 + 2.5 i, y = 3 + 2.5 j, z = 1 + 2.5 k,
    # all inside the source (max 14.5 <= 19), where linear interpolation of a linear ramp is exact.
    spect_grid = Grid((6, 6, 6), (2.5, 2.5, 2.5), (2.0, 3.0, 1.0))
    k, j, i = np.meshgrid(np.arange(6.0), np.arange(6.0), np.arange(6.0), indexing="ij")
    expected = (2 + 2.5 * i) + 2 * (3 + 2.5 * j) + 3 * (1 + 2.5 * k)
    out = to_spect_resolution(ramp, source, spect_grid)
    assert out.shape == (6, 6, 6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-3)


def test_spect_voxels_covering_picks_the_voxel_centres_inside_the_region():
    # SPECT: 4 mm voxels, centres x = -10 + 4 i, y = 0 + 4 j, z = 100 + 4 k
    spect_grid = Grid((30, 20, 10), (4.0, 4.0, 4.0), (-10.0, 0.0, 100.0))
    # region: 2 mm voxels with edges x in [-1, 15), y in [7, 23), z in [109, 141)
    region = Grid((16, 8, 8), (2.0, 2.0, 2.0), (0.0, 8.0, 110.0))
    slices, sub = spect_voxels_covering(spect_grid, region)
    # x centres inside: 2, 6, 10, 14 -> i 3..6; y: 8, 12, 16, 20 -> j 2..5; z: 112 ... 140 -> k 3..10
    assert slices == (slice(3, 11), slice(2, 6), slice(3, 7))
    assert sub == Grid((8, 4, 4), (4.0, 4.0, 4.0), (2.0, 8.0, 112.0))
    with pytest.raises(ValueError, match="no SPECT voxel"):
        spect_voxels_covering(spect_grid, Grid((2, 2, 2), (1.0, 1.0, 1.0), (500.0, 0.0, 100.0)))
