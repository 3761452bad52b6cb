"""4D CT perfusion analysis: brain mask, baseline, AIF/VOF, deconvolution, maps and stroke lesions.

The steps follow what seed 002 section 2.3 describes for patient data and what clinical CTP tools do:

1. brain mask from the pre-contrast frames (soft tissue inside the skull, the largest component);
2. bolus arrival from the whole-brain mean curve; the frames before it are the baseline, and the
   concentration is the enhancement over it (HU);
3. automatic AIF: among the most enhancing brain voxels, those peaking earliest; automatic VOF:
   those peaking later, with the largest area.  The AIF is rescaled so its area equals the VOF's,
   which corrects partial volume in the small artery (the seed's Figure 3);
4. parenchyma: brain without CSF (low baseline HU) and vessels (strong enhancement);
5. in-plane edge-preserving smoothing of the tissue curves: seed 002's guided image filter (He et al.
   2013) with the time-averaged CTP image as the guidance, computed over parenchyma only so that CSF
   and vessels do not bleed in (:func:`guided_in_mask`); a mask-normalised Gaussian is the alternative;
6. deconvolution per voxel (oSVD by default; :mod:`core.perfusion.deconvolution`) or a network,
   giving CBF, CBV, MTT and Tmax maps; then core (rCBF < 30 %) and hypoperfusion (Tmax > 6 s).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from scipy import ndimage

from core.errors import InputDataError
from core.geometry import Grid, bounding_box
from core.perfusion.deconvolution import METHODS, deconvolve
from core.perfusion.lesions import StrokeLesions, measured_lesions
from core.perfusion.parameters import PerfusionParameters, blood_volume, parameters_from_residue
from core.perfusion.simulation import KAPPA

logger = logging.getLogger(__name__)

CtpMethod = Literal["ssvd", "csvd", "osvd", "network"]
CTP_METHODS: tuple[CtpMethod, ...] = (*METHODS, "network")
Smoothing = Literal["guided", "gaussian", "none"]
SMOOTHINGS: tuple[Smoothing, ...] = ("guided", "gaussian", "none")
GUIDE_PERCENTILES = (1.0, 99.0)
"""The guidance image is mapped to [0, 1] between these percentiles of its parenchyma values."""

NetworkEstimator = Callable[[np.ndarray, np.ndarray, float], PerfusionParameters]
"""``(tissue (V, N), aif (N,), dt_s) -> PerfusionParameters`` for the ``network`` method."""


class CurvePredictor(Protocol):
    """What :func:`network_estimator` needs of a model (``core.perfusion.transformer_model.CtpTransformerModel``)."""

    def predict(self, tissue: np.ndarray, global_aif: np.ndarray, dt_s: float) -> Any: ...


BRAIN_HU = (-20.0, 120.0)
"""Baseline HU of brain parenchyma, CSF and unenhanced blood (skull is far above, air far below)."""
CSF_MAX_HU = 15.0
VESSEL_MIN_ENHANCEMENT_HU = 80.0
VESSEL_MAX_CBV_ML_100G = 10.0
MIN_BRAIN_ML = 20.0
VESSEL_SEARCH_VOXELS = 3
"""The AIF and VOF are searched in the brain mask grown by this many voxels in-plane (the sinuses lie at its edge)."""


@dataclass(frozen=True)
class CtpSettings:
    """How a CTP series is analysed; the defaults are the seed's and common clinical choices."""

    method: CtpMethod = "osvd"
    smoothing: Smoothing = "guided"
    """In-plane smoothing of the tissue curves before deconvolution (see :func:`guided_in_mask`)."""
    guided_radius_mm: float = 7.0
    guided_eps: float = 3e-4
    """Guided filter window radius and regularisation (guidance in [0, 1]).  Seed 002 uses radius 2 voxels
    (about 2 mm) and 0.01 on its own intensity scale; these values were chosen on tuning phantoms
    (seeds 1300-1305, none of them the evaluation phantoms) at 7 HU noise and 1.8 mm voxels."""
    smoothing_sigma_mm: float = 4.0
    """Standard deviation of the ``gaussian`` smoothing."""
    kappa: float = KAPPA
    temporal_sigma_frames: float = 0.0
    """Gaussian smoothing along time, applied to the tissue curves and the AIF alike (so the residue is unchanged)."""
    vessel_voxels: int = 12
    """How many voxels are averaged into the AIF and into the VOF."""
    partial_volume_correction: bool = True
    min_lesion_island_ml: float = 1.0
    """Connected lesion regions smaller than this are noise and are dropped (0 keeps everything)."""

    def __post_init__(self) -> None:
        if self.method not in CTP_METHODS:
            raise ValueError(f"CTP method must be one of {CTP_METHODS}; got {self.method!r}")
        if self.smoothing not in SMOOTHINGS:
            raise ValueError(f"CTP smoothing must be one of {SMOOTHINGS}; got {self.smoothing!r}")
        if self.smoothing_sigma_mm < 0 or self.vessel_voxels < 1:
            raise ValueError("smoothing_sigma_mm must be >= 0 and vessel_voxels >= 1")
        if self.guided_radius_mm <= 0 or self.guided_eps <= 0:
            raise ValueError("guided_radius_mm and guided_eps must be > 0")


