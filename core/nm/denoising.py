"""CT-guided denoising of fast (1/7-time) SPECT: the model contract shared by the trainer and the app.

Seed 003 (Pan et al., EJNMMI Physics 2023): the CT is resampled onto the SPECT grid, "all the
input images and the output were divided by their own average", and the corresponding SPECT
and CT slices are concatenated as the channels of a 2-D network that predicts the standard
(20 s/view) SPECT slice from the fast (3 s/view) one.

Readings where the paper is silent:

* the CT enters as ``HU + 1000`` clipped at 0 (air 0, water 1000: an attenuation-like,
  non-negative image whose mean is meaningful), divided by its mean over the SPECT field of view;
* averages are over the whole volume (not per slice), so that slices keep their relative scale;
* or, with a ``support`` (a model whose contract says ``normalisation = "body"``), over the body
  only (:func:`body_support`: CT above :data:`BODY_HU`).  The whole-volume average depends on how much
  of the field of view the body fills: the NEMA IEC phantom fills 5.6 % of it against 21 % for a
  bone-phantom chest, so with whole-volume averages its water reads 17.5 on the CT channel where a
  patient's soft tissue reads 4.7 (and bone 7.6), and its warm background 15 on the SPECT channel where
  soft tissue reads 1.8.  Averages over the body do not change with the field of view;
* the network's output is brought back to the input's units by multiplying with the fast SPECT's
  average: both acquisitions are reconstructed in activity units, so the standard and the fast
  image have the same expected average and the total counts (the sum over the volume) are kept;
  :func:`count_ratio` measures how well;
* negative outputs are clipped to 0 (an NM image stores non-negative values);
* the total counts of the output are then set to those of the input
  (:func:`preserve_total_counts`): denoising should move counts, not make or lose them, and the
  trained network alone is biased by a few percent (measured: see the CHANGELOG and the model's
  ``report/``); the network's own ratio is reported beside it.

Nothing here imports the trainer or the application framework.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from core.errors import InputDataError
from core.geometry import Grid
from core.resample import resample_to_grid

logger = logging.getLogger(__name__)

CT_OFFSET_HU = 1000.0
"""The CT channel is ``max(HU + CT_OFFSET_HU, 0)`` before division by its mean."""

AIR_HU = -1000.0
"""CT value given to SPECT voxels outside the CT's field of view."""

SIZE_MULTIPLE = 32
"""Slices are zero-padded to a multiple of this (U2-Net pools five times by 2)."""

BODY_HU = -500.0
"""SPECT voxels whose CT (on the SPECT grid) is above this are the body (:func:`body_support`)."""

NORMALISATIONS = ("volume", "body")
"""Where the averages of :func:`network_inputs` are taken: the whole volume (seed 003) or the body."""


def ct_on_spect_grid(ct_hu: np.ndarray, ct_grid: Grid, spect_grid: Grid) -> np.ndarray:
    """The CT resampled (linear) onto the SPECT grid; air outside the CT's field of view."""
    return resample_to_grid(ct_hu, ct_grid, spect_grid, interpolation="linear", default_value=AIR_HU)


def body_support(ct_on_spect: np.ndarray) -> np.ndarray:
    """Boolean body mask on the SPECT grid: CT above :data:`BODY_HU`.

    Raises
    ------
    InputDataError
        If no voxel is body (the CT does not cover the SPECT).
    """
    support = ct_on_spect > BODY_HU
    if not support.any():
        raise InputDataError(
            f"the CT shows no body on the SPECT grid (no voxel above {BODY_HU:g} HU); "
            "check that the CT of this Frame of Reference covers the SPECT"
        )
    return support


def normalisation_support(normalisation: str, ct_on_spect: np.ndarray | None) -> np.ndarray | None:
    """The mask a model's input averages are taken over: the body for ``"body"``, None (the whole volume) else.

    Raises
    ------
    ValueError
        If ``normalisation`` is ``"body"`` and no CT is given.
    """
    if normalisation != "body":
        return None
    if ct_on_spect is None:
        raise ValueError("a model normalised over the body needs the CT on the SPECT grid to find the body")
    return body_support(ct_on_spect)


def _positive_mean(volume: np.ndarray, what: str, support: np.ndarray | None = None) -> float:
    values = volume if support is None else volume[support]
    mean = float(np.mean(values, dtype=np.float64))
    if not np.isfinite(mean) or mean <= 0:
        raise InputDataError(f"the {what} has no positive average ({mean}); it cannot be normalised for denoising")
    return mean


def _check_support(support: np.ndarray | None, shape: tuple[int, ...]) -> None:
    if support is not None and (support.shape != shape or support.dtype != np.bool_ or not support.any()):
        raise ValueError(f"the support must be a non-empty boolean mask of shape {shape}")


