"""Parallel-hole collimator: depth-dependent resolution and geometric efficiency.

Physics (Cherry, Sorenson & Phelps, *Physics in Nuclear Medicine*, 4th ed., ch. 14):

* effective hole length ``L_eff = L - 2 / mu_septa`` (penetration at the hole ends);
* geometric resolution ``R_g(d) = D (L_eff + d + c) / L_eff`` (FWHM, mm) for a source at
  distance ``d`` from the collimator face, ``c`` the distance from the collimator back face
  to the mean interaction depth in the crystal;
* system resolution ``FWHM(d) = sqrt(R_i^2 + R_g(d)^2)`` with ``R_i`` the intrinsic resolution;
* geometric efficiency ``g = K^2 (D / L_eff)^2 D^2 / (D + t)^2`` with ``K`` the hole-shape
  factor (0.26 for hexagonal holes in a hexagonal array) and ``t`` the septal thickness.

Parameter sources for :data:`GE_DISCOVERY_670_LEHR` (the camera of seed 000):

* hole geometry (hexagonal holes, 1.5 mm across flats, 35 mm long, 0.2 mm septa): the GE
  Discovery NM670 LEHR model of the OpenGATE toolkit (``opengate.contrib.spect``) and the
  SIMIND collimator data base entry ``GV-LEHR`` (same numbers);
* lead attenuation at 140.5 keV, ``mu = 2.69 /mm``: NIST XCOM mass attenuation coefficient
  (log-log interpolation between 100 and 150 keV, 2.37 cm^2/g) x 11.35 g/cm^3;
* intrinsic resolution 3.9 mm FWHM: vendor NEMA NU 1 specification of a 3/8" NaI(Tl) head
  (typical value, not a measured one);
* ``c = 8 mm``: about 3 mm cover and gap plus a mean interaction depth of about 5 mm in the
  9.5 mm crystal.  With these values ``FWHM(100 mm) = 7.35 mm``, in line with the 7.4-7.5 mm
  LEHR system resolution at 10 cm quoted for current dual-head cameras;
* photon yield of the 140.5 keV line 0.885 (ENSDF/NNDC for Tc-99m) and photopeak detection
  efficiency of 0.85 in a 20 % window for 9.5 mm NaI(Tl) (approximate).  Together with ``g``
  this gives 76 counts/s/MBq per head, within the 70-95 cps/MBq range of NEMA planar
  sensitivities of LEHR collimators.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from core.errors import SimulationParameterError

logger = logging.getLogger(__name__)

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
"""Ratio FWHM / sigma of a Gaussian (2.3548)."""

TC99M_PHOTON_YIELD = 0.885
"""Photons of 140.5 keV emitted per Tc-99m decay (ENSDF/NNDC)."""

PHOTOPEAK_EFFICIENCY_NAI_9MM5 = 0.85
"""Approximate fraction of 140.5 keV photons reaching a 9.5 mm NaI(Tl) crystal that are counted in a 20 % window."""


@dataclass(frozen=True)
class ParallelHoleCollimator:
    """Geometry of a parallel-hole collimator and its camera head.

    Parameters
    ----------
    name
        Human-readable name.
    hole_diameter_mm
        Hole size ``D`` (across flats for hexagonal holes), mm.
    hole_length_mm
        Hole length ``L``, mm.
    septal_thickness_mm
        Septal thickness ``t``, mm.
    intrinsic_fwhm_mm
        Intrinsic resolution of the detector ``R_i`` (FWHM), mm.
    image_plane_offset_mm
        Distance ``c`` from the collimator back face to the mean interaction depth, mm.
    septa_mu_per_mm
        Linear attenuation coefficient of the septal material at the photon energy, 1/mm.
    hole_shape_factor
        ``K`` of the efficiency formula (0.26 hexagonal, 0.24 round, 0.28 square holes).
    """

    name: str
    hole_diameter_mm: float
    hole_length_mm: float
    septal_thickness_mm: float
    intrinsic_fwhm_mm: float
    image_plane_offset_mm: float
    septa_mu_per_mm: float
    hole_shape_factor: float = 0.26

    def __post_init__(self) -> None:
        for field in ("hole_diameter_mm", "hole_length_mm", "intrinsic_fwhm_mm", "septa_mu_per_mm"):
            if not getattr(self, field) > 0:
                raise SimulationParameterError(f"{field} must be > 0, got {getattr(self, field)}")
        if self.septal_thickness_mm < 0 or self.image_plane_offset_mm < 0:
            raise SimulationParameterError("septal_thickness_mm and image_plane_offset_mm must be >= 0")
        if self.effective_length_mm <= 0:
            raise SimulationParameterError(
                f"hole_length_mm={self.hole_length_mm} is shorter than the penetration length 2/mu="
                f"{2.0 / self.septa_mu_per_mm:.2f} mm"
            )

    @property
    def effective_length_mm(self) -> float:
        """Effective hole length ``L - 2/mu`` in mm."""
        return self.hole_length_mm - 2.0 / self.septa_mu_per_mm

    def geometric_fwhm_mm(self, distance_mm: np.ndarray | float) -> np.ndarray:
        """Geometric (collimator) resolution FWHM in mm at ``distance_mm`` from the collimator face."""
        d = np.maximum(np.asarray(distance_mm, dtype=np.float64), 0.0)
        length = self.effective_length_mm
        return self.hole_diameter_mm * (length + d + self.image_plane_offset_mm) / length

    def fwhm_mm(self, distance_mm: np.ndarray | float) -> np.ndarray:
        """System resolution FWHM in mm: intrinsic and geometric added in quadrature."""
        return np.sqrt(self.intrinsic_fwhm_mm**2 + self.geometric_fwhm_mm(distance_mm) ** 2)

    def sigma_mm(self, distance_mm: np.ndarray | float) -> np.ndarray:
        """Gaussian sigma (mm) of the system point-spread function at ``distance_mm``."""
        return self.fwhm_mm(distance_mm) / FWHM_PER_SIGMA

    def geometric_efficiency(self) -> float:
        """Fraction of isotropically emitted photons passing the collimator (dimensionless)."""
        d, t = self.hole_diameter_mm, self.septal_thickness_mm
        return self.hole_shape_factor**2 * (d / self.effective_length_mm) ** 2 * d**2 / (d + t) ** 2

    def sensitivity_cps_per_mbq(
        self,
        photon_yield: float = TC99M_PHOTON_YIELD,
        photopeak_efficiency: float = PHOTOPEAK_EFFICIENCY_NAI_9MM5,
    ) -> float:
        """Planar sensitivity in air, counts per second per MBq, for one head."""
        return self.geometric_efficiency() * photon_yield * photopeak_efficiency * 1.0e6


GE_DISCOVERY_670_LEHR = ParallelHoleCollimator(
    name="GE Discovery NM/CT 670 LEHR",
    hole_diameter_mm=1.5,
    hole_length_mm=35.0,
    septal_thickness_mm=0.2,
    intrinsic_fwhm_mm=3.9,
    image_plane_offset_mm=8.0,
    septa_mu_per_mm=2.69,
    hole_shape_factor=0.26,
)
"""LEHR collimator of the camera of seed 000; sources in the module docstring."""


_NEGLIGIBLE = 1.0e-12
"""Blur-matrix entries below this fraction of a point source are set to zero."""


def gaussian_blur_matrix(sigma_px: np.ndarray, n_out: int, out_offset: int, n_in: int, in_offset: int) -> np.ndarray:
    """Pixel-integrated Gaussian blur matrices, one per sigma.

    Entry ``[b, i, j]`` is the fraction of a point source at the centre of input pixel
    ``in_offset + j`` that falls into output pixel ``out_offset + i`` (same pixel pitch):
    ``Phi((i' - j' + 1/2) / s) - Phi((i' - j' - 1/2) / s)``.  Columns sum to one unless the
    Gaussian is cut by the ends of the output range (counts leaving the detector are lost).

    Parameters
    ----------
    sigma_px
        ``(B,)`` Gaussian sigma of each matrix, in pixels (0 gives the identity).
    n_out, out_offset
        Number and index of the first output pixel.
    n_in, in_offset
        Number and index of the first input pixel.

    Returns
    -------
    numpy.ndarray
        float32 ``(B, n_out, n_in)``.
    """
    sig = np.maximum(np.asarray(sigma_px, dtype=np.float64), 1.0e-6)[:, None, None]
    diff = (np.arange(n_out)[:, None] + out_offset) - (np.arange(n_in)[None, :] + in_offset)
    scale = 1.0 / (math.sqrt(2.0) * sig)
    upper = _erf((diff + 0.5) * scale)
    lower = _erf((diff - 0.5) * scale)
    kernel = 0.5 * (upper - lower)
    kernel[kernel < _NEGLIGIBLE] = 0.0  # also keeps float32 denormals (slow arithmetic) out
    return kernel.astype(np.float32)


def _erf(x: np.ndarray) -> np.ndarray:
    """Vectorised error function (numpy has none; torch's is exact to float64 precision)."""
    return torch.erf(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))).numpy()
