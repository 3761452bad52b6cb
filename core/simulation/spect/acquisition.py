"""SPECT acquisition protocol, reconstruction parameters and the scanner grid.

Geometry conventions (LPS, see :mod:`core.geometry`): the camera rotates about the z axis
through the centre of the SPECT grid.  At view angle ``theta`` the detector face lies in the
direction ``n = (sin theta, -cos theta)`` in (x, y): ``theta = 0`` is anterior (``-y``),
``theta = 90`` the patient's left (``+x``).  Detector columns run along
``e_u = (cos theta, sin theta)`` (``+x`` at ``theta = 0``) and detector rows are the SPECT
slices (row 0 is the most inferior).  A point at ``(x, y)`` relative to the axis has depth
coordinate ``t = x sin theta - y cos theta`` (towards the detector) and lies
``R - t`` from the collimator face on a circular orbit of radius ``R``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from core.errors import SimulationParameterError
from core.geometry import Grid
from core.simulation.spect.collimator import GE_DISCOVERY_670_LEHR, ParallelHoleCollimator

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpectAcquisition:
    """A step-and-shoot SPECT acquisition; the defaults are the lung perfusion protocol of seed 000.

    Parameters
    ----------
    n_views
        Number of projections (60 in seed 000 and seed 003).
    arc_deg
        Total rotation arc in degrees (360 in seed 000).
    time_per_view_s
        Acquisition time of each projection, s (30 s/frame in seed 000; 20 s standard and
        3 s "1/7-time" in seed 003).
    radius_of_rotation_mm
        Radius of the circular orbit: distance from the axis to the collimator face, mm.
    sensitivity_cps_per_mbq
        Planar system sensitivity of one head with its collimator, counts/s/MBq, in the
        photopeak window.  76 cps/MBq is the Anger-formula value of the GE Discovery 670 LEHR
        collimator (``GE_DISCOVERY_670_LEHR.sensitivity_cps_per_mbq()``; sources in
        :mod:`core.simulation.spect.collimator`).
    energy_window_kev
        Photopeak window, keV (20 % window centred on 140.5 keV).  Documentation only: the
        window enters through the photopeak efficiency in the sensitivity; scatter is not modelled.
    start_angle_deg
        Angle of the first view, degrees.
    collimator
        Collimator and head model (depth-dependent resolution).
    """

    n_views: int = 60
    arc_deg: float = 360.0
    time_per_view_s: float = 30.0
    radius_of_rotation_mm: float = 250.0
    sensitivity_cps_per_mbq: float = 76.0  # Anger formula for GE D670 LEHR, see collimator.py
    energy_window_kev: tuple[float, float] = (126.45, 154.55)
    start_angle_deg: float = 0.0
    collimator: ParallelHoleCollimator = field(default=GE_DISCOVERY_670_LEHR)

    def __post_init__(self) -> None:
        if self.n_views < 1:
            raise SimulationParameterError(f"n_views must be >= 1, got {self.n_views}")
        if not 0.0 < self.arc_deg <= 360.0:
            raise SimulationParameterError(f"arc_deg must be in (0, 360], got {self.arc_deg}")
        for name in ("time_per_view_s", "radius_of_rotation_mm", "sensitivity_cps_per_mbq"):
            if not getattr(self, name) > 0:
                raise SimulationParameterError(f"{name} must be > 0, got {getattr(self, name)}")
        low, high = self.energy_window_kev
        if not 0 < low < high:
            raise SimulationParameterError(
                f"energy_window_kev must be (low, high) with 0 < low < high, got {low, high}"
            )

    @property
    def counts_per_mbq_per_view(self) -> float:
        """Counts recorded in one view from 1 MBq in air (sensitivity x time), counts/MBq."""
        return self.sensitivity_cps_per_mbq * self.time_per_view_s

    def view_angles_deg(self) -> np.ndarray:
        """``(n_views,)`` view angles in degrees, evenly spaced over the arc."""
        return self.start_angle_deg + self.arc_deg * np.arange(self.n_views) / self.n_views


@dataclass(frozen=True)
class ReconParams:
    """OSEM reconstruction on the scanner grid.

    The defaults (4 iterations x 10 subsets = 40 EM-equivalent updates, no post-filter,
    128^3 voxels of 4.42 mm) follow the clinical range of vendor OSEM protocols with
    attenuation and resolution modelling for Tc-99m lung and bone SPECT (2-5 iterations x
    8-10 subsets) and the matrix of seed 000; seed 003 reconstructs without post-smoothing.

    Parameters
    ----------
    iterations
        Full passes through the subsets.
    subsets
        Number of ordered subsets (views are split into interleaved subsets).
    matrix
        In-plane matrix of the reconstruction and the detector (columns).
    pixel_mm
        Isotropic voxel size of the reconstruction and detector pixel size, mm.
    n_slices
        Number of reconstructed slices (detector rows).
    """

    iterations: int = 4
    subsets: int = 10
    matrix: int = 128
    pixel_mm: float = 4.42
    n_slices: int = 128

    def __post_init__(self) -> None:
        for name in ("iterations", "subsets", "matrix", "n_slices"):
            if getattr(self, name) < 1:
                raise SimulationParameterError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.pixel_mm > 0:
            raise SimulationParameterError(f"pixel_mm must be > 0, got {self.pixel_mm}")


def spect_grid_for(ct_grid: Grid, recon: ReconParams) -> Grid:
    """Scanner grid of the reconstruction, centred on the centre of ``ct_grid``.

    Parameters
    ----------
    ct_grid
        Grid of the CT (or of any volume defining the frame of reference).
    recon
        Reconstruction parameters (matrix, slices, voxel size).

    Returns
    -------
    Grid
        ``(n_slices, matrix, matrix)`` at ``pixel_mm`` isotropic, same LPS frame, same centre.
    """
    nz, ny, nx = ct_grid.shape
    dz, dy, dx = ct_grid.spacing_mm
    x0, y0, z0 = ct_grid.origin_lps_mm
    centre = (x0 + 0.5 * (nx - 1) * dx, y0 + 0.5 * (ny - 1) * dy, z0 + 0.5 * (nz - 1) * dz)
    p = float(recon.pixel_mm)
    half_xy = 0.5 * (recon.matrix - 1) * p
    half_z = 0.5 * (recon.n_slices - 1) * p
    origin = (centre[0] - half_xy, centre[1] - half_xy, centre[2] - half_z)
    return Grid((recon.n_slices, recon.matrix, recon.matrix), (p, p, p), origin)
