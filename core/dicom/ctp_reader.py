"""Read a 4D CT perfusion series (single-frame axial CT images, several time points per slice position).

The modality-independent work (grouping by slice position, completeness, frame times, geometry)
is :func:`core.dicom.dynamic_reader.read_dynamic_frames`: frame ``k`` is the ``k``-th acquisition
time at every position, timed by AcquisitionDateTime, else AcquisitionDate and AcquisitionTime, else
ContentDate and ContentTime (AcquisitionNumber alone gives no time, so a file without any of them is
rejected).  Pixels become HU with RescaleSlope/Intercept.

:func:`time_points_per_position` and :func:`is_dynamic_series` (of :mod:`core.dicom.dynamic_reader`,
kept importable from here) tell from headers alone whether a CT series is dynamic, for series selection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import Dataset

from core.dicom.dynamic_reader import (
    MIN_FRAMES,
    is_dynamic_series,
    read_dynamic_frames,
    read_series_files,
    time_points_per_position,
)
from core.geometry import Grid

__all__ = ["MIN_FRAMES", "CtpSeries", "is_dynamic_series", "read_ctp", "read_ctp_series", "time_points_per_position"]

WHAT = "CT perfusion"


@dataclass(frozen=True)
class CtpSeries:
    """A read 4D CT perfusion series: HU frames, their times, the grid and the first frame's images.

    ``first_frame`` (inferior to superior) is what results reference: a derived object points at
    the images of one time point, which share the series' positions and Frame of Reference.
    """

    hu: np.ndarray
    times_s: np.ndarray
    grid: Grid
    first_frame: list[Dataset]


def read_ctp(paths: Sequence[Path]) -> CtpSeries:
    """Read the files of one axial 4D CT perfusion series.

    Parameters
    ----------
    paths
        The series' files, in any order.

    Returns
    -------
    hu : numpy.ndarray
        ``(T, nz, ny, nx)`` float32 HU (RescaleSlope/Intercept applied), slice 0 the most inferior.
    times_s : numpy.ndarray
        ``(T,)`` float64 frame times in s after the first frame (``times_s[0] == 0``).
    grid : Grid
        Geometry shared by every frame.

    Raises
    ------
    InputDataError
        If the files are not one axial series, frames lack slices or times, positions or geometry
        differ between frames, or there are fewer than :data:`MIN_FRAMES` frames.
    """
    dynamic = read_dynamic_frames(read_series_files(paths, WHAT), WHAT)
    return CtpSeries(dynamic.pixels(), dynamic.times_s, dynamic.grid, dynamic.frames[0])


def read_ctp_series(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray, Grid]:
    """``(hu, times_s, grid)`` of :func:`read_ctp` (see there)."""
    series = read_ctp(paths)
    return series.hu, series.times_s, series.grid
