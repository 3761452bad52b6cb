"""Parameters of the brain-tumour DSC-MRI phantom: acquisition, physiology and MR signal.

Acquisition (:class:`DscSpec`): a 2D multi-slice gradient-echo EPI dynamic susceptibility contrast
series at 3 T, one volume per second (TR 1 s) for about a minute, TE 30 ms, the bolus arriving after
about ten baseline frames (seed 004: "typically every second"; its preprocessing normalises by the
first five frames, so at least five pre-bolus frames are needed).

Signal model (issue 8): ``S(t) = S0 exp(-TE * k * C(t)) + noise`` with ``k * C`` the change of
transverse relaxation rate ``Delta R2*`` (1/s), linear in the contrast agent concentration, the same
``k`` within a compartment, and zero-mean Gaussian noise of one standard deviation per voxel and
frame.  ``k`` is set so that arterial blood reaches ``arterial_peak_dr2_per_s`` at full dose; in tissue
it is ``tissue_relaxivity_ratio`` times larger, as in patients, where the susceptibility effect of
intravascular agent reaches the extravascular water around capillaries (so that grey matter loses
about a quarter of its signal at the peak while arterial blood does not saturate completely).  Deconvolution
that assumes one ``k`` for both (the usual assumption of DSC software) gives CBV and CBF scaled by
this ratio, which is why DSC maps are read relative to normal tissue.  No
contrast leakage (T1 or T2* effects of extravasated agent) is simulated: the enhancing tumour has a
high blood volume but an intact barrier, which real high-grade gliomas do not always have.

Physiology (:class:`DscPhysiology`), adult values (ml/100 g/min, ml/100 g, s): normal grey and white
matter as in the CTP phantom; an enhancing tumour rim with a high blood volume (CBV 7-11, about twice
grey matter and four times white matter, the rCBV of a high-grade glioma), a necrotic centre with
little blood, and peritumoural oedema with a slightly reduced blood volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import SimulationParameterError
from core.perfusion.aif import AifKind


@dataclass(frozen=True)
class DscSpec:
    """Grid, timing and MR acquisition of one DSC series.

    Parameters
    ----------
    shape, spacing_mm
        ``(nz, ny, nx)`` voxels and ``(dz, dy, dx)`` mm of every time point.
    dt_s, n_frames
        Time between volumes (the repetition time, s) and their number.
    injection_delay_s
        Time from the first frame to time zero of the AIF model (s): the baseline before the bolus.
    te_ms
        Echo time (ms).
    s0_reference
        Baseline signal of grey matter (arbitrary scanner units; other tissues scale from it).
    noise_sd
        Standard deviation of the Gaussian noise per voxel and frame (signal units).
    blur_sigma_mm
        In-plane Gaussian point-spread function of the EPI readout (mm, standard deviation).
    arterial_peak_dr2_per_s
        ``Delta R2*`` of undiluted arterial blood at the AIF's peak at full dose (1/s).
    tissue_relaxivity_ratio
        ``Delta R2*`` per unit concentration in tissue relative to that in large vessels.
    aif_kind
        Family of the patient's AIF (``"gamma"`` or ``"parker"``); ``None`` draws it from the seed.
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    dt_s: float = 1.0
    n_frames: int = 64
    injection_delay_s: float = 10.0
    te_ms: float = 30.0
    s0_reference: float = 600.0
    noise_sd: float = 15.0
    blur_sigma_mm: float = 1.0
    arterial_peak_dr2_per_s: float = 50.0
    tissue_relaxivity_ratio: float = 8.0
    aif_kind: AifKind | None = None

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 1 or len(self.spacing_mm) != 3 or min(self.spacing_mm) <= 0:
            raise SimulationParameterError(f"DscSpec needs 3-D shape and positive spacing; got {self}")
        checks = {
            "dt_s": 0.2 <= self.dt_s <= 5.0,
            "n_frames": self.n_frames >= 10,
            "injection_delay_s": self.injection_delay_s >= 5.0 * self.dt_s,
            "te_ms": 5.0 <= self.te_ms <= 100.0,
            "s0_reference": 10.0 <= self.s0_reference <= 20000.0,
            "noise_sd": self.noise_sd >= 0.0,
            "blur_sigma_mm": self.blur_sigma_mm >= 0.0,
            "arterial_peak_dr2_per_s": 1.0 <= self.arterial_peak_dr2_per_s <= 500.0,
            "tissue_relaxivity_ratio": 0.1 <= self.tissue_relaxivity_ratio <= 50.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise SimulationParameterError(f"DscSpec.{name}={getattr(self, name)} is out of its range")

    @property
    def times_s(self) -> np.ndarray:
        """``(n_frames,)`` frame times relative to the first frame (s)."""
        return np.arange(self.n_frames) * self.dt_s

    @property
    def te_s(self) -> float:
        """Echo time (s)."""
        return self.te_ms / 1000.0


@dataclass(frozen=True)
class DscPhysiology:
    """Normal and tumour perfusion of the DSC phantom and the baseline signal of every tissue."""

    gm_cbf_ml_100g_min: float = 60.0
    gm_cbv_ml_100g: float = 4.0
    wm_cbf_ml_100g_min: float = 22.0
    wm_cbv_ml_100g: float = 2.0
    alpha: float = 1.0
    """Shape of the gamma transit-time distribution (seed 002 Eq. 5)."""
    cbf_variation: float = 0.07
    """Relative standard deviation of the smooth spatial variation of CBF (and, half of it, of MTT)."""
    normal_delay_s: tuple[float, float] = (0.0, 1.5)
    normal_ta_s: tuple[float, float] = (0.5, 1.0)
    tumour_cbv_ml_100g: tuple[float, float] = (7.0, 11.0)
    tumour_mtt_s: tuple[float, float] = (5.0, 7.0)
    necrosis_cbv_ml_100g: float = 0.6
    necrosis_mtt_s: float = 8.0
    oedema_cbv_ml_100g: float = 1.5
    oedema_mtt_s: float = 6.0
    tumour_delay_s: tuple[float, float] = (0.5, 2.0)
    tumour_ta_s: tuple[float, float] = (1.0, 2.0)
    vein_delay_s: float = 5.0
    vein_ta_s: float = 2.0
    relative_s0: tuple[tuple[str, float], ...] = (
        ("scalp", 0.55),
        ("skull", 0.04),
        ("csf", 1.6),
        ("grey_matter", 1.0),
        ("white_matter", 0.85),
        ("artery", 0.8),
        ("venous_sinus", 0.6),
        ("tumour", 1.1),
        ("necrosis", 1.4),
        ("oedema", 1.25),
    )
    """Baseline T2*-weighted signal relative to grey matter."""


@dataclass(frozen=True)
class TumourParams:
    """Placement of one tumour: centre ``(z, y, x)`` mm from the grid centre and semi-axes (mm)."""

    centre_mm: tuple[float, float, float] = (0.0, 10.0, 30.0)
    semi_axes_mm: tuple[float, float, float] = (14.0, 14.0, 12.0)
    necrotic_fraction: float = 0.45
    """Radius of the necrotic centre relative to the tumour's."""
    oedema_reach: float = 1.5
    """Outer edge of the oedema, in tumour radii."""

    def __post_init__(self) -> None:
        if min(self.semi_axes_mm) <= 0 or not 0.0 <= self.necrotic_fraction < 0.9 or self.oedema_reach < 1.0:
            raise SimulationParameterError(f"TumourParams out of range: {self}")


def sample_tumour_params(rng: np.random.Generator) -> TumourParams:
    """Draw a tumour in one hemisphere's white matter, near the middle of the slab."""
    side = float(rng.choice((-1.0, 1.0)))
    return TumourParams(
        centre_mm=(
            float(rng.uniform(-5.0, 5.0)),
            float(rng.uniform(-30.0, 30.0)),
            side * float(rng.uniform(22.0, 36.0)),
        ),
        semi_axes_mm=(float(rng.uniform(10.0, 18.0)), float(rng.uniform(10.0, 18.0)), float(rng.uniform(9.0, 15.0))),
        necrotic_fraction=float(rng.uniform(0.0, 0.6)),
        oedema_reach=float(rng.uniform(1.3, 1.8)),
    )


DSC_PRESETS = {
    # the bundled sample: 6 slices x 64 time points of 128 x 128 (about 12.6 MB of DICOM)
    "sample": DscSpec((6, 128, 128), (5.0, 1.8, 1.8), aif_kind="gamma"),
    # the trainer's cases: 8 slices of 128 x 128, 64 time points
    "training": DscSpec((8, 128, 128), (5.0, 1.8, 1.8)),
    # benchmark size: a clinical 20-slice 128 x 128 DSC acquisition, 80 time points
    "bench": DscSpec((20, 128, 128), (5.0, 1.8, 1.8), n_frames=80),
}