@dataclass(frozen=True)
class CtpResult:
    """Maps on the CT grid (float32, 0 outside the parenchyma), masks, curves and what was decided."""

    cbf_ml_100g_min: np.ndarray
    cbv_ml_100g: np.ndarray
    mtt_s: np.ndarray
    tmax_s: np.ndarray
    brain_mask: np.ndarray
    tissue_mask: np.ndarray
    lesions: StrokeLesions
    aif_hu: np.ndarray
    vof_hu: np.ndarray
    aif_scale: float
    dt_s: float
    baseline_frames: int
    method: str
    seconds: dict[str, float] = field(default_factory=dict)


def uniform_frames(hu: np.ndarray, times_s: np.ndarray) -> tuple[np.ndarray, float]:
    """Frames on a uniform time grid at the median interval (linear interpolation where sampling varies)."""
    intervals = np.diff(times_s)
    if np.any(intervals <= 0):
        raise InputDataError("CTP frame times are not strictly increasing; check AcquisitionTime of the series")
    dt = float(np.median(intervals))
    if np.ptp(intervals) <= 0.05 * dt:
        return hu, dt
    uniform = np.arange(0.0, times_s[-1] + 1e-9, dt)
    index = np.clip(np.searchsorted(times_s, uniform, side="right") - 1, 0, len(times_s) - 2)
    w = ((uniform - times_s[index]) / (times_s[index + 1] - times_s[index])).astype(np.float32)
    out = hu[index] * (1 - w)[:, None, None, None] + hu[index + 1] * w[:, None, None, None]
    logger.info("resampled %d irregular CTP frames to %d at %.2f s", len(times_s), len(uniform), dt)
    return out, dt


def brain_mask(baseline_hu: np.ndarray, grid: Grid) -> np.ndarray:
    """Largest connected soft-tissue region of the pre-contrast image, after cutting it from the scalp."""
    soft = (baseline_hu > BRAIN_HU[0]) & (baseline_hu < BRAIN_HU[1])
    core = ndimage.binary_erosion(soft, structure=np.ones((1, 3, 3), dtype=bool), iterations=1)
    labels, n = ndimage.label(core)
    if n == 0:
        raise InputDataError("no brain found in the CTP baseline: no soft tissue between -20 and 120 HU")
    sizes = ndimage.sum_labels(core, labels, index=np.arange(1, n + 1))
    largest = labels == (int(np.argmax(sizes)) + 1)
    mask = ndimage.binary_dilation(largest, structure=np.ones((1, 3, 3), dtype=bool)) & soft
    if mask.sum() * grid.voxel_volume_ml < MIN_BRAIN_ML:
        raise InputDataError(f"the CTP covers less than {MIN_BRAIN_ML:.0f} ml of brain; is this a head CT perfusion?")
    return mask


