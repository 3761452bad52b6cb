"""NEMA IEC body phantom geometry, compartments and values.

Units and tolerances:
* cavity volume 9.7 l (seed 003, NEMA NU 2) within 3 % (ml), on a 2 mm grid with 2x oversampling;
* sphere volumes within 5 % of (pi/6) d^3 (ml); sphere centres within 1 voxel (mm) of the
  ring of radius 57.2 mm, 70 mm below the lid;
* activity: spheres 12x background (kBq/ml) within 1e-6; lung insert and outside zero;
* mu (1/mm): water 0.01536 and lung insert 0.3 x water within 1 %.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.geometry import Grid
from core.simulation.nema import (
    CAVITY_LENGTH_MM,
    SPHERE_DIAMETERS_MM,
    SPHERE_PLANE_FROM_LID_MM,
    SPHERE_RING_RADIUS_MM,
    nema_iec_body_phantom,
)
from core.simulation.spect import linear_attenuation_per_mm

VOXEL_MM = 2.0


@pytest.fixture(scope="module")
def phantom():  # type: ignore[no-untyped-def]
    grid = Grid.centred((100, 170, 170), (VOXEL_MM, VOXEL_MM, VOXEL_MM))
    return nema_iec_body_phantom(grid, background_kbq_per_ml=5.0, oversample=2)


def _coordinates(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(grid.axis_mm(a) - grid.axis_mm(a).mean() for a in ("z", "y", "x"))  # type: ignore[return-value]


def test_cavity_volume_is_nema(phantom) -> None:  # type: ignore[no-untyped-def]
    volume_ml = phantom.cavity_mask.sum() * phantom.grid.voxel_volume_ml
    assert volume_ml == pytest.approx(9700.0, rel=0.03)


def test_spheres_have_nema_sizes_and_positions(phantom) -> None:  # type: ignore[no-untyped-def]
    z, y, x = _coordinates(phantom.grid)
    activity = phantom.activity_kbq_per_ml
    assert tuple(phantom.sphere_masks) == SPHERE_DIAMETERS_MM
    for diameter, mask in phantom.sphere_masks.items():
        k, j, i = np.nonzero(mask)
        centre = np.array([z[k].mean(), y[j].mean(), x[i].mean()])
        assert centre[0] == pytest.approx(0.5 * CAVITY_LENGTH_MM - SPHERE_PLANE_FROM_LID_MM, abs=VOXEL_MM)
        assert np.hypot(centre[1], centre[2]) == pytest.approx(SPHERE_RING_RADIUS_MM, abs=VOXEL_MM)
        half = int(np.ceil((0.5 * diameter + 4.0) / VOXEL_MM))
        box = tuple(slice(round(c) - half, round(c) + half + 1) for c in (k.mean(), j.mean(), i.mean()))
        excess_ml = (activity[box] - 5.0).sum() * phantom.grid.voxel_volume_ml / (60.0 - 5.0)
        assert excess_ml == pytest.approx(np.pi / 6 * (diameter / 10.0) ** 3, rel=0.05), diameter


def test_activity_concentrations(phantom) -> None:  # type: ignore[no-untyped-def]
    _, y, x = _coordinates(phantom.grid)
    activity = phantom.activity_kbq_per_ml
    assert np.allclose(activity[phantom.background_mask], 5.0, rtol=1e-6)
    assert activity[phantom.sphere_masks[37.0]].max() == pytest.approx(60.0, rel=1e-6)
    insert_core = phantom.lung_mask & (y[None, :, None] ** 2 + x[None, None, :] ** 2 < 20.0**2)
    assert insert_core.any() and activity[insert_core].max() == 0.0
    assert activity[~phantom.cavity_mask].max() < 5.0
    total_mbq = phantom.activity_mbq().sum()
    assert total_mbq == pytest.approx(activity.sum() * phantom.grid.voxel_volume_ml / 1000.0, rel=1e-5)


def test_attenuation_map(phantom) -> None:  # type: ignore[no-untyped-def]
    mu_water = linear_attenuation_per_mm("water", 140.5)
    mu = phantom.mu_per_mm
    assert np.median(mu[phantom.background_mask]) == pytest.approx(mu_water, rel=0.01)
    assert np.median(mu[phantom.lung_mask]) == pytest.approx(0.3 * mu_water, rel=0.01)
    assert mu[0, 0, 0] == pytest.approx(0.0, abs=1e-8)


def test_background_mask_keeps_clear_of_spheres_and_insert(phantom) -> None:  # type: ignore[no-untyped-def]
    background = phantom.background_mask
    assert background.sum() * phantom.grid.voxel_volume_ml > 3000.0
    for mask in [*phantom.sphere_masks.values(), phantom.lung_mask]:
        assert not (background & mask).any()
