"""Voxel-wise and function-wise agreement of a synthetic perfusion/ventilation map with SPECT.

The evaluation of seed 000 (Eqs. 4-6) and seed 001 (Rs, SSIM, DSC of low- and high-function
regions), framework-free so that the application and the trainer report the same numbers.

Conventions
-----------
* ``prediction`` is the synthetic map, ``truth`` the SPECT normalised by
  :func:`core.nm.standardisation.normalise_spect` (``SPECT / P75`` in the lung, 0 outside);
  both ``(z, y, x)`` on one grid.  Seed 000 evaluates on the SPECT grid: "the generated
  DL-CTPM images were up-sampled to the original SPECT resolution" (:func:`to_spect_resolution`).
* Correlations (Eq. 4) use the voxels where ``truth`` is non-zero ("N denotes the total number
  of non-zero voxels"), further restricted to ``mask`` when one is given.  Seed 000 names the
  coefficient "Spearman's correlation coefficient" but writes Pearson's formula on the values;
  seed 001 reports Spearman's rank correlation ``Rs``.  :func:`spearman_nonzero` is Pearson's
  formula on the ranks (ties get their average rank), :func:`pearson_nonzero` is Eq. 4 as written
  on the values.  They agree for a linear relation; Spearman is 1 for any increasing relation.
* SSIM (Eq. 5) uses a 3-D Gaussian window, sigma 1.5 voxels truncated at 3.5 sigma (11 voxels
  across), and population (not sample) covariances: the convention of Wang et al. 2004.
  :func:`evaluate_function_map` compares in the range of Eq. 2 (``[0, 1]``, the network's
  output range: truth above its P75 is clipped to 1, ``L = 1``) and reports two averages of the
  SSIM map: ``ssim`` over the whole lung crop, lung and zeroed surroundings, as the papers
  evaluate images "cropped to include only the lung parenchyma" (seed 001), and the stricter
  ``ssim_lung`` over the lung voxels only.
* Degenerate content (empty selection, constant image, non-positive P75) gives ``nan`` and a
  warning naming it, never an exception; wrong shapes or arguments raise :class:`ValueError`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats
from skimage.metrics import structural_similarity

from core.errors import InputDataError
from core.geometry import Grid
from core.nm.standardisation import HIR_PERCENTILE, normalise_spect
from core.resample import resample_to_grid

logger = logging.getLogger(__name__)

SSIM_K1 = 0.01
"""Luminance stabiliser ``k1`` of Eq. 5 (seed 000): ``C1 = (k1 L)^2``."""
SSIM_K2 = 0.03
"""Contrast/structure stabiliser ``k2`` of Eq. 5 (seed 000): ``C2 = (k2 L)^2``."""
SSIM_SIGMA_VOXELS = 1.5
"""Standard deviation of the Gaussian SSIM window, in voxels (Wang et al. 2004)."""
SSIM_TRUNCATE = 3.5
"""The Gaussian window is cut at this many sigma: 11 voxels across for sigma 1.5."""
SSIM_WINDOW_VOXELS = 2 * int(SSIM_TRUNCATE * SSIM_SIGMA_VOXELS + 0.5) + 1
"""Window width; every axis of an SSIM input must be at least this long."""
FUNCTION_THRESHOLD = 0.66
"""``SPECT / P75`` at or above which lung is high-functional (seed 000, Eq. 6)."""
METRIC_KEYS = ("spearman", "pearson", "ssim", "ssim_lung", "dice_high", "dice_low")
"""Keys of :func:`evaluate_function_map`, in this order."""
SSIM_RANGE = 1.0
"""Value range the SSIM compares in: the network's output range, that of Eq. 2 (``[0, 1]``)."""


def _check_pair(prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray | None) -> np.ndarray | None:
    """Validate the shapes; return the mask as bool (or None)."""
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction shape {prediction.shape} differs from truth shape {truth.shape}")
    if mask is None:
        return None
    if mask.shape != truth.shape:
        raise ValueError(f"mask shape {mask.shape} differs from truth shape {truth.shape}")
    return mask.astype(bool)