def network_inputs(
    fast: np.ndarray, ct_on_spect: np.ndarray | None, *, support: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Channels ``(C, z, y, x)`` of the network (fast SPECT / its mean, then CT / its mean) and the SPECT mean.

    ``ct_on_spect`` None gives the one-channel input of the no-CT ablation.  The means are over
    ``support`` (a boolean mask of the volume's shape, :func:`body_support`) when it is given, else
    over the whole volume.
    """
    if fast.ndim != 3:
        raise ValueError(f"the fast SPECT must be a (z, y, x) volume, got shape {fast.shape}")
    if not np.isfinite(fast).all():
        raise InputDataError("the fast SPECT holds non-finite values")
    _check_support(support, fast.shape)
    scale = _positive_mean(fast, "fast SPECT", support)
    channels = [fast.astype(np.float32) / np.float32(scale)]
    if ct_on_spect is not None:
        if ct_on_spect.shape != fast.shape:
            raise ValueError(f"CT on the SPECT grid {ct_on_spect.shape} differs from the SPECT {fast.shape}")
        attenuation = np.clip(ct_on_spect.astype(np.float32) + np.float32(CT_OFFSET_HU), 0.0, None)
        channels.append(attenuation / np.float32(_positive_mean(attenuation, "CT on the SPECT grid", support)))
    return np.stack(channels), scale


def target_of(standard: np.ndarray, *, support: np.ndarray | None = None) -> np.ndarray:
    """The training target: the standard SPECT divided by its own average (over ``support`` when given)."""
    _check_support(support, standard.shape)
    return (standard / np.float32(_positive_mean(standard, "standard SPECT", support))).astype(np.float32)


def _padding(n: int) -> tuple[int, int]:
    total = (-n) % SIZE_MULTIPLE
    return total // 2, total - total // 2


def _support_window(active: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns holding every non-zero voxel, grown to a multiple of :data:`SIZE_MULTIPLE` where they fit."""
    window = []
    for axis in (1, 0):
        hits = np.flatnonzero(active.any(axis=axis))
        n = active.shape[0 if axis == 1 else 1]
        lo, hi = (int(hits[0]), int(hits[-1]) + 1) if hits.size else (0, n)
        size = min(n, -(-(hi - lo) // SIZE_MULTIPLE) * SIZE_MULTIPLE)
        lo = max(0, min(lo - (size - (hi - lo)) // 2, n - size))
        window.append(slice(lo, lo + size))
    return window[0], window[1]


@torch.no_grad()
def denoise_volume(
    model: torch.nn.Module,
    fast: np.ndarray,
    ct_on_spect: np.ndarray | None,
    *,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    support: np.ndarray | None = None,
) -> np.ndarray:
    """Denoise a fast SPECT slice by slice with a TorchScript or eager model of this contract.

    Parameters
    ----------
    model
        Takes ``(B, C, H, W)`` float32 and returns a tensor or a tuple whose first element is the
        ``(B, 1, H, W)`` prediction of the standard SPECT divided by its average.
    fast
        ``(z, y, x)`` fast SPECT in its real-world units (counts).
    ct_on_spect
        The CT in HU on the SPECT grid (:func:`ct_on_spect_grid`), or None for a one-channel model.
    batch_size
        Slices per forward pass.
    device
        Where the model runs.
    progress
        Called with ``(slices done, slices in all)`` after every batch.
    support
        Boolean body mask the input averages are taken over (models trained with ``normalisation =
        "body"``); None: the whole volume.

    Returns
    -------
    numpy.ndarray
        float32 ``(z, y, x)`` denoised SPECT in the units of ``fast``, non-negative.  Only the
        rows and columns where the fast SPECT has counts in some slice go through the network
        (grown to a multiple of 32); the rest, zero in the input, stays zero.
    """
    inputs, scale = network_inputs(fast, ct_on_spect, support=support)
    rows, cols = _support_window(fast.max(axis=0) > 0)
    inputs = inputs[:, :, rows, cols]
    _, nz, ny, nx = inputs.shape
    (top, bottom), (left, right) = _padding(ny), _padding(nx)
    padded = np.pad(inputs, ((0, 0), (0, 0), (top, bottom), (left, right)))
    out = np.zeros(fast.shape, dtype=np.float32)
    model = model.eval()
    for start in range(0, nz, batch_size):
        stop = min(start + batch_size, nz)
        batch = torch.from_numpy(np.ascontiguousarray(padded[:, start:stop].transpose(1, 0, 2, 3))).to(device)
        prediction = model(batch)
        if isinstance(prediction, (tuple, list)):
            prediction = prediction[0]
        out[start:stop, rows, cols] = prediction[:, 0, top : top + ny, left : left + nx].float().cpu().numpy()
        if progress is not None:
            progress(stop, nz)
    return np.clip(out * np.float32(scale), 0.0, None)


def preserve_total_counts(denoised: np.ndarray, fast: np.ndarray) -> np.ndarray:
    """``denoised`` scaled so that its sum equals that of ``fast`` (unchanged when it sums to 0)."""
    total = float(np.sum(denoised, dtype=np.float64))
    if total <= 0:
        return denoised
    return (denoised * np.float32(float(np.sum(fast, dtype=np.float64)) / total)).astype(np.float32)


def count_ratio(denoised: np.ndarray, fast: np.ndarray) -> float:
    """Total counts of the denoised volume over those of the fast input (1 = preserved)."""
    return float(np.sum(denoised, dtype=np.float64) / np.sum(fast, dtype=np.float64))
