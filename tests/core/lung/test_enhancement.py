"""CT enhancement (seed 000, Eq. 1) against hand-computed values; per-lung crop geometry and paste back.

Tolerances: hand-computed equalised values 1e-6; crop of a linear HU ramp 0.05 HU (float32);
pasted-back lung Dice > 0.9.
"""

import inspect
import logging

import numpy as np
import pytest
from scipy import ndimage

from core.errors import NoLungsFoundError
from core.geometry import Grid
from core.labels import LungLabel
from core.lung.enhancement import LUNG_CROP_SHAPE, LungCrop, crop_lung, enhance_ct, enhance_lung


def _equalised(hu, mask=None):
    """Eq. 1 without the filters (window 1 = identity)."""
    return enhance_ct(hu, mask=mask, median_size=1, uniform_size=1)


def test_eq1_hand_computed_equalisation():
    hu = np.array([-1100, -1000, -800, -650, -300, -200, 0, 40], dtype=np.int16).reshape(2, 2, 2)
    out = _equalised(hu)
    # clipped: -1000 -1000 -800 -650 -300 -300 -300 -300
    # chf(-1000) = 2, chf(-800) = 3, chf(-650) = 4, chf(-300) = 8: (chf - 2) / (8 - 2)
    expected = np.array([0, 0, 1 / 6, 2 / 6, 1, 1, 1, 1]).reshape(2, 2, 2)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_outliers_are_replaced_with_the_thresholds():
    rng = np.random.default_rng(1)
    hu = rng.uniform(-1400.0, 600.0, size=(6, 7, 8))
    np.testing.assert_array_equal(_equalised(hu), _equalised(np.clip(hu, -1000, -300)))
    out = _equalised(hu)
    np.testing.assert_array_equal(out[hu <= -1000], 0.0)
    np.testing.assert_array_equal(out[hu >= -300], 1.0)


def test_histogram_is_taken_inside_the_mask_and_applied_everywhere():
    hu = np.array([[[-1000, -900, -800, -700], [0, -1200, -850, -300]]], dtype=np.float64)
    mask = np.array([[[True] * 4, [False] * 4]])
    out = _equalised(hu, mask)
    # lung histogram: chf(-1000) = 1, chf(-900) = 2, chf(-850) = 2, chf(-800) = 3, chf(-700) = 4 = chf(-300)
    expected = np.array([[[0, 1 / 3, 2 / 3, 1], [1, 0, 1 / 3, 1]]])
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_bins_are_one_hu_wide_nearest_integer_ties_up():
    hu = np.array([-1000.0, -800.5, -800.4, -799.6, -300.0]).reshape(1, 1, 5)
    out = _equalised(hu)
    # bins: -1000, -800, -800, -800, -300 -> chf(-1000) = 1, chf(-800) = 4, chf(-300) = 5
    np.testing.assert_allclose(out.ravel(), [0, 0.75, 0.75, 0.75, 1], atol=1e-6)


def test_defaults_are_the_papers():
    params = inspect.signature(enhance_ct).parameters
    assert params["median_size"].default == 10
    assert params["uniform_size"].default == 5
    assert params["low_hu"].default == -1000
    assert params["high_hu"].default == -300
    assert LUNG_CROP_SHAPE == (128, 64, 64)
    assert inspect.signature(crop_lung).parameters["shape"].default == (128, 64, 64)


def _impulse():
    hu = np.full((7, 7, 7), -1000.0)
    hu[3, 3, 3] = -300.0  # equalises to 1, the rest to 0
    return hu


def test_median_is_applied_before_uniform():
    # median (3) removes the impulse, so the uniform filter has nothing to spread: all 0.
    # (uniform first would give a 3x3x3 block of 1/27 whose median at the centre is 1/27.)
    out = enhance_ct(_impulse(), median_size=3, uniform_size=3)
    np.testing.assert_array_equal(out, 0.0)


