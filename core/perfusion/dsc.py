"""DSC-MRI perfusion: low-dose simulation (seed 004 Eq. 1), signal to Delta R2*, AIF, SVD maps.

The analysis follows the classical voxel-wise pipeline that seed 004 uses as its reference (FSL
Verbena's role), built from the project's own pieces:

1. frames on a uniform time grid; a brain mask from the baseline signal (the largest bright
   component inside the dark skull);
2. bolus arrival from the strongest signal drops (the arteries fill first); the frames before it
   give the baseline signal ``S0``;
3. ``Delta R2*(t) = -ln(S(t) / S0) / TE``, proportional to the concentration of contrast agent;
4. automatic AIF and VOF as in CT perfusion (:func:`core.perfusion.ctp.arterial_and_venous_curves`),
   the AIF rescaled to the VOF's area against partial volume;
5. deconvolution of every brain voxel (oSVD by default, :mod:`core.perfusion.deconvolution`; kappa
   0.73): CBF is the maximum of the flow-scaled residue, CBV its area (the central volume theorem,
   ``CBV = CBF * MTT = integral of CBF R(t)``; ``cbv_from="area"`` takes the tissue/AIF area ratio
   instead), MTT = CBV / CBF.  Voxel by voxel, without spatial smoothing, as Verbena does; large
   vessels are not removed (they are bright on the CBV map, as on clinical DSC maps).

Deconvolution assumes the same relaxivity in tissue and in arteries (``relaxivity_ratio`` 1), the
usual assumption; on patients (and on this project's phantom) tissue relaxes more, so absolute CBV and
CBF are scaled by that ratio and DSC maps are read relative to normal tissue.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import ndimage

from core.errors import InputDataError
from core.geometry import Grid
from core.perfusion.ctp import arterial_and_venous_curves, bolus_arrival_frame, partial_volume_scale, uniform_frames
from core.perfusion.deconvolution import METHODS, Method, deconvolve
from core.perfusion.parameters import blood_volume
from core.perfusion.simulation import KAPPA

logger = logging.getLogger(__name__)

LOCAL_AVERAGE_FRAMES = 3
"""Width of the local temporal average of Eq. 1 (frames): the frame and its two neighbours."""
MIN_SIGNAL_FRACTION = 0.01
"""Signal below this fraction of its baseline is clipped before the logarithm (noise floor of saturated arteries)."""
MIN_AIF_PEAK_DR2 = 5.0
"""An artery must reach at least this Delta R2* (1/s) at its peak."""
MIN_BRAIN_ML = 20.0
BRAIN_THRESHOLD = 0.3
"""Brain voxels are brighter than this fraction of the 99th percentile of the baseline signal."""


def moving_average(signal: np.ndarray, frames: int = LOCAL_AVERAGE_FRAMES) -> np.ndarray:
    """Local temporal average of every voxel along axis 0 (edges repeat the first and last frame)."""
    return ndimage.uniform_filter1d(np.asarray(signal, dtype=np.float32), size=frames, axis=0, mode="nearest")


def baseline_frames_of(signal: np.ndarray, mask: np.ndarray | None = None) -> int:
    """Number of pre-bolus frames: those before the frame preceding a 10 % drop of the strongest voxels."""
    inside = np.ones(signal.shape[1:], dtype=bool) if mask is None else mask
    return bolus_arrival_frame(-np.asarray(signal, dtype=np.float32), inside)


def low_dose_signal(
    signal: np.ndarray, dose: float, baseline_frames: int | None = None, window_frames: int = LOCAL_AVERAGE_FRAMES
) -> np.ndarray:
    """Seed 004 Eq. 1: the signal that a dose reduced to ``dose`` would have given.

    ``S_d(t) = S(t) - (1 - d) * (mean_local(S)(t) - S(0))``: the noise-free change of the signal
    (estimated by a local temporal average) is scaled by ``d`` while the noise ``S - mean_local(S)``
    is kept.  ``S(0)`` is the mean of the baseline frames (found from the data when not given).

    Parameters
    ----------
    signal
        ``(T, ...)`` signal of every voxel, time first.
    dose
        Dose reduction factor ``d`` in [0, 1] (1 returns ``signal``).
    baseline_frames
        How many frames precede the bolus; ``None``: :func:`baseline_frames_of`.
    window_frames
        Width of the local temporal average.
    """
    if not 0.0 <= dose <= 1.0:
        raise ValueError(f"the dose reduction factor must lie in [0, 1], got {dose}")
    signal = np.asarray(signal, dtype=np.float32)
    if signal.ndim < 1 or len(signal) < 3:
        raise ValueError(f"low_dose_signal needs at least 3 frames along axis 0, got shape {signal.shape}")
    n_base = baseline_frames_of(signal) if baseline_frames is None else int(baseline_frames)
    if not 1 <= n_base < len(signal):
        raise ValueError(f"baseline_frames must be in [1, {len(signal) - 1}], got {n_base}")
    s0 = signal[:n_base].mean(axis=0)
    return (signal - (1.0 - dose) * (moving_average(signal, window_frames) - s0[None])).astype(np.float32)


def delta_r2star(signal: np.ndarray, te_s: float, baseline_frames: int) -> np.ndarray:
    """``Delta R2* = -ln(S / S0) / TE`` (1/s), ``S0`` the mean of the baseline frames; 0 where ``S0 <= 0``."""
    if te_s <= 0:
        raise InputDataError(f"the echo time must be positive, got {te_s} s; check EchoTime of the DSC series")
    signal = np.asarray(signal, dtype=np.float32)
    s0 = signal[:baseline_frames].mean(axis=0)
    valid = s0 > 0
    ratio = np.where(valid[None], signal / np.where(valid, s0, 1.0)[None], 1.0)
    return (-np.log(np.clip(ratio, MIN_SIGNAL_FRACTION, None)) / te_s).astype(np.float32)


def dsc_brain_mask(baseline: np.ndarray, grid: Grid) -> np.ndarray:
    """Largest bright region of the baseline image after cutting it from the scalp, holes filled."""
    bright = baseline > BRAIN_THRESHOLD * float(np.percentile(baseline, 99.0))
    core = ndimage.binary_erosion(bright, structure=np.ones((1, 3, 3), dtype=bool), iterations=2)
    labels, n = ndimage.label(core)
    if n == 0:
        raise InputDataError("no brain found in the DSC baseline images; is this a brain DSC perfusion series?")
    sizes = ndimage.sum_labels(core, labels, index=np.arange(1, n + 1))
    largest = labels == (int(np.argmax(sizes)) + 1)
    mask = ndimage.binary_dilation(largest, structure=np.ones((1, 3, 3), dtype=bool), iterations=2) & bright
    mask = np.stack([ndimage.binary_fill_holes(s) for s in mask])
    if mask.sum() * grid.voxel_volume_ml < MIN_BRAIN_ML:
        raise InputDataError(f"the DSC series covers less than {MIN_BRAIN_ML:.0f} ml of brain")
    return mask


@dataclass(frozen=True)
class DscSettings:
    """How a DSC series is analysed."""

    method: Method = "osvd"
    kappa: float = KAPPA
    vessel_voxels: int = 10
    partial_volume_correction: bool = True
    relaxivity_ratio: float = 1.0
    """Tissue-to-blood Delta R2* ratio assumed when computing absolute CBV and CBF (1: the usual assumption)."""
    cbv_from: Literal["residue", "area"] = "residue"
    """CBV as the area of the deconvolved residue (the SVD pipeline) or as the tissue/AIF area ratio."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"DSC method must be one of {METHODS}; got {self.method!r}")
        if self.cbv_from not in ("residue", "area"):
            raise ValueError(f"cbv_from must be 'residue' or 'area'; got {self.cbv_from!r}")
        if self.vessel_voxels < 1 or self.relaxivity_ratio <= 0 or self.kappa <= 0:
            raise ValueError("vessel_voxels must be >= 1 and relaxivity_ratio, kappa positive")


