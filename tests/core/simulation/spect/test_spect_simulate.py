"""End-to-end simulation: grids, resampling, total counts and reconstruction quality.

Units and tolerances:
* spect_grid_for: grid centres equal within 1e-6 mm;
* resampling: total activity (MBq) conserved within 1e-5 relative; mean mu of a uniform
  region preserved within 1e-5 relative;
* counts: sum of the Poisson projections within 5 % of the requested total_counts
  (expected total within 1e-6 relative);
* reconstruction: Pearson r >= 0.9 inside the body (eroded by one voxel) between the OSEM
  image (default 4 x 10, about 5 Mcounts) and the true activity blurred by a 3D Gaussian
  with the collimator FWHM at 250 mm, the radius of rotation (13.4 mm).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.geometry import Grid
from core.simulation.spect import (
    GE_DISCOVERY_670_LEHR,
    ReconParams,
    SpectAcquisition,
    linear_attenuation_per_mm,
    simulate_spect,
    spect_grid_for,
)
from core.simulation.spect.collimator import FWHM_PER_SIGMA, gaussian_blur_matrix
from core.simulation.spect.resample import resample_box

MU_WATER = linear_attenuation_per_mm("water", 140.5)


def _grid_centre(grid: Grid) -> np.ndarray:
    return np.array([0.5 * (grid.axis_mm(a)[0] + grid.axis_mm(a)[-1]) for a in ("x", "y", "z")], dtype=np.float64)


def test_spect_grid_is_centred_on_the_ct_grid() -> None:
    ct = Grid((300, 512, 512), (1.25, 0.7, 0.7), (-170.0, -200.0, -1300.0))
    spect = spect_grid_for(ct, ReconParams(iterations=1, subsets=1))
    assert spect.shape == (128, 128, 128)
    assert spect.spacing_mm == (4.42, 4.42, 4.42)
    np.testing.assert_allclose(_grid_centre(spect), _grid_centre(ct), atol=1e-3)


def test_resampling_conserves_activity_and_mean_mu() -> None:
    rng = np.random.default_rng(3)
    ct = Grid.centred((40, 90, 90), (1.25, 0.977, 0.977))
    spect = spect_grid_for(ct, ReconParams(matrix=32, n_slices=16))
    activity = rng.uniform(0, 1, ct.shape).astype(np.float32)
    resampled = resample_box(activity, ct, spect, mode="sum")
    assert resampled.sum(dtype=np.float64) == pytest.approx(activity.sum(dtype=np.float64), rel=1e-5)
    mu = np.full(ct.shape, MU_WATER, dtype=np.float32)
    mean_mu = resample_box(mu, ct, spect, mode="mean")
    assert mean_mu[8, 16, 16] == pytest.approx(MU_WATER, rel=1e-5)


def _thorax(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Body ellipse with two lungs (30 % activity, low mu) and a hot insert (4x); MBq per voxel."""
    z, y, x = np.meshgrid(*(grid.axis_mm(a) - grid.axis_mm(a).mean() for a in ("z", "y", "x")), indexing="ij")
    body = ((x / 150.0) ** 2 + (y / 100.0) ** 2 < 1.0) & (np.abs(z) < 55.0)
    lungs = (((np.abs(x) - 65.0) / 45.0) ** 2 + (y / 65.0) ** 2 < 1.0) & (np.abs(z) < 40.0)
    hot = (x - 0.0) ** 2 + (y - 30.0) ** 2 + z**2 < 20.0**2
    activity = np.where(body, 1.0, 0.0) * np.where(lungs, 0.3, 1.0) * np.where(hot, 4.0, 1.0)
    mu = np.where(body, MU_WATER, 0.0) * np.where(lungs, 0.3, 1.0)
    activity *= 100.0 / activity.sum()
    return activity.astype(np.float32), mu.astype(np.float32), body


def test_total_counts_are_scaled_to_the_request() -> None:
    grid = Grid.centred((12, 48, 48), (8.84, 8.84, 8.84))
    activity, mu, _ = _thorax(grid)
    recon = ReconParams(iterations=1, subsets=6, matrix=96, n_slices=24)
    result = simulate_spect(activity, mu, grid, SpectAcquisition(), recon, np.random.default_rng(5), total_counts=2.0e5)
    assert result.expected_total_counts == pytest.approx(2.0e5, rel=1e-6)
    assert result.total_counts == pytest.approx(2.0e5, rel=0.05)
    assert result.projections.shape == (60, 24, 96)
    assert result.activity_on_spect_grid.sum() == pytest.approx(activity.sum(), rel=1e-5)


def _blur(volume: np.ndarray, fwhm_mm: float, voxel_mm: float) -> np.ndarray:
    """Separable 3D Gaussian blur (pixel-integrated kernel)."""
    out = torch.from_numpy(volume.astype(np.float32))
    sigma = np.array([fwhm_mm / FWHM_PER_SIGMA / voxel_mm])
    for axis, n in enumerate(volume.shape):
        kernel = torch.from_numpy(gaussian_blur_matrix(sigma, n, 0, n, 0)[0])
        out = torch.movedim(torch.tensordot(kernel, torch.movedim(out, axis, 0), dims=1), 0, axis)
    return out.numpy()


def test_reconstruction_correlates_with_blurred_truth() -> None:
    recon = ReconParams(matrix=96, n_slices=32)
    grid = spect_grid_for(Grid.centred((32, 96, 96), (4.42, 4.42, 4.42)), recon)
    activity, mu, body = _thorax(grid)
    # standard counts: 100 MBq with the seed-000 protocol (60 x 30 s), about 5 Mcounts
    result = simulate_spect(activity, mu, grid, SpectAcquisition(), recon, np.random.default_rng(7))
    assert result.total_counts > 3.0e6
    reference = _blur(result.activity_on_spect_grid, float(GE_DISCOVERY_670_LEHR.fwhm_mm(250.0)), 4.42)
    inside = _erode(body)
    r = np.corrcoef(result.recon[inside], reference[inside])[0, 1]
    assert r >= 0.9
    assert result.recon.dtype == np.float32 and result.recon.shape == grid.shape


def _erode(mask: np.ndarray) -> np.ndarray:
    """Mask eroded by one voxel (3x3x3 neighbourhood)."""
    outside = torch.from_numpy((~mask).astype(np.float32))[None, None]
    return torch.nn.functional.max_pool3d(outside, 3, stride=1, padding=1)[0, 0].numpy() == 0


def test_zero_activity_gives_empty_result_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    grid = Grid.centred((8, 16, 16), (8.84, 8.84, 8.84))
    zeros = np.zeros(grid.shape, dtype=np.float32)
    recon = ReconParams(iterations=1, subsets=2, matrix=32, n_slices=16)
    with caplog.at_level("WARNING"):
        result = simulate_spect(zeros, zeros, grid, SpectAcquisition(), recon, np.random.default_rng(0))
    assert "activity is zero" in caplog.text
    assert result.total_counts == 0.0 and not result.recon.any()
    assert result.projections.shape == (60, 16, 32)