def _nonzero_pairs(
    prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray | None, metric: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """float64 values of both images where truth != 0 (and mask); None (with a warning) if degenerate."""
    inside = _check_pair(prediction, truth, mask)
    selected = truth != 0 if inside is None else (truth != 0) & inside
    p = prediction[selected].astype(np.float64)
    y = truth[selected].astype(np.float64)
    if y.size < 2:
        logger.warning("%s: %d voxel(s) with non-zero truth in the mask; returning nan", metric, y.size)
        return None
    for name, values in (("prediction", p), ("truth", y)):
        if np.ptp(values) == 0:
            logger.warning("%s: the %s is constant over the %d selected voxels; returning nan", metric, name, y.size)
            return None
    return p, y


def pearson_nonzero(prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Eq. 4 of seed 000 as written: Pearson's correlation of the values over non-zero truth voxels.

    ``R = sum((y - y_mean)(p - p_mean)) / sqrt(sum((y - y_mean)^2) sum((p - p_mean)^2))`` over the ``N`` voxels
    where ``truth != 0`` (and ``mask``, if given).

    Parameters
    ----------
    prediction, truth
        Same shape, any dimensionality (``(z, y, x)`` volumes here); any unit.
    mask
        Optional, same shape; nonzero where voxels count (the lung).

    Returns
    -------
    float
        In ``[-1, 1]``; ``nan`` (with a warning) for fewer than 2 voxels or a constant image.
    """
    pairs = _nonzero_pairs(prediction, truth, mask, "pearson_nonzero")
    if pairs is None:
        return math.nan
    dp, dy = pairs[0] - pairs[0].mean(), pairs[1] - pairs[1].mean()
    return float(np.sum(dy * dp) / math.sqrt(float(np.sum(dy * dy)) * float(np.sum(dp * dp))))


def spearman_nonzero(prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Spearman's rank correlation ``Rs`` over the voxels where ``truth`` is non-zero (seeds 000, 001).

    Eq. 4 applied to the ranks of the values (:func:`scipy.stats.spearmanr`; ties get the
    average of their ranks).  Zero-valued truth voxels (outside the lung, or rounded to 0 by the
    discretisation) are left out, as the paper's ``N`` counts "non-zero voxels".

    Parameters
    ----------
    prediction, truth
        Same shape, any dimensionality; any unit (ranks are scale-free).
    mask
        Optional, same shape; nonzero where voxels count (the lung).

    Returns
    -------
    float
        In ``[-1, 1]``; ``nan`` (with a warning) for fewer than 2 voxels or a constant image.
    """
    pairs = _nonzero_pairs(prediction, truth, mask, "spearman_nonzero")
    if pairs is None:
        return math.nan
    return float(stats.spearmanr(pairs[0], pairs[1]).statistic)


def ssim(
    prediction: np.ndarray,
    truth: np.ndarray,
    *,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
    data_range: float | None = None,
    mask: np.ndarray | None = None,
) -> float:
    """Structural similarity, Eq. 5 of seed 000, with a 3-D Gaussian window.

    ``SSIM = (2 mu_y mu_p + C1)(2 s_yp + C2) / ((mu_y^2 + mu_p^2 + C1)(s_y^2 + s_p^2 + C2))``, the
    product of the luminance, contrast and structure terms of Eq. 5, with ``C1 = (k1 L)^2``,
    ``C2 = (k2 L)^2`` and local statistics weighted by a Gaussian of sigma
    :data:`SSIM_SIGMA_VOXELS` voxels (population covariances; Wang et al. 2004), computed by
    :func:`skimage.metrics.structural_similarity`.

    Parameters
    ----------
    prediction, truth
        ``(z, y, x)``, same shape, every axis at least :data:`SSIM_WINDOW_VOXELS` long.
    k1, k2
        Stabilisers of Eq. 5 (0.01 and 0.03 in the paper).
    data_range
        ``L``, the dynamic range of the voxel values.  ``None``: ``max - min`` of ``truth`` over
        the whole array (for ``SPECT / P75`` with 0 outside the lung, its maximum).  Pass 1.0 to
        compare images normalised to ``[0, 1]`` (the discretised target, a sigmoid output).
    mask
        Optional, same shape.  ``None``: skimage's mean SSIM, over the map cropped by half a
        window at every face.  Given: the mean of the uncropped SSIM map (faces padded by
        reflection) over the mask voxels, so that a lung touching the crop border still counts.

    Returns
    -------
    float
        At most 1 (identical images); ``nan`` (with a warning) if the mask is empty or the
        default ``L`` is 0 (constant truth).

    Raises
    ------
    ValueError
        If shapes differ, an axis is shorter than the window, or ``data_range`` is not positive.
    """
    inside = _check_pair(prediction, truth, mask)
    if min(truth.shape) < SSIM_WINDOW_VOXELS:
        raise ValueError(f"ssim needs every axis at least {SSIM_WINDOW_VOXELS} voxels long, got shape {truth.shape}")
    if data_range is not None and not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    if inside is not None and not inside.any():
        logger.warning("ssim: the mask is empty; returning nan")
        return math.nan
    L = float(np.ptp(truth)) if data_range is None else float(data_range)
    if L == 0:
        logger.warning("ssim: the truth is constant, so its dynamic range L is 0; pass data_range. Returning nan")
        return math.nan
    mean_ssim, ssim_map = structural_similarity(
        truth.astype(np.float64),
        prediction.astype(np.float64),
        data_range=L,
        gaussian_weights=True,
        sigma=SSIM_SIGMA_VOXELS,
        use_sample_covariance=False,
        K1=k1,
        K2=k2,
        full=True,
    )
    if inside is None:
        return float(mean_ssim)
    return float(ssim_map[inside].mean())


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Eq. 6, ``2 |a & b| / (|a| + |b|)``; 1.0 when both are empty (they agree)."""
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int((a & b).sum()) / total


def functional_dice(
    prediction: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray,
    *,
    threshold: float = FUNCTION_THRESHOLD,
    percentile: float = HIR_PERCENTILE,
) -> tuple[float, float]:
    """Dice of the high- and low-functional lung volumes (seed 000, Eq. 6; seed 001 DSC).

    Each image is divided by its own ``percentile``-th percentile inside ``mask``
    (:func:`core.nm.standardisation.normalise_spect`; a no-op up to rounding for an image that
    already is ``SPECT / P75``).  Inside the mask, high function is ``normalised >= threshold``
    and low function ``normalised < threshold``; voxels outside the mask belong to neither.

    Empty rule: when a region is empty in both images, its Dice is 1.0 (the images agree that
    there is no such region); when it is empty in only one image, its Dice is 0.0.

    Parameters
    ----------
    prediction, truth
        ``(z, y, x)``, same shape; any non-negative unit.
    mask
        Same shape; nonzero inside the lung.
    threshold
        Normalised value separating high from low function (0.66 in the paper).
    percentile
        Percentile used for the normalisation (75 in the paper).

    Returns
    -------
    tuple of float
        ``(dice_high, dice_low)``, each in ``[0, 1]``; ``(nan, nan)`` with a warning if the mask
        is empty or the percentile of an image inside it is not positive.
    """
    _check_pair(prediction, truth, mask)
    inside = mask.astype(bool)
    normalised = []
    for name, image in (("prediction", prediction), ("truth", truth)):
        try:
            normalised.append(normalise_spect(image, inside, percentile=percentile))
        except InputDataError as err:
            logger.warning("functional_dice: cannot normalise the %s (%s); returning nan", name, err)
            return math.nan, math.nan
    high_p, high_y = (n >= threshold for n in normalised)
    return dice(high_p & inside, high_y & inside), dice(~high_p & inside, ~high_y & inside)


def evaluate_function_map(
    prediction: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray,
    *,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
    data_range: float | None = None,
    threshold: float = FUNCTION_THRESHOLD,
    percentile: float = HIR_PERCENTILE,
) -> dict[str, float]:
    """All metrics of seeds 000 and 001 inside ``mask``, keyed by :data:`METRIC_KEYS`.

    Parameters
    ----------
    prediction
        ``(z, y, x)`` synthetic map, on the grid of ``truth`` (see :func:`to_spect_resolution`).
    truth
        Same shape; the SPECT normalised by :func:`core.nm.standardisation.normalise_spect`.
    mask
        Same shape; nonzero inside the lung.
    k1, k2
        See :func:`ssim`.
    data_range
        ``None`` (default): SSIM in the range of Eq. 2, truth clipped to ``[0, 1]`` and ``L = 1``.
        A number: SSIM of the unclipped images with this ``L``.
    threshold, percentile
        See :func:`functional_dice`.

    Returns
    -------
    dict of str to float
        ``spearman`` and ``pearson`` (non-zero truth inside the mask), ``ssim`` (mean over the
        whole array, prediction set to 0 outside the mask) and ``ssim_lung`` (mean inside the
        mask), ``dice_high`` and ``dice_low``; ``nan`` where degenerate (see the functions).
    """
    inside = _check_pair(prediction, truth, mask)
    assert inside is not None
    prediction = np.where(inside, prediction, 0.0)
    dice_high, dice_low = functional_dice(prediction, truth, mask, threshold=threshold, percentile=percentile)
    clipped = np.clip(truth, 0.0, SSIM_RANGE) if data_range is None else truth
    L = SSIM_RANGE if data_range is None else data_range
    values = (
        spearman_nonzero(prediction, truth, mask),
        pearson_nonzero(prediction, truth, mask),
        ssim(prediction, clipped, k1=k1, k2=k2, data_range=L, mask=np.ones_like(inside)),
        ssim(prediction, clipped, k1=k1, k2=k2, data_range=L, mask=mask),
        dice_high,
        dice_low,
    )
    return dict(zip(METRIC_KEYS, values))


def to_spect_resolution(
    volume: np.ndarray,
    source: Grid,
    spect_grid: Grid,
    *,
    interpolation: Literal["linear", "nearest"] = "linear",
) -> np.ndarray:
    """Put a prediction (CT or CT-crop grid) onto the SPECT grid, as seed 000 evaluates.

    Thin wrapper of :func:`core.resample.resample_to_grid`: SPECT voxels outside ``source``
    get 0.  Use ``'linear'`` for the prediction and ``'nearest'`` for the lung mask.

    Parameters
    ----------
    volume
        ``source.shape`` array ``(z, y, x)``.
    source
        Grid of ``volume`` (same Frame of Reference as the SPECT).
    spect_grid
        Grid of the SPECT.
    interpolation
        ``'linear'`` (intensities) or ``'nearest'`` (masks).

    Returns
    -------
    numpy.ndarray
        ``spect_grid.shape``; float32 for ``'linear'``, the dtype of ``volume`` for ``'nearest'``.
    """
    return resample_to_grid(volume, source, spect_grid, interpolation=interpolation)


def spect_voxels_covering(spect_grid: Grid, region: Grid) -> tuple[tuple[slice, slice, slice], Grid]:
    """The SPECT voxels whose centres lie inside ``region`` (a lung crop), as slices and a grid.

    Seed 000 evaluates at the SPECT's own resolution; cutting the native SPECT voxels that cover a
    crop keeps the truth free of any interpolation, and the prediction is resampled onto them
    (:func:`to_spect_resolution`).

    Parameters
    ----------
    spect_grid
        Grid of the SPECT volume.
    region
        Grid whose physical extent (voxel edges) bounds the wanted voxels.

    Returns
    -------
    tuple
        ``(z, y, x)`` slices into the SPECT array and the grid of that sub-volume.

    Raises
    ------
    ValueError
        If no SPECT voxel centre lies inside the region.
    """
    slices = []
    start_lps = [0.0, 0.0, 0.0]
    for axis, lps in ((0, 2), (1, 1), (2, 0)):
        spacing = spect_grid.spacing_mm[axis]
        lower = region.origin_lps_mm[lps] - 0.5 * region.spacing_mm[axis]
        upper = lower + region.shape[axis] * region.spacing_mm[axis]
        first = max(0, math.ceil((lower - spect_grid.origin_lps_mm[lps]) / spacing - 1e-6))
        stop = min(spect_grid.shape[axis], math.floor((upper - spect_grid.origin_lps_mm[lps]) / spacing + 1e-6) + 1)
        if stop <= first:
            raise ValueError(f"no SPECT voxel centre lies inside the region along axis {axis}")
        slices.append(slice(first, stop))
        start_lps[lps] = spect_grid.origin_lps_mm[lps] + first * spacing
    shape = tuple(s.stop - s.start for s in slices)
    return tuple(slices), Grid(shape, spect_grid.spacing_mm, tuple(start_lps))  # type: ignore[return-value,arg-type]


@dataclass
class NativeSpect:
    """The SPECT voxels covering a lung crop, for evaluation at SPECT resolution (seed 000)."""

    values: np.ndarray
    """SPECT / P75 in the lung, 0 outside."""
    mask: np.ndarray
    grid: Grid


def native_spect(volume: np.ndarray, spect_grid: Grid, mask: np.ndarray, crop_grid: Grid) -> NativeSpect:
    """The SPECT's own voxels covering a crop, normalised by their P75 in the lung.

    The crop's lung mask is resampled onto those voxels (linear interpolation of the 0/1 mask,
    a voxel is lung if at least half of it is).
    """
    slices, grid = spect_voxels_covering(spect_grid, crop_grid)
    on_native = resample_to_grid(mask.astype(np.float32), crop_grid, grid) >= 0.5
    return NativeSpect(normalise_spect(volume[slices].astype(np.float32), on_native), on_native, grid)


def evaluate_on_spect(
    prediction: np.ndarray, mask: np.ndarray, crop_grid: Grid, native: NativeSpect
) -> dict[str, float]:
    """:func:`evaluate_function_map` of a crop prediction against the SPECT at SPECT resolution (seed 000).

    Parameters
    ----------
    prediction
        ``crop_grid.shape`` synthetic map of one lung.
    mask
        ``crop_grid.shape`` bool, that lung in the crop (the prediction is set to 0 outside it).
    crop_grid
        Grid of the crop.
    native
        The SPECT voxels covering the crop (:func:`native_spect`).
    """
    inside = np.where(mask, prediction, 0.0).astype(np.float32)
    return evaluate_function_map(to_spect_resolution(inside, crop_grid, native.grid), native.values, native.mask)
