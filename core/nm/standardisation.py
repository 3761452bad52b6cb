"""SPECT standardisation (seed 000, Eq. 2).

Eq. 2 of the paper::

    SPECT'(x, y, z) = discretize(SPECT(x, y, z) / HIR),    HIR = P75(SPECT)

* ``HIR`` (the "high intensity region" value) is the 75th percentile of the SPECT values
  *inside the lung mask* (numpy's default ``'linear'`` percentile rule); counts outside the
  lung (heart, liver, background) would otherwise set the scale.
* :func:`normalise_spect` returns ``SPECT / HIR`` inside the lung (0 outside), unclipped: the
  image the paper uses as ground truth for evaluation.
* :func:`standardise_spect` discretises it into ``levels`` uniformly spaced values
  ``0, 1/(levels-1), ..., 1`` (the paper: 11 values 0, 0.1, ..., 1), the training target.

To put a SPECT (4.42 mm voxels) onto the CT grid of the same Frame of Reference, use
:func:`core.resample.resample_to_grid`.
"""

from __future__ import annotations

import logging

import numpy as np

from core.errors import InputDataError

logger = logging.getLogger(__name__)

HIR_PERCENTILE = 75.0
"""Percentile of the lung SPECT values that defines HIR (seed 000, Eq. 2)."""
DISCRETE_LEVELS = 11
"""Number of uniformly spaced values 0, 0.1, ..., 1 of the standardised SPECT (seed 000)."""


def high_intensity_value(spect: np.ndarray, lung_mask: np.ndarray, *, percentile: float = HIR_PERCENTILE) -> float:
    """HIR: the ``percentile``-th percentile of ``spect`` inside ``lung_mask`` (Eq. 2).

    Parameters
    ----------
    spect
        ``(z, y, x)`` SPECT counts or activity (any unit), on the grid of ``lung_mask``.
    lung_mask
        Same shape; nonzero inside the lung(s).
    percentile
        In ``(0, 100]``; numpy's default linear interpolation between order statistics.

    Returns
    -------
    float
        HIR in the unit of ``spect``; strictly positive.

    Raises
    ------
    ValueError
        If the shapes differ or ``percentile`` is out of range.
    InputDataError
        If the mask is empty, or HIR is not a positive finite number (an empty SPECT, or a
        SPECT not aligned with the lung mask).
    """
    if spect.shape != lung_mask.shape:
        raise ValueError(f"spect shape {spect.shape} differs from lung_mask shape {lung_mask.shape}")
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    values = spect[lung_mask.astype(bool)]
    if values.size == 0:
        raise InputDataError("the lung mask is empty: cannot compute the SPECT high intensity region (HIR)")
    hir = float(np.percentile(values, percentile))
    if not np.isfinite(hir) or hir <= 0.0:
        raise InputDataError(
            f"the {percentile:g}th percentile of the SPECT inside the lung (HIR) is {hir}; it must be positive. "
            "The SPECT is empty in the lung or not registered to the CT lung mask"
        )
    return hir


def normalise_spect(spect: np.ndarray, lung_mask: np.ndarray, *, percentile: float = HIR_PERCENTILE) -> np.ndarray:
    """``SPECT / HIR`` inside the lung, 0 outside: the paper's ground truth for evaluation.

    Parameters
    ----------
    spect
        ``(z, y, x)`` SPECT on the grid of ``lung_mask`` (any unit).
    lung_mask
        Same shape; nonzero inside the lung(s).
    percentile
        Percentile defining HIR (75 in the paper).

    Returns
    -------
    numpy.ndarray
        float32, same shape, dimensionless; not clipped (hot spots exceed 1).

    Raises
    ------
    InputDataError
        See :func:`high_intensity_value`.
    """
    hir = high_intensity_value(spect, lung_mask, percentile=percentile)
    inside = lung_mask.astype(bool)
    out = np.zeros(spect.shape, dtype=np.float32)
    out[inside] = spect[inside] / hir
    logger.debug("SPECT normalised by HIR = P%g = %.4g over %d lung voxels", percentile, hir, int(inside.sum()))
    return out


def discretise(normalised: np.ndarray, *, levels: int = DISCRETE_LEVELS) -> np.ndarray:
    """Round to the nearest of ``levels`` uniformly spaced values ``0, 1/(levels-1), ..., 1``.

    Values above 1 become 1 and values below 0 become 0.  Rounding is to the nearest level;
    an exact tie (half-way between two levels) goes to the upper one:
    ``floor(x * (levels - 1) + 0.5) / (levels - 1)``.

    Parameters
    ----------
    normalised
        Any shape, dimensionless (``SPECT / HIR``).
    levels
        Number of levels, at least 2 (11 in the paper: 0, 0.1, ..., 1).

    Returns
    -------
    numpy.ndarray
        float32, same shape, at most ``levels`` distinct values.
    """
    if levels < 2:
        raise ValueError(f"levels must be at least 2, got {levels}")
    steps = levels - 1
    index = np.floor(np.clip(normalised, 0.0, 1.0) * steps + 0.5)
    return (index / steps).astype(np.float32)


def standardise_spect(
    spect: np.ndarray,
    lung_mask: np.ndarray,
    *,
    percentile: float = HIR_PERCENTILE,
    levels: int = DISCRETE_LEVELS,
) -> np.ndarray:
    """Eq. 2: ``discretize(SPECT / HIR)`` inside the lung, 0 outside; the training target.

    Parameters
    ----------
    spect
        ``(z, y, x)`` SPECT on the grid of ``lung_mask`` (any unit).
    lung_mask
        Same shape; nonzero inside the lung(s).
    percentile
        Percentile defining HIR (75 in the paper).
    levels
        Number of uniformly spaced output values between 0 and 1 (11 in the paper).

    Returns
    -------
    numpy.ndarray
        float32, same shape, values in ``{0, 1/(levels-1), ..., 1}`` (see :func:`discretise`
        for the rounding rule); 0 outside the lung.

    Raises
    ------
    InputDataError
        If the mask is empty or HIR is not positive (see :func:`high_intensity_value`).
    """
    return discretise(normalise_spect(spect, lung_mask, percentile=percentile), levels=levels)