def bolus_arrival_frame(hu: np.ndarray, mask: np.ndarray) -> int:
    """Frames before the bolus: those before the frame preceding a 10 % rise of the most enhancing voxels.

    The most enhancing voxels (top 1 % of the brain) are the arteries, which fill before the
    parenchyma; the frame just before their 10 % rise may already hold contrast, so it is left out
    of the baseline too.  At least one frame is returned.
    """
    curves = hu[:, mask]
    strongest = curves[:, curves.max(axis=0) - curves[0] >= np.percentile(curves.max(axis=0) - curves[0], 99.0)]
    mean = strongest.mean(axis=1)
    rise = mean - mean[0]
    if rise.max() <= 0:
        raise InputDataError("the brain does not enhance in this CTP series; was contrast given?")
    return max(int(np.argmax(rise > 0.1 * rise.max())) - 1, 1)


def _vessel_curve(flat: np.ndarray, candidates: np.ndarray, n: int, by_area: bool) -> np.ndarray:
    score = flat[:, candidates].sum(axis=0) if by_area else flat[:, candidates].max(axis=0)
    order = np.argsort(score)[::-1][:n]
    return flat[:, candidates[order]].mean(axis=1)


def arterial_and_venous_curves(
    conc: np.ndarray, mask: np.ndarray, n: int, min_peak: float = VESSEL_MIN_ENHANCEMENT_HU
) -> tuple[np.ndarray, np.ndarray]:
    """AIF (earliest-peaking strongly enhancing voxels) and VOF (later-peaking, strongest); both (T,).

    ``conc`` is the enhancement (HU in CT, Delta R2* in MR); the strongest 1 % must reach ``min_peak``.
    """
    flat = conc[:, mask]
    peak = flat.max(axis=0)
    strong = np.flatnonzero(peak >= np.percentile(peak, 99.0))
    if len(strong) < 2 * n or peak[strong].min() < min_peak:
        raise InputDataError(
            f"no vessel enhances by more than {min_peak:g} (HU in CT, 1/s in MR); "
            "the series may lack contrast or the arteries"
        )
    ttp = np.argmax(flat[:, strong], axis=0)
    arterial = strong[ttp <= np.percentile(ttp, 20)]
    venous = strong[ttp >= np.min(ttp[np.isin(strong, arterial)]) + 2]
    aif = _vessel_curve(flat, arterial, n, by_area=False)
    vof = _vessel_curve(flat, venous, n, by_area=False) if len(venous) >= n else np.zeros_like(aif)
    return aif, vof


def partial_volume_scale(aif: np.ndarray, vof: np.ndarray) -> float:
    """``area(VOF) / area(AIF)`` when the VOF is larger (the AIF lost signal to partial volume), else 1."""
    area_aif, area_vof = float(np.trapezoid(aif)), float(np.trapezoid(vof))
    if area_aif <= 0:
        raise InputDataError("the automatic AIF has no positive area; check the CTP series")
    if area_vof <= area_aif:
        logger.info("VOF area %.0f <= AIF area %.0f: no partial-volume rescaling", area_vof, area_aif)
        return 1.0
    return area_vof / area_aif


def smoothed_in_mask(conc: np.ndarray, mask: np.ndarray, sigma_mm: float, grid: Grid) -> np.ndarray:
    """In-plane Gaussian smoothing of every frame, normalised by the smoothed mask (no bleeding across its edge)."""
    if sigma_mm == 0:
        return conc
    sigma = (0.0, sigma_mm / grid.spacing_mm[1], sigma_mm / grid.spacing_mm[2])
    weight = ndimage.gaussian_filter(mask.astype(np.float32), sigma)
    out = np.empty_like(conc)
    for k, frame in enumerate(conc):
        out[k] = ndimage.gaussian_filter(frame * mask, sigma) / np.maximum(weight, 1e-6)
    return out