@dataclass(frozen=True)
class DscResult:
    """Maps on the DSC grid (float32, 0 outside the brain), the mask, curves and what was decided."""

    cbv_ml_100g: np.ndarray
    cbf_ml_100g_min: np.ndarray
    mtt_s: np.ndarray
    brain_mask: np.ndarray
    aif_dr2: np.ndarray
    vof_dr2: np.ndarray
    aif_scale: float
    dt_s: float
    baseline_frames: int
    method: str
    seconds: dict[str, float] = field(default_factory=dict)


def analyse_dsc(
    signal: np.ndarray,
    times_s: np.ndarray,
    grid: Grid,
    te_s: float,
    settings: DscSettings | None = None,
    brain_mask: np.ndarray | None = None,
) -> DscResult:
    """CBV, CBF and MTT of one DSC series ``signal`` (T, Z, Y, X) at ``times_s`` (T,).

    ``brain_mask`` replaces the automatic mask when given.

    Raises
    ------
    InputDataError
        If the series has no brain, no signal drop, no artery, or non-increasing times.
    """
    settings = settings or DscSettings()
    if signal.ndim != 4 or signal.shape[1:] != grid.shape or len(times_s) != len(signal):
        raise InputDataError(f"DSC frames {signal.shape} do not match the grid {grid.shape} and {len(times_s)} times")
    started = time.perf_counter()
    frames, dt = uniform_frames(np.asarray(signal, dtype=np.float32), np.asarray(times_s, dtype=np.float64))
    if brain_mask is None:
        mask = dsc_brain_mask(frames[:3].mean(axis=0), grid)
    else:
        if brain_mask.shape != grid.shape:
            raise InputDataError(f"brain mask {brain_mask.shape} does not match the DSC grid {grid.shape}")
        mask = brain_mask.astype(bool)
    arrival = baseline_frames_of(frames, mask)
    dr2 = delta_r2star(frames, te_s, arrival)
    aif, vof = arterial_and_venous_curves(dr2, mask, settings.vessel_voxels, min_peak=MIN_AIF_PEAK_DR2)
    scale = partial_volume_scale(aif, vof) if settings.partial_volume_correction else 1.0
    aif = aif * scale * settings.relaxivity_ratio
    prepared = time.perf_counter()
    curves = np.ascontiguousarray(dr2[arrival:, mask].T)
    index = np.flatnonzero(mask)
    residue = deconvolve(curves, aif[arrival:], dt, settings.method, settings.kappa).residue
    if settings.cbv_from == "residue":
        cbv = np.clip(residue, 0.0, None).sum(axis=1) * dt / 60.0
    else:
        cbv = np.clip(blood_volume(curves, aif[arrival:], settings.kappa), 0.0, None)
    cbf = np.clip(residue.max(axis=1), 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        mtt = np.where(cbf > 0, 60.0 * cbv / cbf, 0.0)
    out = {}
    for name, values in (("cbv_ml_100g", cbv), ("cbf_ml_100g_min", cbf), ("mtt_s", mtt)):
        volume = np.zeros(grid.shape, dtype=np.float32)
        volume.reshape(-1)[index] = values
        out[name] = volume
    seconds = {"prepare_s": prepared - started, "total_s": time.perf_counter() - started}
    logger.info("DSC %s: %d brain voxels, AIF x%.2f, %.1f s", settings.method, mask.sum(), scale, seconds["total_s"])
    return DscResult(
        **out,
        brain_mask=mask,
        aif_dr2=aif,
        vof_dr2=vof,
        aif_scale=scale,
        dt_s=dt,
        baseline_frames=arrival,
        method=settings.method,
        seconds=seconds,
    )


def reference_cbv(
    signal: np.ndarray,
    times_s: np.ndarray,
    grid: Grid,
    te_s: float,
    brain_mask: np.ndarray | None = None,
    settings: DscSettings | None = None,
) -> np.ndarray:
    """``(Z, Y, X)`` CBV (ml/100 g; 0 outside the brain) by the SVD pipeline: the reference maps of seed 004."""
    return analyse_dsc(signal, times_s, grid, te_s, settings, brain_mask).cbv_ml_100g
