"""Brain CT-perfusion phantom: a 4D CT of a stroke patient with its true perfusion maps.

Steps (deterministic for a seed; independent random streams for anatomy, physiology, AIF and noise):

1. head anatomy and the designed ischaemic territory (:mod:`core.simulation.head`);
2. per-voxel true CBF, CBV (MTT = CBV / CBF x 60 s), bolus arrival delay and dispersion T_A
   (:class:`core.simulation.ctp_params.BrainPerfusion`), with a smooth spatial variation; the
   parameters are quantised (CBF in 2 % steps, MTT, delay and T_A in 0.1 s steps) and one
   noise-free curve is simulated per unique parameter set with
   :func:`core.perfusion.simulation.simulate_curves` (seed 002 Eqs. 1, 5-7, one global AIF for the
   patient), then assigned to its voxels; the true maps are the quantised values;
3. arteries carry the global AIF itself; the venous sinuses a delayed and dispersed copy of the
   same area (the venous output function); CSF, skull and scalp do not enhance;
4. concentration to HU with one factor so that arterial blood peaks at ``CtpSpec.arterial_peak_hu``;
5. the scanner: in-plane Gaussian blur of every frame (partial volume of small vessels), correlated
   Gaussian noise of ``CtpSpec.noise_hu`` per voxel and frame, rounding to integer HU.

The true Tmax is the time of the maximum of the true impulse response of the tissue to the AIF
(the delayed VTF convolved with the flow-scaled residue function) on the 0.1 s grid; the true lesion
masks apply :func:`core.perfusion.lesions.stroke_lesions` to the true CBF and Tmax maps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.signal import fftconvolve

from core.geometry import Grid
from core.labels import BrainTissue
from core.perfusion.aif import AIF_KINDS, AifShape, scaled_aif
from core.perfusion.lesions import StrokeLesions, stroke_lesions
from core.perfusion.residue import dispersion_kernel, residue_function
from core.perfusion.simulation import FINE_DT_S, CurveParameters, simulate_curves
from core.simulation.ct import add_ct_noise, to_stored_hu
from core.simulation.ctp_params import BrainPerfusion, CtpSpec, HeadParams, sample_head_params
from core.simulation.dsc_params import DscPhysiology, DscSpec
from core.simulation.head import (
    ISCHAEMIA_CORE,
    ISCHAEMIA_PENUMBRA,
    HeadAnatomy,
    baseline_hu,
    head_anatomy,
    smooth_field,
)

logger = logging.getLogger(__name__)

CBF_STEP_REL = 0.02
"""Quantisation of CBF: relative step (logarithmic bins)."""
TIME_STEP_S = 0.1
"""Quantisation of MTT, delay and T_A (s)."""
AIF_TIME_SCALE = (1.1, 1.3)
"""Range of the AIF's time scale factor: seed 002 draws 0.7-1.3; clinical boluses are not narrower than nominal."""
IMPULSE_WINDOW_S = 60.0
"""Length of the fine grid on which the true impulse response's maximum is searched (s)."""

PARAMETER_NAMES = ("cbf_ml_100g_min", "cbv_ml_100g", "mtt_s", "delay_s", "ta_s", "tmax_s")


@dataclass(frozen=True)
class CtpPhantom:
    """One simulated CTP acquisition and its truth.

    Attributes
    ----------
    hu
        ``(T, nz, ny, nx)`` int16 CT numbers of every frame (HU).
    truth
        True maps ``(nz, ny, nx)`` float32 named by :data:`PARAMETER_NAMES` (ml/100 g/min, ml/100 g, s);
        zero outside the parenchyma. ``delay_s`` is relative to the arterial input.
    lesions
        True core and hypoperfusion masks (:func:`core.perfusion.lesions.stroke_lesions` on the true maps).
    arterial_hu, venous_hu
        ``(T,)`` noise-free, unblurred enhancement (HU) of arterial blood (the AIF) and of the venous sinus.
    hu_per_unit
        HU of enhancement per unit of the AIF model's concentration.
    n_curves
        Number of distinct tissue curves simulated.
    """

    spec: CtpSpec
    seed: int
    anatomy: HeadAnatomy
    physiology: BrainPerfusion
    aif: AifShape
    hu: np.ndarray
    truth: dict[str, np.ndarray]
    lesions: StrokeLesions
    arterial_hu: np.ndarray
    venous_hu: np.ndarray
    hu_per_unit: float
    n_curves: int

    @property
    def grid(self) -> Grid:
        """Geometry of every frame."""
        return self.anatomy.grid

    @property
    def times_s(self) -> np.ndarray:
        """``(T,)`` frame times from the first frame (s)."""
        return self.spec.times_s

    def volumes_ml(self) -> dict[str, float]:
        """True lesion volumes (core, hypoperfusion, mismatch, ratio) and designed regions and tissue (ml)."""
        voxel_ml = self.grid.voxel_volume_ml
        volumes = self.lesions.volumes_ml(voxel_ml)
        volumes["designed_core_ml"] = float((self.anatomy.ischaemia == ISCHAEMIA_CORE).sum()) * voxel_ml
        volumes["designed_penumbra_ml"] = float((self.anatomy.ischaemia == ISCHAEMIA_PENUMBRA).sum()) * voxel_ml
        volumes["tissue_ml"] = float(self.anatomy.tissue_mask.sum()) * voxel_ml
        return volumes


