"""Read an axial single-frame CT series into a Hounsfield-unit volume and its :class:`Grid`.

Slices are ordered by their ImagePositionPatient along the slice normal
(+z for axial ``[1, 0, 0, 0, 1, 0]``), never by InstanceNumber or file name:
scanners number head-first helical series from the top, feet-first ones from the
bottom, and the grid convention (:mod:`core.geometry`) wants index 0 inferior.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom import Dataset
from pydicom.pixels import apply_rescale

from core.dicom.plane import require_axial
from core.errors import InputDataError
from core.geometry import Grid

logger = logging.getLogger(__name__)

POSITION_TOLERANCE_MM = 0.01
"""Largest accepted deviation (mm) of in-plane position or slice spacing from a regular grid."""


def _sorted_slices(paths: Sequence[Path]) -> list[Dataset]:
    """Read the headers and pixels, check they form one axial series, sort inferior to superior."""
    if not paths:
        raise InputDataError("no CT files given; pass the files of one CT series")
    datasets = [pydicom.dcmread(path) for path in paths]
    series_uids = {ds.SeriesInstanceUID for ds in datasets}
    if len(series_uids) != 1:
        raise InputDataError(f"the files belong to {len(series_uids)} series; pass the files of one CT series only")
    for path, ds in zip(paths, datasets, strict=True):
        require_axial(ds.ImageOrientationPatient, Path(path).name)
    return sorted(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))


def grid_of_slices(slices: Sequence[Dataset]) -> Grid:
    """The regular grid spanned by sorted axial slices; raises if they are not on one."""
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in slices])
    sizes = {(int(ds.Rows), int(ds.Columns)) for ds in slices}
    spacings = {tuple(float(v) for v in ds.PixelSpacing) for ds in slices}
    if len(sizes) != 1 or len(spacings) != 1:
        raise InputDataError(f"slices differ in Rows/Columns {sizes} or PixelSpacing {spacings}; not one volume")
    if np.ptp(positions[:, :2], axis=0).max() > POSITION_TOLERANCE_MM:
        raise InputDataError("slices are shifted in x/y (gantry tilt or moving table); resample the series first")
    steps = np.diff(positions[:, 2])
    if len(slices) > 1 and (steps.min() <= 0 or np.ptp(steps) > POSITION_TOLERANCE_MM):
        raise InputDataError(
            f"slice spacing is not regular (steps {steps.min():.3f}-{steps.max():.3f} mm) or slices are duplicated; "
            "remove duplicates or resample the series first"
        )
    dz = float(steps.mean()) if len(slices) > 1 else float(slices[0].get("SliceThickness") or 1.0)
    (ny, nx), (dy, dx) = sizes.pop(), spacings.pop()
    x, y, z = (float(v) for v in positions[0])
    return Grid((len(slices), ny, nx), (dz, dy, dx), (x, y, z))


def read_ct_volume(paths: Sequence[Path]) -> tuple[np.ndarray, Grid]:
    """Read the files of one axial CT series as a HU volume.

    Parameters
    ----------
    paths
        The series' files, in any order.

    Returns
    -------
    hu : numpy.ndarray
        ``(nz, ny, nx)`` float32 HU (RescaleSlope/Intercept applied), slice 0 the most
        inferior.  Voxels holding a PixelPaddingValue keep their rescaled value
        (e.g. -3024 HU outside the reconstruction circle of GE scanners).
    grid : Grid
        Its geometry; ``origin_lps_mm`` is the ImagePositionPatient of the most inferior slice.

    Raises
    ------
    InputDataError
        If the files are not one axial series on a regular grid.
    """
    slices = _sorted_slices(paths)
    grid = grid_of_slices(slices)
    hu = np.empty(grid.shape, dtype=np.float32)
    for k, ds in enumerate(slices):
        hu[k] = apply_rescale(ds.pixel_array, ds)
    logger.debug("read CT series: %d slices, grid %s", len(slices), grid)
    return hu, grid
