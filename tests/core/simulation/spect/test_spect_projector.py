"""Projector physics: adjoint, attenuation, collimator blur and count scale.

Units and tolerances:
* adjoint: relative difference of <A x, y> and <x, A^T y> below 1e-4 (float32 sums);
* attenuation: counts per view of a point source in a water cylinder (mu = 0.01536 /mm,
  radius 100 mm, 2 mm voxels) within 3 % of ``k A exp(-mu L)`` with the analytic chord L;
* collimator: FWHM (mm) of a point source in air at 170 mm and 330 mm from the collimator
  within 10 % of ``sqrt(R_i^2 + R_g(d)^2)``;
* counts: a 1 MBq point in air gives sensitivity x time counts per view within 0.5 %.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.simulation.spect import GE_DISCOVERY_670_LEHR, SpectAcquisition, SpectProjector, linear_attenuation_per_mm

MU_WATER = linear_attenuation_per_mm("water", 140.5)


def _centred_coords(n: int, nz: int, voxel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """In-plane (y, x) voxel-centre coordinates relative to the axis, broadcast to (nz, n, n)."""
    c = (np.arange(n) - 0.5 * (n - 1)) * voxel_mm
    y, x = np.meshgrid(c, c, indexing="ij")
    return np.broadcast_to(y, (nz, n, n)), np.broadcast_to(x, (nz, n, n))


def test_backprojection_is_the_adjoint() -> None:
    rng = np.random.default_rng(1)
    n, nz, voxel = 40, 10, 4.42
    y, x = _centred_coords(n, nz, voxel)
    disc = x**2 + (y / 0.7) ** 2 < 70.0**2
    mu = np.where(disc, rng.uniform(0.002, 0.02, disc.shape), 0.0).astype(np.float32)
    support = disc.copy()
    support[:2] = False
    acq = SpectAcquisition(n_views=12)
    projector = SpectProjector(mu, support, voxel, acq, n_subsets=3)
    image = torch.from_numpy(rng.uniform(0, 1, (projector.n_pixels, projector.z1 - projector.z0)).astype(np.float32))
    proj = torch.from_numpy(rng.uniform(0, 1, (acq.n_views, nz, n)).astype(np.float32))
    lhs = float((projector.forward(image).double() * proj.double()).sum())
    rhs = float((image.double() * projector.backward(proj).double()).sum())
    assert abs(lhs - rhs) / abs(lhs) < 1e-4


@pytest.mark.parametrize("source_x_mm", [0.0, 50.0])
def test_point_in_water_cylinder_matches_analytic_attenuation(source_x_mm: float) -> None:
    n, nz, voxel, radius = 121, 41, 2.0, 100.0
    y, x = _centred_coords(n, nz, voxel)
    mu = np.where(x**2 + y**2 <= radius**2, MU_WATER, 0.0).astype(np.float32)
    activity = np.zeros((nz, n, n), dtype=np.float32)
    activity[nz // 2, n // 2, n // 2 + round(source_x_mm / voxel)] = 1.0
    acq = SpectAcquisition(n_views=24)
    projector = SpectProjector(mu, activity > 0, voxel, acq)
    counts = projector.forward(projector.to_support(activity)).sum(dim=(1, 2)).numpy()
    theta = np.deg2rad(acq.view_angles_deg())
    direction = np.stack([np.sin(theta), -np.cos(theta)], axis=1)  # towards the detector, (x, y)
    p_dot_n = source_x_mm * direction[:, 0]
    chord = -p_dot_n + np.sqrt(p_dot_n**2 - source_x_mm**2 + radius**2)
    expected = acq.counts_per_mbq_per_view * np.exp(-MU_WATER * chord)
    np.testing.assert_allclose(counts, expected, rtol=0.03)


def _fwhm_mm(profile: np.ndarray, voxel_mm: float) -> float:
    """FWHM of a Gaussian-like profile from its second moment, mm."""
    pos = np.arange(profile.size) * voxel_mm
    mean = (pos * profile).sum() / profile.sum()
    var = ((pos - mean) ** 2 * profile).sum() / profile.sum()
    return float(2.0 * np.sqrt(2.0 * np.log(2.0) * var))


@pytest.mark.parametrize("source_y_mm", [-80.0, 80.0])
def test_point_source_fwhm_matches_collimator_formula(source_y_mm: float) -> None:
    n, nz, voxel = 161, 81, 1.0
    mu = np.zeros((nz, n, n), dtype=np.float32)
    activity = np.zeros_like(mu)
    activity[nz // 2, n // 2 + round(source_y_mm / voxel), n // 2] = 1.0
    acq = SpectAcquisition(n_views=1)
    projector = SpectProjector(mu, activity > 0, voxel, acq, depth_bin_mm=2.0)
    view = projector.forward(projector.to_support(activity))[0].numpy()
    distance = acq.radius_of_rotation_mm + source_y_mm  # view 0 looks from anterior (-y)
    expected = float(GE_DISCOVERY_670_LEHR.fwhm_mm(distance))
    assert _fwhm_mm(view.sum(axis=0), voxel) == pytest.approx(expected, rel=0.10)
    assert _fwhm_mm(view.sum(axis=1), voxel) == pytest.approx(expected, rel=0.10)


def test_counts_in_air_are_sensitivity_times_time() -> None:
    n, nz, voxel = 33, 15, 4.42
    mu = np.zeros((nz, n, n), dtype=np.float32)
    activity = np.zeros_like(mu)
    activity[7, 10, 20] = 1.0
    acq = SpectAcquisition(n_views=8, time_per_view_s=20.0)
    projector = SpectProjector(mu, activity > 0, voxel, acq)
    counts = projector.forward(projector.to_support(activity)).sum(dim=(1, 2)).numpy()
    np.testing.assert_allclose(counts, acq.sensitivity_cps_per_mbq * 20.0, rtol=0.005)


def test_default_sensitivity_is_the_collimator_formula() -> None:
    assert SpectAcquisition().sensitivity_cps_per_mbq == pytest.approx(
        GE_DISCOVERY_670_LEHR.sensitivity_cps_per_mbq(), rel=0.02
    )
    assert float(GE_DISCOVERY_670_LEHR.fwhm_mm(100.0)) == pytest.approx(7.35, abs=0.05)