def _lerp(bounds: tuple[float, float], s: np.ndarray) -> np.ndarray:
    return bounds[0] + (bounds[1] - bounds[0]) * s


def _unit(field: np.ndarray) -> np.ndarray:
    """Map a unit-variance field to [0, 1] (mean 0.5, +-2 sd to the ends)."""
    return np.clip(0.5 + 0.25 * field, 0.0, 1.0)


def tissue_parameters(anatomy: HeadAnatomy, phys: BrainPerfusion, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Continuous true CBF, MTT, delay and T_A of every parenchymal voxel, ``(V,)`` in ``tissue_mask`` order."""
    grid, tissue = anatomy.grid, anatomy.tissue_mask
    fields = [smooth_field(grid, 30.0, rng)[tissue] for _ in range(4)]
    grey = anatomy.labels[tissue] == BrainTissue.GREY_MATTER
    region = anatomy.ischaemia[tissue]
    s = anatomy.severity[tissue].astype(np.float64)
    cbf = np.where(grey, phys.gm_cbf_ml_100g_min, phys.wm_cbf_ml_100g_min) * (1.0 + phys.cbf_variation * fields[0])
    mtt_normal = np.where(
        grey, phys.gm_cbv_ml_100g / phys.gm_cbf_ml_100g_min, phys.wm_cbv_ml_100g / phys.wm_cbf_ml_100g_min
    )
    mtt = 60.0 * mtt_normal * (1.0 + 0.5 * phys.cbf_variation * fields[1])
    cbv = cbf * mtt / 60.0
    delay = _lerp(phys.normal_delay_s, _unit(fields[2]))
    ta = _lerp(phys.normal_ta_s, _unit(fields[3]))

    pen = region == ISCHAEMIA_PENUMBRA
    rcbf = np.where(grey, _lerp(phys.penumbra_rcbf_gm, s), _lerp(phys.penumbra_rcbf_wm, s))
    pen_cbf, pen_cbv = cbf * rcbf, cbv * _lerp(phys.penumbra_rcbv, s)
    core = region == ISCHAEMIA_CORE
    core_cbf = np.where(grey, _lerp(phys.core_cbf_gm_ml_100g_min, s), _lerp(phys.core_cbf_wm_ml_100g_min, s))
    core_cbv = cbv * phys.core_rcbv
    new_cbf = np.select([pen, core], [pen_cbf, core_cbf], cbf)
    new_cbv = np.select([pen, core], [pen_cbv, core_cbv], cbv)
    return {
        "cbf_ml_100g_min": new_cbf,
        "mtt_s": 60.0 * new_cbv / new_cbf,
        "delay_s": np.select([pen, core], [_lerp(phys.penumbra_delay_s, s), _lerp(phys.core_delay_s, s)], delay),
        "ta_s": np.select([pen, core], [_lerp(phys.penumbra_ta_s, s), np.full_like(s, phys.core_ta_s)], ta),
    }


def quantise(params: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Unique quantised parameter sets and, for every voxel, the index of its set.

    CBF goes to logarithmic bins of :data:`CBF_STEP_REL`, the times to multiples of :data:`TIME_STEP_S`.
    """
    log_step = np.log1p(CBF_STEP_REL)
    codes = np.stack(
        [
            np.rint(np.log(params["cbf_ml_100g_min"]) / log_step),
            np.rint(params["mtt_s"] / TIME_STEP_S),
            np.rint(params["delay_s"] / TIME_STEP_S),
            np.rint(params["ta_s"] / TIME_STEP_S),
        ],
        axis=1,
    ).astype(np.int64)
    unique, inverse = np.unique(codes, axis=0, return_inverse=True)
    values = {
        "cbf_ml_100g_min": np.exp(unique[:, 0] * log_step),
        "mtt_s": unique[:, 1] * TIME_STEP_S,
        "delay_s": unique[:, 2] * TIME_STEP_S,
        "ta_s": unique[:, 3] * TIME_STEP_S,
    }
    return values, inverse.reshape(-1)


def true_tmax_s(mtt_s: np.ndarray, delay_s: np.ndarray, ta_s: np.ndarray, alpha: float) -> np.ndarray:
    """Time (s) of the maximum of the impulse response ``delta(t - delay) * VTF(T_A) * R(t)`` per row.

    CBF scales the response without moving its maximum, so only MTT, delay, T_A and alpha enter.
    """
    t_fine = np.arange(0.0, IMPULSE_WINDOW_S, FINE_DT_S)
    out = np.empty(len(mtt_s))
    for ta in np.unique(ta_s):
        rows = np.flatnonzero(ta_s == ta)
        residue = residue_function(t_fine[None, :], 1.0, mtt_s[rows, None], alpha)
        kernel = dispersion_kernel(t_fine, float(ta))
        response = fftconvolve(residue, kernel[None, :], axes=1)[:, : len(t_fine)]
        out[rows] = delay_s[rows] + np.argmax(response, axis=1) * FINE_DT_S
    return out


@dataclass(frozen=True)
class BolusTiming:
    """What places the curves of one patient in time: the acquisition and the venous outflow."""

    dt_s: float
    n_frames: int
    injection_delay_s: float
    alpha: float
    vein_delay_s: float
    vein_ta_s: float

    @classmethod
    def of(cls, spec: CtpSpec | DscSpec, phys: BrainPerfusion | DscPhysiology) -> BolusTiming:
        """The timing of a CTP or DSC acquisition ``spec`` and its physiology ``phys``."""
        return cls(spec.dt_s, spec.n_frames, spec.injection_delay_s, phys.alpha, phys.vein_delay_s, phys.vein_ta_s)


def noise_free_curves(
    values: dict[str, np.ndarray], timing: BolusTiming, aif: AifShape
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Concentration (AIF model units) of every tissue set ``(U, T)``, of arterial and of venous blood ``(T,)``.

    Also returns the AIF's peak on the fine grid, by which callers scale to HU or Delta R2*.
    ``values`` holds ``cbf_ml_100g_min``, ``mtt_s``, ``delay_s`` and ``ta_s`` of every tissue set.
    """
    n = len(values["cbf_ml_100g_min"]) + 2
    arterial, venous = n - 2, n - 1
    params = CurveParameters(
        aif_kind=np.full(n, aif.kind),
        aif_time_scale=np.full(n, aif.time_scale),
        aif_value_scale=np.full(n, aif.value_scale),
        cbf_ml_100g_min=np.concatenate([values["cbf_ml_100g_min"], [1.0, 1.0]]),
        mtt_s=np.concatenate([values["mtt_s"], [1.0, 1.0]]),
        alpha=np.full(n, timing.alpha),
        delay_s=np.concatenate([values["delay_s"], [0.0, timing.vein_delay_s]]) + timing.injection_delay_s,
        ta_s=np.concatenate([values["ta_s"], [0.0, timing.vein_ta_s]]),
        dt_s=np.full(n, timing.dt_s),
        n_frames=np.full(n, timing.n_frames),
        snr_db=np.full(n, np.inf),  # noise-free: the scanner's noise is added per voxel later
    )
    curves = simulate_curves(params, np.random.default_rng(0))
    t_fine = np.arange(0.0, timing.n_frames * timing.dt_s, FINE_DT_S)
    peak = float(scaled_aif(aif, t_fine).max())
    return curves.tissue_clean[:arterial], curves.local_aif[arterial], curves.local_aif[venous], peak


def _curve_table(
    values: dict[str, np.ndarray], spec: CtpSpec, phys: BrainPerfusion, aif: AifShape
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Noise-free enhancement (HU) of every unique tissue set ``(U, T)``, of arterial and of venous blood ``(T,)``."""
    tissue, arterial, venous, peak = noise_free_curves(values, BolusTiming.of(spec, phys), aif)
    hu_per_unit = spec.arterial_peak_hu / peak
    return hu_per_unit * tissue, hu_per_unit * arterial, hu_per_unit * venous, hu_per_unit


def _frames(
    baseline: np.ndarray,
    enhancement: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    spec: CtpSpec,
    grid: Grid,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(T, nz, ny, nx)`` int16 frames: baseline + enhancement, in-plane blur, CT noise, rounding.

    ``enhancement`` maps a name to ``(flat voxel indices (N,), curve of each voxel (N,), curves (T, R) in HU)``.
    """
    _, dy, dx = grid.spacing_mm
    sigma = (0.0, spec.blur_sigma_mm / dy, spec.blur_sigma_mm / dx)
    out = np.empty((spec.n_frames, *grid.shape), dtype=np.int16)
    for k in range(spec.n_frames):
        frame = baseline.copy()
        flat = frame.reshape(-1)
        for index, rows, curves in enhancement.values():
            flat[index] += curves[k, rows]
        if spec.blur_sigma_mm > 0:
            ndimage.gaussian_filter(frame, sigma=sigma, output=frame, mode="nearest", truncate=3.0)
        add_ct_noise(frame, spec.noise_hu, rng)
        out[k] = to_stored_hu(frame)
    return out


def make_ctp_phantom(
    spec: CtpSpec,
    seed: int,
    physiology: BrainPerfusion | None = None,
    head: HeadParams | None = None,
) -> CtpPhantom:
    """Simulate one CTP case (see the module docstring); the same ``seed`` gives the same phantom.

    Parameters
    ----------
    spec
        Grid, timing and scanner.
    seed
        Seed of every random draw (anatomy, lesion, physiology fields, AIF, noise).
    physiology, head
        Overrides of the default physiology and of the drawn anatomy.
    """
    phys = physiology or BrainPerfusion()
    grid = Grid.centred(spec.shape, spec.spacing_mm)
    anatomy_rng, physiology_rng, aif_rng, noise_rng = (np.random.default_rng([seed, k]) for k in range(4))
    anatomy = head_anatomy(grid, head or sample_head_params(anatomy_rng), anatomy_rng)
    baseline = baseline_hu(anatomy, phys.core_hypodensity_hu, anatomy_rng)
    kind = spec.aif_kind or AIF_KINDS[int(aif_rng.integers(len(AIF_KINDS)))]
    aif = AifShape(kind, time_scale=float(aif_rng.uniform(*AIF_TIME_SCALE)))

    values, inverse = quantise(tissue_parameters(anatomy, phys, physiology_rng))
    values["tmax_s"] = true_tmax_s(values["mtt_s"], values["delay_s"], values["ta_s"], phys.alpha)
    values["cbv_ml_100g"] = values["cbf_ml_100g_min"] * values["mtt_s"] / 60.0
    table, arterial_hu, venous_hu, hu_per_unit = _curve_table(values, spec, phys, aif)

    tissue = anatomy.tissue_mask
    labels = anatomy.labels.reshape(-1)
    enhancement = {"tissue": (np.flatnonzero(tissue), inverse, np.ascontiguousarray(table.T, dtype=np.float32))}
    for name, label, curve in (
        ("artery", BrainTissue.ARTERY, arterial_hu),
        ("vein", BrainTissue.VENOUS_SINUS, venous_hu),
    ):
        index = np.flatnonzero(labels == label)
        enhancement[name] = (index, np.zeros(len(index), dtype=np.int64), curve[:, None].astype(np.float32))
    truth = {}
    for name in PARAMETER_NAMES:
        volume = np.zeros(grid.shape, dtype=np.float32)
        volume[tissue] = values[name][inverse]
        truth[name] = volume
    hu = _frames(baseline, enhancement, spec, grid, noise_rng)
    lesions = stroke_lesions(truth["cbf_ml_100g_min"], truth["tmax_s"], tissue)
    logger.info("CTP phantom seed %d: %d distinct tissue curves, %d frames", seed, len(table), spec.n_frames)
    return CtpPhantom(
        spec, seed, anatomy, phys, aif, hu, truth, lesions, arterial_hu, venous_hu, hu_per_unit, len(table)
    )
