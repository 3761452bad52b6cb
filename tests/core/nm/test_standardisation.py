"""SPECT standardisation (seed 000, Eq. 2) against hand-computed values; resampling between grids.

Tolerances: hand-computed levels exactly (float32 of k/10); normalised values 1e-6;
resampled hot cube: centroid within 2 mm, plateau mean within 1 %, total activity within 3 %.
"""

import numpy as np
import pytest

from core.errors import InputDataError
from core.geometry import Grid
from core.nm.standardisation import (
    discretise,
    high_intensity_value,
    normalise_spect,
    standardise_spect,
)
from core.resample import resample_to_grid


def _lung_case():
    """Lung voxels hold 0..7 (mask True); the other half of the array holds large values outside the lung."""
    spect = np.zeros((2, 2, 4), dtype=np.float32)
    mask = np.zeros((2, 2, 4), dtype=bool)
    spect[0] = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    mask[0] = True
    spect[1] = np.array([[100, 1000, 50, 80], [0, 3, 900, 700]])
    return spect, mask


def test_hir_is_p75_inside_the_lung_with_linear_rule():
    spect, mask = _lung_case()
    # sorted lung values 0..7, n = 8: position 0.75 * (8 - 1) = 5.25 -> 5 + 0.25 * (6 - 5) = 5.25
    assert high_intensity_value(spect, mask) == pytest.approx(5.25)


def test_eq2_hand_computed_levels():
    spect, mask = _lung_case()
    out = standardise_spect(spect, mask)
    # v / 5.25 = 0, 0.190, 0.381, 0.571, 0.762, 0.952, 1.143, 1.333 -> nearest 0.1, clipped at 1
    expected_lung = np.array([[0.0, 0.2, 0.4, 0.6], [0.8, 1.0, 1.0, 1.0]], dtype=np.float32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0], expected_lung)
    np.testing.assert_array_equal(out[1], np.zeros((2, 4), dtype=np.float32))  # outside the lung


def test_normalised_image_is_unclipped_and_zero_outside():
    spect, mask = _lung_case()
    out = normalise_spect(spect, mask)
    expected_lung = np.array([[0, 1, 2, 3], [4, 5, 6, 7]]) / 5.25
    np.testing.assert_allclose(out[0], expected_lung, rtol=1e-6)
    assert out[0].max() == pytest.approx(7 / 5.25)  # above HIR stays above 1
    np.testing.assert_array_equal(out[1], 0.0)


def test_rounding_is_to_nearest_level_ties_up_and_clipped():
    values = np.array([0.25, 0.75, 0.04, 0.06, 0.149, -0.3, 1.7, 1.0])
    expected = np.array([0.3, 0.8, 0.0, 0.1, 0.1, 0.0, 1.0, 1.0], dtype=np.float32)
    np.testing.assert_array_equal(discretise(values), expected)
    np.testing.assert_array_equal(
        discretise(np.array([0.2, 0.3, 0.8]), levels=3), np.array([0.0, 0.5, 1.0], dtype=np.float32)
    )


def test_at_most_eleven_levels_all_multiples_of_a_tenth():
    rng = np.random.default_rng(7)
    spect = rng.gamma(2.0, 50.0, size=(20, 20, 20)).astype(np.float32)
    mask = np.zeros(spect.shape, dtype=bool)
    mask[2:18, 3:17, 4:16] = True
    out = standardise_spect(spect, mask)
    levels = np.unique(out[mask])
    assert len(levels) <= 11
    assert len(levels) >= 9  # a gamma-distributed lung spreads over most levels
    np.testing.assert_allclose(levels * 10, np.round(levels * 10), atol=1e-5)
    # about a quarter of the lung is above HIR: those voxels are at level 1
    assert np.mean(out[mask] == 1.0) == pytest.approx(0.25, abs=0.03)


def test_empty_mask_is_a_clear_error():
    spect = np.ones((3, 3, 3))
    with pytest.raises(InputDataError, match="empty"):
        standardise_spect(spect, np.zeros((3, 3, 3), dtype=bool))


def test_zero_percentile_is_a_clear_error():
    spect = np.zeros((3, 3, 3))
    spect[0, 0, 0] = 5.0  # one hot voxel: P75 is still 0
    with pytest.raises(InputDataError, match="HIR"):
        normalise_spect(spect, np.ones((3, 3, 3), dtype=bool))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        standardise_spect(np.ones((3, 3, 3)), np.ones((3, 3, 4), dtype=bool))


