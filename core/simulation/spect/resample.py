"""Exact box-overlap resampling between axis-aligned grids (activity-conserving).

Each voxel is a box.  Along every axis the weight of source voxel ``j`` in destination voxel
``i`` is the length of the overlap of their intervals divided by the source spacing
(``mode='sum'``: extensive quantities such as MBq per voxel, whose total is conserved) or
by the destination spacing (``mode='mean'``: intensive quantities such as mu in 1/mm; parts of
the destination voxel outside the source grid count as zero, i.e. air).  The 3D weights are
the product of the three 1D ones, so resampling is three small matrix products
(``O(N_src x n_dst_axis)``), fast on a 512 x 512 x 300 CT.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import torch

from core.errors import SimulationParameterError
from core.geometry import Grid

logger = logging.getLogger(__name__)


def overlap_weights(
    src_first_mm: float, src_spacing_mm: float, n_src: int, dst_first_mm: float, dst_spacing_mm: float, n_dst: int
) -> np.ndarray:
    """Interval-overlap lengths (mm) between the voxels of two 1D grids.

    Parameters
    ----------
    src_first_mm, src_spacing_mm, n_src
        Centre of the first source voxel, source spacing and number of source voxels.
    dst_first_mm, dst_spacing_mm, n_dst
        The same for the destination grid.

    Returns
    -------
    numpy.ndarray
        float64 ``(n_dst, n_src)`` overlap lengths in mm.
    """
    src = src_first_mm + src_spacing_mm * np.arange(n_src)
    dst = dst_first_mm + dst_spacing_mm * np.arange(n_dst)
    hi = np.minimum(dst[:, None] + 0.5 * dst_spacing_mm, src[None, :] + 0.5 * src_spacing_mm)
    lo = np.maximum(dst[:, None] - 0.5 * dst_spacing_mm, src[None, :] - 0.5 * src_spacing_mm)
    return np.clip(hi - lo, 0.0, None)


def resample_box(volume: np.ndarray, src: Grid, dst: Grid, mode: Literal["sum", "mean"]) -> np.ndarray:
    """Resample a volume from ``src`` to ``dst`` by exact box overlap.

    Parameters
    ----------
    volume
        ``src.shape`` array ``(z, y, x)``.
    src, dst
        Axis-aligned grids in the same LPS frame.
    mode
        ``'sum'`` conserves the total (MBq per voxel); ``'mean'`` averages (mu in 1/mm).

    Returns
    -------
    numpy.ndarray
        float32 ``dst.shape`` array.
    """
    if volume.shape != src.shape:
        raise SimulationParameterError(f"volume shape {volume.shape} does not match its grid shape {src.shape}")
    if mode not in ("sum", "mean"):
        raise SimulationParameterError(f"mode must be 'sum' or 'mean', got {mode!r}")
    out = np.zeros(dst.shape, dtype=np.float32)
    if src == dst:
        out[...] = volume
        return out
    weights, dst_slices, src_slices = [], [], []
    for axis, lps in ((0, 2), (1, 1), (2, 0)):
        w = overlap_weights(
            src.origin_lps_mm[lps],
            src.spacing_mm[axis],
            src.shape[axis],
            dst.origin_lps_mm[lps],
            dst.spacing_mm[axis],
            dst.shape[axis],
        )
        w /= src.spacing_mm[axis] if mode == "sum" else dst.spacing_mm[axis]
        rows, cols = np.nonzero(w.any(axis=1))[0], np.nonzero(w.any(axis=0))[0]
        if rows.size == 0:
            logger.warning("resample_box: source and destination grids do not overlap; result is all zero")
            return out
        dst_slices.append(slice(rows[0], rows[-1] + 1))
        src_slices.append(slice(cols[0], cols[-1] + 1))
        weights.append(torch.from_numpy(w[dst_slices[-1], src_slices[-1]].astype(np.float32)))
    wz, wy, wx = weights
    block = torch.from_numpy(np.ascontiguousarray(volume[tuple(src_slices)], dtype=np.float32))
    block = torch.matmul(wy, torch.matmul(block, wx.T))
    block = torch.matmul(wz, block.reshape(block.shape[0], -1))
    out[tuple(dst_slices)] = block.reshape(wz.shape[0], wy.shape[0], wx.shape[0]).numpy()
    return out
