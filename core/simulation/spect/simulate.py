"""End-to-end SPECT simulation: resample, project, add Poisson noise, reconstruct with OSEM.

Counts come from physics: a voxel holding ``A`` MBq contributes
``A x sensitivity (cps/MBq) x time per view (s) x exp(-attenuation path)`` counts to each view,
spread over the detector by the depth-dependent collimator PSF (parallel-hole collimators
have a depth-independent sensitivity in air).  With the defaults (76 cps/MBq, 30 s per view,
60 views) 1 MBq in air gives 137 kcounts in total; 111 MBq of MAA in the lungs, whose photons
leave the chest with a mean transmission of about 0.3-0.4, gives about 5 Mcounts.

Units of the reconstruction: OSEM with the same counts-per-MBq system model, so ``recon`` is
in MBq per voxel times ``count_scale`` (1 when ``total_counts`` is None; otherwise
``total_counts / physics-based expected counts``): counts-proportional in every case.
The data are projected with one collimator PSF per voxel of depth, the reconstruction uses
the depth-binned model (30 mm bins); otherwise the models are the same (grid, attenuation
map, rotation), and scatter is not modelled.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from core.errors import SimulationParameterError
from core.geometry import Grid
from core.simulation.spect.acquisition import ReconParams, SpectAcquisition, spect_grid_for
from core.simulation.spect.attenuation import linear_attenuation_per_mm
from core.simulation.spect.osem import osem
from core.simulation.spect.projector import SpectProjector
from core.simulation.spect.resample import resample_box

logger = logging.getLogger(__name__)

BODY_MU_FRACTION_OF_WATER = 0.1
"""Voxels with mu above this fraction of water's (about -900 HU) belong to the body outline."""

SUPPORT_MARGIN_VOXELS = 2
"""The reconstruction support is the filled body outline grown by this many voxels (and slices)."""

ORBIT_CLEARANCE_MM = 10.0
"""Gap kept between the furthest voxel of the object and the collimator face."""

TORCH_THREADS = 2
"""Threads used by torch during the simulation (the reference machine has two cores)."""


@dataclass
class SpectResult:
    """Output of :func:`simulate_spect`.

    Attributes
    ----------
    recon
        float32 ``(n_slices, matrix, matrix)`` OSEM reconstruction on ``spect_grid``, in MBq per
        voxel x ``count_scale`` (counts-proportional).
    spect_grid
        Scanner grid of ``recon`` (same LPS frame and centre as the input grid).
    projections
        float32 ``(n_views, n_slices, matrix)`` measured (Poisson) projections, counts.
    total_counts
        Sum of ``projections``.
    expected_total_counts
        Sum of the expected projections before Poisson noise (after any rescaling).
    activity_on_spect_grid
        float32 true activity resampled onto ``spect_grid``, MBq per voxel.
    count_scale
        Factor applied to the physics-based expected counts to reach the requested
        ``total_counts`` (1 when none was requested).
    """

    recon: np.ndarray
    spect_grid: Grid
    projections: np.ndarray
    total_counts: float
    expected_total_counts: float
    activity_on_spect_grid: np.ndarray
    count_scale: float = 1.0


def simulate_spect(
    activity_mbq: np.ndarray,
    mu_per_mm: np.ndarray,
    grid: Grid,
    acquisition: SpectAcquisition,
    recon: ReconParams,
    rng: np.random.Generator,
    total_counts: float | None = None,
) -> SpectResult:
    """Simulate a SPECT acquisition of an activity distribution and reconstruct it.

    Parameters
    ----------
    activity_mbq
        ``grid.shape`` activity per voxel, MBq (>= 0).
    mu_per_mm
        ``grid.shape`` linear attenuation coefficients at 140.5 keV, 1/mm
        (see :func:`~core.simulation.spect.attenuation.hu_to_mu_per_mm`).
    grid
        Grid of both inputs (e.g. the CT grid).
    acquisition
        Acquisition protocol (views, time per view, orbit, sensitivity, collimator).
    recon
        Reconstruction grid and OSEM iterations/subsets.
    rng
        Random generator of the Poisson noise.
    total_counts
        If given, the expected projections are scaled so that their sum equals it.

    Returns
    -------
    SpectResult
        Reconstruction, projections and bookkeeping; see :class:`SpectResult`.
    """
    _check_inputs(activity_mbq, mu_per_mm, grid, total_counts)
    torch.set_num_threads(TORCH_THREADS)
    started = time.perf_counter()
    spect_grid = spect_grid_for(grid, recon)
    activity = resample_box(activity_mbq, grid, spect_grid, mode="sum")
    mu = resample_box(mu_per_mm, grid, spect_grid, mode="mean")
    shape_proj = (acquisition.n_views, recon.n_slices, recon.matrix)
    if not activity.any():
        logger.warning("simulate_spect: activity is zero on the SPECT grid; returning empty projections and image")
        zeros = np.zeros(shape_proj, dtype=np.float32)
        return SpectResult(np.zeros(spect_grid.shape, np.float32), spect_grid, zeros, 0.0, 0.0, activity)
    support = object_support(activity, mu)
    acquisition = clear_the_body(acquisition, support, recon.pixel_mm)
    # data: one PSF per voxel of depth; reconstruction: the faster depth-binned model
    truth_model = SpectProjector(mu, support, recon.pixel_mm, acquisition, recon.subsets, depth_bin_mm=recon.pixel_mm)
    expected = truth_model.forward(truth_model.to_support(activity))
    del truth_model
    projector = SpectProjector(mu, support, recon.pixel_mm, acquisition, n_subsets=recon.subsets)
    physics_total = float(expected.sum(dtype=torch.float64))
    scale = 1.0 if total_counts is None else float(total_counts) / physics_total
    expected_np = expected.numpy().astype(np.float64) * scale
    measured = rng.poisson(expected_np).astype(np.float32)
    image = osem(projector, torch.from_numpy(measured), recon.iterations)
    result = SpectResult(
        recon=projector.from_support(image),
        spect_grid=spect_grid,
        projections=measured,
        total_counts=float(measured.sum(dtype=np.float64)),
        expected_total_counts=float(expected_np.sum()),
        activity_on_spect_grid=activity,
        count_scale=scale,
    )
    logger.info(
        "simulate_spect: %.3g MBq, %.3g counts (physics %.3g, scale %.3g), OSEM %dx%d, %.1f s",
        float(activity.sum()),
        result.total_counts,
        physics_total,
        scale,
        recon.iterations,
        recon.subsets,
        time.perf_counter() - started,
    )
    return result


