"""Resampling a volume between two canonical LPS grids of one Frame of Reference (SimpleITK).

Used to put a SPECT (4.42 mm voxels) onto the CT grid, and by the per-lung crops of
:mod:`core.lung.enhancement`.  Both grids are :class:`core.geometry.Grid` (identity direction).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the conventional alias)

from core.geometry import Grid

_INTERPOLATORS = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}


def _to_sitk(volume: np.ndarray, grid: Grid) -> sitk.Image:
    image = sitk.GetImageFromArray(volume)
    image.SetOrigin(tuple(float(v) for v in grid.origin_lps_mm))
    image.SetSpacing(tuple(float(v) for v in reversed(grid.spacing_mm)))  # (dx, dy, dz)
    return image


def resample_to_grid(
    volume: np.ndarray,
    source: Grid,
    target: Grid,
    *,
    interpolation: Literal["linear", "nearest"] = "linear",
    default_value: float = 0.0,
) -> np.ndarray:
    """Resample ``volume`` from ``source`` onto ``target`` (same Frame of Reference) with SimpleITK.

    Both grids are canonical LPS (identity direction), so the physical point of every target
    voxel centre is looked up in the source image.  Target voxels farther than half a source
    voxel outside the source grid get ``default_value``.

    Parameters
    ----------
    volume
        ``source.shape`` array ``(z, y, x)``.
    source, target
        Grids of the input and of the output.
    interpolation
        ``'linear'`` (intensities: SPECT, HU) or ``'nearest'`` (labels, masks).
    default_value
        Value outside the source grid, in the unit of ``volume``.

    Returns
    -------
    numpy.ndarray
        ``target.shape``; float32 for ``'linear'``, the dtype of ``volume`` for ``'nearest'``.
    """
    if volume.shape != source.shape:
        raise ValueError(f"volume shape {volume.shape} does not match the source grid shape {source.shape}")
    if interpolation not in _INTERPOLATORS:
        raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATORS)}, got {interpolation!r}")
    if interpolation == "linear":
        work = np.ascontiguousarray(volume, dtype=np.float32)
    else:
        work = np.ascontiguousarray(volume, dtype=np.uint8 if volume.dtype == np.bool_ else volume.dtype)
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(n) for n in reversed(target.shape)])
    resampler.SetOutputOrigin(tuple(float(v) for v in target.origin_lps_mm))
    resampler.SetOutputSpacing(tuple(float(v) for v in reversed(target.spacing_mm)))
    resampler.SetOutputDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    resampler.SetInterpolator(_INTERPOLATORS[interpolation])
    resampler.SetDefaultPixelValue(float(default_value))
    out = sitk.GetArrayFromImage(resampler.Execute(_to_sitk(work, source)))
    return out.astype(volume.dtype if interpolation == "nearest" else np.float32, copy=False)
