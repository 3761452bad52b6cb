"""Parameters of the brain CT-perfusion phantom: acquisition, physiology, and per-case head anatomy.

Acquisition (:class:`CtpSpec`): a cine/shuttle head CTP at 80 kVp, one volume every 1-1.5 s for
about 60 s, contrast arriving a few seconds after the first frame so that baseline frames exist.

Physiology (:class:`BrainPerfusion`), adult values (ml/100 g/min, ml/100 g, s):

- normal grey matter CBF ~60, CBV ~4 (MTT 4 s); white matter CBF ~22, CBV ~2 (MTT ~5.5 s);
  bolus arrival delay 0-1.5 s and mean arterial transit time T_A 0.5-1 s relative to the AIF;
- penumbra of a middle cerebral artery (MCA) occlusion: CBF 50-65 % (grey) or 62-75 % (white) of
  normal, CBV near normal (autoregulation), delay 5-8 s, T_A 2-3 s, so Tmax is clearly above 6 s
  while relative CBF stays above 30 % of the normal mean;
- ischaemic core: CBF 3.5-7, CBV about a third of normal, delay 7-10 s, T_A 3 s.

Anatomy (:class:`HeadParams`) is drawn per case by :func:`sample_head_params`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import SimulationParameterError
from core.perfusion.aif import AifKind


@dataclass(frozen=True)
class CtpSpec:
    """Grid, timing and scanner of one CTP acquisition.

    Parameters
    ----------
    shape, spacing_mm
        ``(nz, ny, nx)`` voxels and ``(dz, dy, dx)`` mm of every frame.
    dt_s, n_frames
        Time between frames (s) and their number.
    injection_delay_s
        Time from the first frame to time zero of the AIF model (s): the baseline before the bolus.
    noise_hu
        Standard deviation of the CT noise per voxel and frame (HU).
    blur_sigma_mm
        In-plane Gaussian point-spread function of the scanner (mm, standard deviation).
    arterial_peak_hu
        Enhancement of the undiluted arterial blood at the AIF's peak (HU), which sets the
        concentration-to-HU factor.
    aif_kind
        Family of the patient's global AIF (``"gamma"`` or ``"parker"``); ``None`` draws it from the seed.
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    dt_s: float = 1.5
    n_frames: int = 40
    injection_delay_s: float = 2.0
    noise_hu: float = 7.0
    blur_sigma_mm: float = 1.0
    arterial_peak_hu: float = 440.0
    aif_kind: AifKind | None = None

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 1 or len(self.spacing_mm) != 3 or min(self.spacing_mm) <= 0:
            raise SimulationParameterError(f"CtpSpec needs 3-D shape and positive spacing; got {self}")
        checks = {
            "dt_s": 0.2 <= self.dt_s <= 5.0,
            "n_frames": self.n_frames >= 10,
            "injection_delay_s": self.injection_delay_s >= 0.0,
            "noise_hu": self.noise_hu >= 0.0,
            "blur_sigma_mm": self.blur_sigma_mm >= 0.0,
            "arterial_peak_hu": 50.0 <= self.arterial_peak_hu <= 1500.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise SimulationParameterError(f"CtpSpec.{name}={getattr(self, name)} is out of its range")

    @property
    def times_s(self) -> np.ndarray:
        """``(n_frames,)`` frame times relative to the first frame (s)."""
        return np.arange(self.n_frames) * self.dt_s


@dataclass(frozen=True)
class BrainPerfusion:
    """Normal and ischaemic perfusion of the phantom; ranges ``(lo, hi)`` are spanned by lesion severity."""

    gm_cbf_ml_100g_min: float = 60.0
    gm_cbv_ml_100g: float = 4.0
    wm_cbf_ml_100g_min: float = 22.0
    wm_cbv_ml_100g: float = 2.0
    alpha: float = 1.0
    """Shape of the gamma transit-time distribution (seed 002 Eq. 5); 1 is the exponential residue."""
    cbf_variation: float = 0.07
    """Relative standard deviation of the smooth spatial variation of CBF (and, half of it, of MTT)."""
    normal_delay_s: tuple[float, float] = (0.0, 1.5)
    normal_ta_s: tuple[float, float] = (0.5, 1.0)
    penumbra_rcbf_gm: tuple[float, float] = (0.65, 0.50)
    penumbra_rcbf_wm: tuple[float, float] = (0.75, 0.62)
    penumbra_rcbv: tuple[float, float] = (1.05, 0.90)
    penumbra_delay_s: tuple[float, float] = (5.0, 8.0)
    penumbra_ta_s: tuple[float, float] = (2.0, 3.0)
    core_cbf_gm_ml_100g_min: tuple[float, float] = (7.0, 5.0)
    core_cbf_wm_ml_100g_min: tuple[float, float] = (5.5, 3.5)
    core_rcbv: float = 0.35
    core_delay_s: tuple[float, float] = (7.0, 10.0)
    core_ta_s: float = 3.0
    vein_delay_s: float = 5.0
    """Delay of the venous output function (superior sagittal sinus) after the arterial input (s)."""
    vein_ta_s: float = 2.0
    core_hypodensity_hu: float = 3.0
    """Early ischaemic hypodensity of the core on the unenhanced baseline (HU)."""


@dataclass(frozen=True)
class HeadParams:
    """Anatomy and lesion placement of one case; lengths in mm, angles in degrees.

    Coordinates are relative to the grid centre: x to the patient's left, y posterior, z superior.
    """

    brain_half_width_mm: float = 65.0
    brain_half_length_mm: float = 84.0
    brain_half_height_mm: float = 95.0
    brain_centre_z_mm: float = -15.0
    skull_mm: float = 7.0
    scalp_mm: float = 5.0
    affected_side: int = 1
    """+1: the patient's left hemisphere (+x) is ischaemic; -1: the right."""
    territory_deg: tuple[float, float] = (-45.0, 40.0)
    """MCA territory: angles from the lateral direction, negative anterior, of the affected hemisphere."""
    core_centre_mm: tuple[float, float, float] = (-4.0, 0.0, 32.0)
    """Core centre ``(z, y, |x|)``."""
    core_semi_axes_mm: tuple[float, float, float] = (19.0, 16.5, 13.0)
    """Core ellipsoid semi-axes ``(z, y, x)``."""

    def __post_init__(self) -> None:
        if self.affected_side not in (-1, 1):
            raise SimulationParameterError(f"HeadParams.affected_side must be -1 or +1, got {self.affected_side}")
        lo, hi = self.territory_deg
        if not -90.0 < lo < hi < 90.0:
            raise SimulationParameterError(f"HeadParams.territory_deg must satisfy -90 < lo < hi < 90; got {lo}, {hi}")

    @property
    def affected_hemisphere(self) -> str:
        """``"left"`` or ``"right"`` (the patient's)."""
        return "left" if self.affected_side > 0 else "right"


def sample_head_params(rng: np.random.Generator) -> HeadParams:
    """Draw an adult head and an MCA-territory lesion (side, extent, core position and size)."""
    return HeadParams(
        brain_half_width_mm=float(rng.uniform(62.0, 68.0)),
        brain_half_length_mm=float(rng.uniform(80.0, 88.0)),
        brain_half_height_mm=float(rng.uniform(90.0, 100.0)),
        brain_centre_z_mm=float(rng.uniform(-20.0, -10.0)),
        skull_mm=float(rng.uniform(6.0, 8.0)),
        scalp_mm=float(rng.uniform(4.0, 6.0)),
        affected_side=int(rng.choice((-1, 1))),
        territory_deg=(float(rng.uniform(-50.0, -40.0)), float(rng.uniform(35.0, 45.0))),
        core_centre_mm=(float(rng.uniform(-8.0, 4.0)), float(rng.uniform(-8.0, 8.0)), float(rng.uniform(28.0, 36.0))),
        core_semi_axes_mm=(
            float(rng.uniform(16.0, 22.0)),
            float(rng.uniform(14.0, 19.0)),
            float(rng.uniform(11.0, 15.0)),
        ),
    )


CTP_PRESETS = {
    # the bundled sample: 8 x 40 files of 128 x 128 (about 11 MB of DICOM)
    "sample": CtpSpec((8, 128, 128), (5.0, 1.8, 1.8), dt_s=1.5, n_frames=40, aif_kind="gamma"),
    # benchmark size: a 256 x 256 x 16 x 5 mm (80 mm coverage) acquisition, one frame per second for 60 s
    "bench": CtpSpec((16, 256, 256), (5.0, 0.9, 0.9), dt_s=1.0, n_frames=60),
}