def test_uniform_filter_spreads_an_impulse_over_its_window():
    out = enhance_ct(_impulse(), median_size=1, uniform_size=3)
    expected = np.zeros((7, 7, 7))
    expected[2:5, 2:5, 2:5] = 1 / 27
    np.testing.assert_allclose(out, expected, atol=1e-7)


def test_default_filtering_equals_scipy_median_10_then_uniform_5():
    hu = np.random.default_rng(2).integers(-1100, -200, size=(24, 20, 18)).astype(np.int16)
    equalised = _equalised(hu)
    expected = ndimage.uniform_filter(ndimage.median_filter(equalised, size=10), size=5)
    np.testing.assert_allclose(enhance_ct(hu), expected, atol=1e-6)


def test_air_only_volume_warns_and_returns_zeros(caplog):
    with caplog.at_level(logging.WARNING):
        out = _equalised(np.full((4, 4, 4), -1024.0))
    np.testing.assert_array_equal(out, 0.0)
    assert "-1000" in caplog.text


# A small CT grid (anisotropic) and a fine one (the crop down-samples it).
COARSE = Grid((60, 70, 90), (2.5, 1.6, 1.4), (-63.0, -56.0, -75.0))
FINE = Grid((170, 150, 200), (0.6, 0.5, 0.5), (-50.0, -37.0, -51.0))


def _lungs(grid):
    """Right lung (label 1) at patient right (-x), left lung (label 2) at +x: ellipsoids, HU -850 in -50 HU tissue."""
    z, y, x = np.meshgrid(grid.axis_mm("z"), grid.axis_mm("y"), grid.axis_mm("x"), indexing="ij")
    zc, yc = grid.axis_mm("z").mean(), grid.axis_mm("y").mean()
    half_x = 0.25 * grid.extent_mm[2]
    axes = (0.35 * grid.extent_mm[0], 0.3 * grid.extent_mm[1], 0.18 * grid.extent_mm[2])
    mask = np.zeros(grid.shape, dtype=np.uint8)
    for label, xc in ((LungLabel.RIGHT_LUNG, -half_x), (LungLabel.LEFT_LUNG, half_x)):
        inside = ((z - zc) / axes[0]) ** 2 + ((y - yc) / axes[1]) ** 2 + ((x - xc) / axes[2]) ** 2 <= 1
        mask[inside] = label
    hu = np.where(mask > 0, -850, -50).astype(np.int16)
    return hu, mask


def _dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("grid", [COARSE, FINE], ids=["coarse", "fine"])
@pytest.mark.parametrize("label", [LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG])
def test_crop_is_128x64x64_and_pastes_back_onto_the_lung(grid, label):
    hu, mask = _lungs(grid)
    hu_crop, mask_crop, crop = crop_lung(hu, mask, label, grid)
    assert hu_crop.shape == mask_crop.shape == (128, 64, 64)
    assert hu_crop.dtype == np.float32
    assert mask_crop.dtype == np.bool_
    back = crop.paste(mask_crop, interpolation="nearest")
    assert back.shape == grid.shape
    assert _dice(back, mask == label) > 0.9
    assert not np.logical_and(back, mask == (3 - label)).any()  # the other lung is not pasted in


def test_box_is_the_lung_plus_margin_and_crop_grid_covers_it():
    grid = COARSE
    mask = np.zeros(grid.shape, dtype=np.uint8)
    mask[10:40, 20:50, 5:35] = 1
    hu = np.full(grid.shape, -800, dtype=np.int16)
    _, _, tight = crop_lung(hu, mask, 1, grid, margin_mm=0.0)
    assert tight.box == (slice(10, 40), slice(20, 50), slice(5, 35))
    # 30 voxels per axis: 30 * 2.5 / 128, 30 * 1.6 / 64, 30 * 1.4 / 64 mm
    np.testing.assert_allclose(tight.grid.spacing_mm, (0.5859375, 0.75, 0.65625))
    # x: lower edge -63 + (5 - 0.5) * 1.4 = -56.7, plus half a crop voxel 0.328125
    assert tight.grid.origin_lps_mm[0] == pytest.approx(-56.371875)
    # z: lower edge -75 + (10 - 0.5) * 2.5 = -51.25, plus half a crop voxel 0.29296875
    assert tight.grid.origin_lps_mm[2] == pytest.approx(-50.95703125)
    # 5 mm margin: ceil(5 / 2.5) = 2, ceil(5 / 1.6) = 4, ceil(5 / 1.4) = 4 voxels
    _, _, wide = crop_lung(hu, mask, 1, grid, margin_mm=5.0)
    assert wide.box == (slice(8, 42), slice(16, 54), slice(1, 39))


