"""NEMA IEC body phantom, standard (20 s/view) and 1/7-time (3 s/view) acquisitions (seed 003).

Units and tolerances:
* noise: coefficient of variation (std/mean over voxels, dimensionless) in the uniform
  background region of the 1/7-time OSEM image >= 2x that of the standard image
  (Poisson scaling predicts sqrt(20/3) = 2.6);
* contrast: the mean of every sphere (10-37 mm, 12:1) exceeds the background mean in the
  standard image, and the 37 mm sphere exceeds 4x background.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.geometry import Grid
from core.simulation.nema import nema_iec_body_phantom
from core.simulation.spect import ReconParams, SpectAcquisition, simulate_spect, spect_grid_for


@pytest.fixture(scope="module")
def nema_recons() -> dict[str, object]:
    recon = ReconParams(matrix=80, n_slices=48)
    grid = Grid.centred((96, 160, 160), (2.21, 2.21, 2.21))
    phantom = nema_iec_body_phantom(grid, oversample=2)
    spect_grid = spect_grid_for(grid, recon)
    masks = nema_iec_body_phantom(spect_grid)
    images = {}
    for name, seconds in (("standard", 20.0), ("seventh", 3.0)):
        acquisition = SpectAcquisition(time_per_view_s=seconds)
        result = simulate_spect(
            phantom.activity_mbq(), phantom.mu_per_mm, grid, acquisition, recon, np.random.default_rng(11)
        )
        images[name] = result.recon
    return {"images": images, "masks": masks}


def _cv(image: np.ndarray, mask: np.ndarray) -> float:
    values = image[mask]
    return float(values.std() / values.mean())


def test_one_seventh_time_is_noisier(nema_recons: dict) -> None:
    background = nema_recons["masks"].background_mask
    assert background.sum() > 500
    cv_standard = _cv(nema_recons["images"]["standard"], background)
    cv_seventh = _cv(nema_recons["images"]["seventh"], background)
    assert cv_seventh >= 2.0 * cv_standard


def test_spheres_are_hotter_than_background(nema_recons: dict) -> None:
    masks = nema_recons["masks"]
    image = nema_recons["images"]["standard"]
    background = float(image[masks.background_mask].mean())
    for diameter, sphere in masks.sphere_masks.items():
        assert sphere.any(), diameter
        assert float(image[sphere].mean()) > background, diameter
    assert float(image[masks.sphere_masks[37.0]].mean()) > 4.0 * background