# SPECT grid: 4.42 mm voxels; the hot cube occupies z 6:14, y 10:18, x 15:23 (8 voxels a side).
SPECT_GRID = Grid((24, 28, 32), (4.42, 4.42, 4.42), (-60.0, -50.0, 30.0))
# CT-like grid of the same frame of reference, 2 mm, inside the SPECT field.
CT_GRID = Grid((45, 55, 60), (2.0, 2.0, 2.0), (-55.0, -45.0, 35.0))
HOT, BACKGROUND = 10.0, 1.0


def _hot_cube():
    spect = np.full(SPECT_GRID.shape, BACKGROUND, dtype=np.float32)
    spect[6:14, 10:18, 15:23] = HOT
    return spect


def _ct_positions():
    z = 35.0 + 2.0 * np.arange(45)
    y = -45.0 + 2.0 * np.arange(55)
    x = -55.0 + 2.0 * np.arange(60)
    return np.meshgrid(z, y, x, indexing="ij")


def test_resampled_hot_cube_stays_at_the_same_lps_position():
    out = resample_to_grid(_hot_cube(), SPECT_GRID, CT_GRID)
    assert out.shape == CT_GRID.shape
    assert out.dtype == np.float32
    excess = out.astype(np.float64) - BACKGROUND
    z, y, x = _ct_positions()
    centroid = [float((excess * c).sum() / excess.sum()) for c in (x, y, z)]
    # cube centre: x = -60 + 4.42 * (15 + 22) / 2 = 21.77; y = -50 + 4.42 * 13.5 = 9.67; z = 30 + 4.42 * 9.5 = 71.99
    np.testing.assert_allclose(centroid, [21.77, 9.67, 71.99], atol=2.0)


def test_resampled_hot_cube_keeps_its_value_and_activity():
    spect = _hot_cube()
    out = resample_to_grid(spect, SPECT_GRID, CT_GRID)
    z, y, x = _ct_positions()
    # between the first and last hot voxel centres linear interpolation sees only hot voxels:
    # x 6.30..37.24, y -5.80..25.14, z 56.52..87.46 mm
    plateau = (x >= 6.3) & (x <= 37.24) & (y >= -5.8) & (y <= 25.14) & (z >= 56.52) & (z <= 87.46)
    assert plateau.sum() > 1000
    assert out[plateau].mean() == pytest.approx(HOT, rel=0.01)
    # excess activity (value - background) x voxel volume: 512 voxels x 9 x 4.42^3 mm^3
    total_mm3 = 512 * (HOT - BACKGROUND) * 4.42**3
    assert float((out - BACKGROUND).sum()) * 8.0 == pytest.approx(total_mm3, rel=0.03)


def test_resample_identity_and_nearest_keeps_labels():
    labels = np.random.default_rng(3).integers(0, 3, SPECT_GRID.shape).astype(np.uint8)
    same = resample_to_grid(labels, SPECT_GRID, SPECT_GRID, interpolation="nearest")
    np.testing.assert_array_equal(same, labels)
    assert same.dtype == np.uint8
    mask = resample_to_grid(labels == 2, SPECT_GRID, CT_GRID, interpolation="nearest")
    assert mask.dtype == np.bool_
    assert set(np.unique(resample_to_grid(labels, SPECT_GRID, CT_GRID, interpolation="nearest"))) <= {0, 1, 2}


def test_outside_the_source_gets_the_default_value():
    far = Grid((2, 2, 2), (2.0, 2.0, 2.0), (500.0, 500.0, 500.0))
    out = resample_to_grid(_hot_cube(), SPECT_GRID, far, default_value=-7.0)
    np.testing.assert_array_equal(out, -7.0)


def test_resample_rejects_bad_arguments():
    with pytest.raises(ValueError, match="shape"):
        resample_to_grid(np.zeros((2, 2, 2)), SPECT_GRID, CT_GRID)
    with pytest.raises(ValueError, match="interpolation"):
        resample_to_grid(_hot_cube(), SPECT_GRID, CT_GRID, interpolation="cubic")  # type: ignore[arg-type]