def test_margin_is_clipped_to_the_image():
    mask = np.zeros(COARSE.shape, dtype=np.uint8)
    mask[0:5, 60:70, 0:3] = 2
    _, _, crop = crop_lung(np.zeros(COARSE.shape), mask, 2, COARSE, margin_mm=20.0)
    assert crop.box == (slice(0, 13), slice(47, 70), slice(0, 18))


def test_crop_samples_hu_at_the_right_patient_positions():
    grid = COARSE
    z, y, x = np.meshgrid(grid.axis_mm("z"), grid.axis_mm("y"), grid.axis_mm("x"), indexing="ij")
    ramp = (2.0 * x - 3.0 * y + 0.5 * z - 700.0).astype(np.float32)
    _, mask = _lungs(grid)
    hu_crop, _, crop = crop_lung(ramp, mask, LungLabel.LEFT_LUNG, grid)
    cz, cy, cx = np.meshgrid(crop.grid.axis_mm("z"), crop.grid.axis_mm("y"), crop.grid.axis_mm("x"), indexing="ij")
    # crop voxel centres are inside the box's outer voxel centres only where they are at
    # least half a source voxel from the box edge; compare there (linear is exact on a ramp)
    inner = (slice(3, -3), slice(2, -2), slice(2, -2))
    np.testing.assert_allclose(hu_crop[inner], (2.0 * cx - 3.0 * cy + 0.5 * cz - 700.0)[inner], atol=0.05)
    assert np.all(cx > 0)  # the left lung lies at +x (patient left)
    back = crop.to_box(hu_crop)
    np.testing.assert_allclose(back[2:-2, 2:-2, 2:-2], ramp[crop.box][2:-2, 2:-2, 2:-2], atol=0.05)


def test_missing_label_raises():
    hu, mask = _lungs(COARSE)
    mask[mask == LungLabel.LEFT_LUNG] = 0
    with pytest.raises(NoLungsFoundError, match="LEFT_LUNG"):
        crop_lung(hu, mask, LungLabel.LEFT_LUNG, COARSE)
    with pytest.raises(NoLungsFoundError):
        enhance_lung(hu, mask, LungLabel.LEFT_LUNG, COARSE)


def test_lung_crop_rejects_a_box_outside_the_grid():
    with pytest.raises(ValueError, match="box"):
        LungCrop((slice(0, 10), slice(0, 10), slice(80, 95)), COARSE)


def test_enhance_lung_is_crop_then_enhance_with_the_lung_histogram():
    hu, mask = _lungs(COARSE)
    hu = hu + np.random.default_rng(4).normal(0, 60, size=hu.shape)
    enhanced, mask_crop, crop = enhance_lung(hu, mask, LungLabel.RIGHT_LUNG, COARSE)
    hu_crop, mask_again, crop_again = crop_lung(hu, mask, LungLabel.RIGHT_LUNG, COARSE)
    assert crop == crop_again
    np.testing.assert_array_equal(mask_crop, mask_again)
    np.testing.assert_array_equal(enhanced, enhance_ct(hu_crop, mask=mask_crop))
    assert enhanced.shape == (128, 64, 64)
    assert enhanced.min() >= 0.0
    assert enhanced.max() <= 1.0