def clear_the_body(acquisition: SpectAcquisition, support: np.ndarray, voxel_mm: float) -> SpectAcquisition:
    """Widen the orbit when the object (body and table) reaches past the radius of rotation.

    The heads cannot pass through the patient: on a large body the technologist sets a larger
    radius, so the simulation does the same (``ORBIT_CLEARANCE_MM`` beyond the furthest voxel).
    """
    ny, nx = support.shape[1:]
    iy, ix = np.nonzero(support.any(axis=0))
    if iy.size == 0:
        return acquisition
    r_max = float(np.hypot((ix - 0.5 * (nx - 1)) * voxel_mm, (iy - 0.5 * (ny - 1)) * voxel_mm).max()) + voxel_mm
    if r_max + ORBIT_CLEARANCE_MM <= acquisition.radius_of_rotation_mm:
        return acquisition
    logger.info(
        "radius of rotation raised from %.0f to %.0f mm to clear the body",
        acquisition.radius_of_rotation_mm,
        r_max + ORBIT_CLEARANCE_MM,
    )
    return dataclasses.replace(acquisition, radius_of_rotation_mm=r_max + ORBIT_CLEARANCE_MM)


def object_support(activity_mbq: np.ndarray, mu_per_mm: np.ndarray) -> np.ndarray:
    """Voxels the reconstruction may fill: the filled body outline around the active slices.

    In-plane, the union over the active slices of (body: ``mu`` above 10 % of water, or any
    activity), filled row- and column-wise and grown by :data:`SUPPORT_MARGIN_VOXELS`; axially,
    the slices holding activity, grown by the same margin.

    Parameters
    ----------
    activity_mbq, mu_per_mm
        ``(nz, ny, nx)`` activity and attenuation on the SPECT grid.

    Returns
    -------
    numpy.ndarray
        bool ``(nz, ny, nx)``.
    """
    nz = activity_mbq.shape[0]
    active = np.nonzero((activity_mbq > 0).any(axis=(1, 2)))[0]
    z0 = max(0, int(active[0]) - SUPPORT_MARGIN_VOXELS)
    z1 = min(nz, int(active[-1]) + 1 + SUPPORT_MARGIN_VOXELS)
    body_mu = BODY_MU_FRACTION_OF_WATER * linear_attenuation_per_mm("water", 140.5)
    plane: np.ndarray = np.any((mu_per_mm[z0:z1] > body_mu) | (activity_mbq[z0:z1] > 0), axis=0)
    rows = np.maximum.accumulate(plane, axis=1) & np.maximum.accumulate(plane[:, ::-1], axis=1)[:, ::-1]
    cols = np.maximum.accumulate(plane, axis=0) & np.maximum.accumulate(plane[::-1], axis=0)[::-1]
    filled = torch.from_numpy((rows & cols).astype(np.float32))[None, None]
    kernel = 2 * SUPPORT_MARGIN_VOXELS + 1
    grown = torch.nn.functional.max_pool2d(filled, kernel, stride=1, padding=SUPPORT_MARGIN_VOXELS)[0, 0].numpy() > 0
    support = np.zeros(activity_mbq.shape, dtype=bool)
    support[z0:z1] = grown
    return support


def _check_inputs(activity_mbq: np.ndarray, mu_per_mm: np.ndarray, grid: Grid, total_counts: float | None) -> None:
    """Validate :func:`simulate_spect` arguments."""
    for name, volume in (("activity_mbq", activity_mbq), ("mu_per_mm", mu_per_mm)):
        if volume.shape != grid.shape:
            raise SimulationParameterError(f"{name} has shape {volume.shape}, expected the grid shape {grid.shape}")
        if not np.isfinite(volume).all() or (volume < 0).any():
            raise SimulationParameterError(f"{name} must be finite and >= 0")
    if total_counts is not None and not total_counts > 0:
        raise SimulationParameterError(f"total_counts must be > 0 or None, got {total_counts}")