def guided_in_mask(
    conc: np.ndarray, mask: np.ndarray, guide: np.ndarray, radius_mm: float, eps: float, grid: Grid
) -> np.ndarray:
    """Every frame of ``conc`` (T, Z, Y, X) through the guided image filter of He et al. 2013, in-plane.

    In each square window of half-width ``radius_mm`` the output is a linear function of the guidance,
    ``q = a I + b``, with ``a = cov(I, p) / (var(I) + eps)`` and ``b = mean(p) - a mean(I)`` fitted to the
    frame ``p``; every voxel then averages the ``a`` and ``b`` of the windows that hold it (He et al.'s
    Algorithm 1).  Where the guidance is flat (``var(I) << eps``) this is a box mean, which removes noise;
    across an edge of the guidance (``var(I) >> eps``) the frame follows the guidance, so a core next to
    normal tissue is not averaged with it.  Window means run over ``mask`` voxels only, and the guidance
    is mapped to [0, 1] between the :data:`GUIDE_PERCENTILES` of its ``mask`` values, so ``eps`` does not
    depend on the scanner's HU scale.  Voxels outside ``mask`` come back as 0.
    """
    radius = (max(1, round(radius_mm / grid.spacing_mm[1])), max(1, round(radius_mm / grid.spacing_mm[2])))
    out = np.zeros_like(conc)
    # every window of a mask voxel lies in the mask's box grown by the radius: filtering that box is exact
    box = bounding_box(mask, (0, radius[0] + 1, radius[1] + 1))
    if box is None:
        return out
    inside = mask[box]
    size = (1, 2 * radius[0] + 1, 2 * radius[1] + 1)
    weight = inside.astype(np.float32)
    count = np.maximum(ndimage.uniform_filter(weight, size), 1e-6)

    def mean(image: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(image * weight, size) / count

    lo, hi = np.percentile(guide[mask], GUIDE_PERCENTILES)
    # a flat guidance has no edge to keep: the filter is then a box mean
    span = float(hi - lo)
    level = ((guide[box] - lo) / span if span > 0 else np.zeros(inside.shape)).astype(np.float32)
    mean_i = mean(level)
    var_i = mean(level * level) - mean_i * mean_i
    for frame, filtered in zip(conc[(slice(None), *box)], out[(slice(None), *box)], strict=True):
        mean_p = mean(frame)
        a = (mean(level * frame) - mean_i * mean_p) / (var_i + eps)
        b = mean_p - a * mean_i
        filtered[...] = (mean(a) * level + mean(b)) * weight
    return out


def _deconvolved_parameters(
    curves: np.ndarray, aif: np.ndarray, dt_s: float, settings: CtpSettings, network: NetworkEstimator | None
) -> PerfusionParameters:
    if settings.method == "network":
        if network is None:
            raise ValueError("the network method needs a network estimator (the app loads models/ctp_transformer)")
        return network(curves, aif, dt_s)
    deconvolved = deconvolve(curves, aif, dt_s, settings.method, settings.kappa)
    return parameters_from_residue(deconvolved, curves, aif, dt_s, settings.kappa)


def analyse_ctp(
    hu: np.ndarray,
    times_s: np.ndarray,
    grid: Grid,
    settings: CtpSettings | None = None,
    network: NetworkEstimator | None = None,
) -> CtpResult:
    """Perfusion maps and stroke lesions of one 4D CTP series ``hu`` (T, Z, Y, X) at ``times_s`` (T,).

    Raises
    ------
    InputDataError
        If the series has no brain, no enhancement, no vessel, or irregular/non-increasing times.
    """
    settings = settings or CtpSettings()
    if hu.ndim != 4 or hu.shape[1:] != grid.shape or len(times_s) != len(hu):
        raise InputDataError(f"CTP frames {hu.shape} do not match the grid {grid.shape} and {len(times_s)} times")
    started = time.perf_counter()
    frames, dt = uniform_frames(np.asarray(hu, dtype=np.float32), np.asarray(times_s, dtype=np.float64))
    mask = brain_mask(frames[:2].mean(axis=0), grid)
    arrival = bolus_arrival_frame(frames, mask)
    baseline = frames[:arrival].mean(axis=0)
    conc = frames - baseline[None]
    near_brain = ndimage.binary_dilation(
        mask, structure=np.ones((1, 3, 3), dtype=bool), iterations=VESSEL_SEARCH_VOXELS
    )
    aif, vof = arterial_and_venous_curves(conc, near_brain, settings.vessel_voxels)
    scale = partial_volume_scale(aif, vof) if settings.partial_volume_correction else 1.0
    aif = aif * scale
    peak = conc.max(axis=0)
    tissue = mask & (baseline > CSF_MAX_HU) & (peak < VESSEL_MIN_ENHANCEMENT_HU)
    if settings.smoothing == "guided":
        # the guidance is the time-averaged CTP image (seed 002), baseline included
        smooth = guided_in_mask(conc, tissue, frames.mean(axis=0), settings.guided_radius_mm, settings.guided_eps, grid)
    elif settings.smoothing == "gaussian":
        smooth = smoothed_in_mask(conc, tissue, settings.smoothing_sigma_mm, grid)
    else:
        smooth = conc
    if settings.temporal_sigma_frames > 0:
        smooth = ndimage.gaussian_filter1d(smooth, settings.temporal_sigma_frames, axis=0, mode="nearest")
        aif = ndimage.gaussian_filter1d(aif, settings.temporal_sigma_frames, mode="nearest")
    prepared = time.perf_counter()
    params = _deconvolved_parameters(np.ascontiguousarray(smooth[:, tissue].T), aif, dt, settings, network)
    deconvolved = time.perf_counter()
    tissue_index = np.flatnonzero(tissue)
    vessel_like = params.cbv_ml_100g > VESSEL_MAX_CBV_ML_100G
    tissue.reshape(-1)[tissue_index[vessel_like]] = False
    maps = {}
    for name in ("cbf_ml_100g_min", "cbv_ml_100g", "mtt_s", "tmax_s"):
        volume = np.zeros(grid.shape, dtype=np.float32)
        # noise can make a low-flow voxel's area, hence CBV and MTT, negative: physically they are 0
        volume.reshape(-1)[tissue_index[~vessel_like]] = np.clip(getattr(params, name)[~vessel_like], 0.0, None)
        maps[name] = volume
    lesions = measured_lesions(
        maps["cbf_ml_100g_min"], maps["tmax_s"], tissue, grid.voxel_volume_ml, settings.min_lesion_island_ml
    )
    seconds = {
        "prepare_s": prepared - started,
        "deconvolve_s": deconvolved - prepared,
        "total_s": time.perf_counter() - started,
    }
    logger.info("CTP %s: %d tissue voxels, AIF x%.2f, %.1f s", settings.method, tissue.sum(), scale, seconds["total_s"])
    return CtpResult(
        **maps,
        brain_mask=mask,
        tissue_mask=tissue,
        lesions=lesions,
        aif_hu=aif,
        vof_hu=vof,
        aif_scale=scale,
        dt_s=dt,
        baseline_frames=arrival,
        method=settings.method,
        seconds=seconds,
    )


def network_estimator(model: CurvePredictor, kappa: float = KAPPA) -> NetworkEstimator:
    """The ``network`` method: CBF from the network's residue, CBV from areas, Tmax from its local AIF.

    The network's residue is non-increasing, so its own maximum is at 0 s; what delays the tissue is in
    the local AIF it estimates.  Tmax is therefore the time from the global AIF's peak to the local
    AIF's peak (delay plus the shift dispersion causes), the quantity the SVD residue's maximum measures.
    """

    def estimate(tissue: np.ndarray, aif: np.ndarray, dt_s: float) -> PerfusionParameters:
        prediction = model.predict(tissue, aif, dt_s)
        cbf = np.asarray(prediction.cbf_ml_100g_min, dtype=np.float64)
        cbv = blood_volume(tissue, aif, kappa)
        with np.errstate(divide="ignore", invalid="ignore"):
            mtt = np.where(cbf > 0, cbv / cbf * 60.0, 0.0)
        shift = np.argmax(prediction.local_aif, axis=1) - int(np.argmax(aif))
        return PerfusionParameters(cbf, cbv, mtt, np.clip(shift, 0, None) * dt_s)

    return estimate
