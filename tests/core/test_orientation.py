"""Reorientation to the canonical LPS layout: exact, reversible, and positions preserved."""

import numpy as np
import pytest

from core.errors import InputDataError
from core.geometry import Grid
from core.orientation import RAS_TO_LPS, affine_from_dicom, canonical, grid_affine_lps

GRID = Grid((5, 6, 7), (2.0, 0.7, 0.8), (-10.0, 20.0, 30.0))


def _position(affine, index):
    return (affine @ np.append(np.asarray(index, float), 1.0))[:3]


def test_canonical_grid_is_unchanged():
    volume = np.arange(5 * 6 * 7).reshape(GRID.shape)
    out, grid, back = canonical(volume, grid_affine_lps(GRID))
    assert grid == GRID
    np.testing.assert_array_equal(out, volume)
    np.testing.assert_array_equal(back.to_original(out), volume)


@pytest.mark.parametrize("permutation", [(0, 1, 2), (2, 1, 0), (1, 0, 2), (2, 0, 1)])
@pytest.mark.parametrize("flips", [(False, False, False), (True, False, True), (True, True, True)])
def test_any_permutation_and_flip_round_trips_and_keeps_positions(permutation, flips):
    canonical_volume = np.random.default_rng(0).normal(size=GRID.shape)
    affine = grid_affine_lps(GRID)
    # build an arbitrary layout: flip canonical axes, then permute
    volume, new_affine = canonical_volume, affine.copy()
    for axis, flip in enumerate(flips):
        if flip:
            volume = np.flip(volume, axis)
            new_affine[:3, 3] += new_affine[:3, axis] * (GRID.shape[axis] - 1)
            new_affine[:3, axis] *= -1
    volume = np.transpose(volume, permutation)
    new_affine[:3, :3] = new_affine[:3, list(permutation)]
    out, grid, back = canonical(volume, new_affine)
    assert grid.shape == GRID.shape
    np.testing.assert_allclose(grid.spacing_mm, GRID.spacing_mm)
    np.testing.assert_allclose(grid.origin_lps_mm, GRID.origin_lps_mm)
    np.testing.assert_array_equal(out, canonical_volume)
    np.testing.assert_array_equal(back.to_original(out), volume)


def test_feet_first_dicom_stack_maps_right_to_x_negative():
    # FFS-style: image x axis towards the patient's right (-x), slices ordered towards the feet
    affine = affine_from_dicom([-1, 0, 0, 0, 1, 0], [100.0, -50.0, 200.0], [0.5, 0.6], [0.0, 0.0, -3.0])
    volume = np.zeros((4, 3, 2))
    volume[0, 0, 0] = 1.0  # the voxel at (x=100, y=-50, z=200): most left, anterior, superior
    out, grid, _ = canonical(volume, affine)
    k, j, i = np.argwhere(out == 1.0)[0]
    np.testing.assert_allclose(_position(grid_affine_lps(grid), (k, j, i)), [100.0, -50.0, 200.0])
    assert (k, j, i) == (3, 0, 1)


def test_ras_affine_is_converted():
    ras = np.diag([0.8, 0.7, 2.0, 1.0])  # NIfTI RAS+: axes 0, 1, 2 towards patient right, anterior, superior
    _, grid, back = canonical(np.zeros((7, 6, 5)), RAS_TO_LPS @ ras)
    assert back.permutation == (2, 1, 0) and back.flips == (False, True, True)
    assert grid.spacing_mm == (2.0, 0.7, 0.8)


def test_oblique_volume_is_refused_clearly():
    angle = np.deg2rad(45.0)
    affine = np.eye(4)
    affine[:3, 1] = [0.0, np.cos(angle), np.sin(angle)]
    affine[:3, 0] = [0.0, -np.sin(angle), np.cos(angle)]
    affine[:3, 2] = [1.0, 0.0, 0.0]
    with pytest.raises(InputDataError, match="too oblique"):
        canonical(np.zeros((3, 3, 3)), affine)
