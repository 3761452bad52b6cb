"""Read a dynamic (4D) series of single-frame axial images, whatever the modality: CT or MR perfusion.

A dynamic series repeats the same slice positions at successive times (CT cine mode, 2D multi-slice
MR; toggling-table CT protocols too, whose slices within one pass have slightly different times).
The files are grouped by slice position along the normal first; the ``k``-th time at every position
forms frame ``k`` (a *time point*).  A frame's time is the mean of its slices' times, by default from
:func:`acquisition_time_s`.  Slices are ordered with :func:`core.dicom.slice_stack.sorted_along_normal`
and the grid comes from :func:`core.dicom.ct_reader.grid_of_slices`.

:func:`read_dynamic_frames` checks and orders what a modality's reader then interprets
(:mod:`core.dicom.ctp_reader`, :mod:`core.dicom.dsc_reader`).  :func:`time_points_per_position` and
:func:`is_dynamic_series` tell from headers alone (``stop_before_pixels``) whether a series is
dynamic, for series selection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
from pydicom import Dataset
from pydicom.pixels import apply_rescale
from pydicom.valuerep import DA, DT, TM

from core.dicom.ct_reader import POSITION_TOLERANCE_MM, grid_of_slices
from core.dicom.plane import require_axial
from core.dicom.slice_stack import slice_normal, sorted_along_normal
from core.errors import InputDataError
from core.geometry import Grid

logger = logging.getLogger(__name__)

MIN_FRAMES = 10
"""Fewest time points a perfusion analysis can use (baseline, bolus and wash-out)."""
IRREGULAR_SAMPLING = 0.05
"""Relative spread of frame intervals above which the sampling is logged as irregular."""
_EPOCH = datetime(1900, 1, 1)

TimeOf = Callable[[Dataset], float | None]
"""The acquisition time of an image in s on any fixed origin, ``None`` if the image has none."""


def acquisition_time_s(ds: Dataset) -> float | None:
    """Acquisition time of an image in s (since 1900-01-01, or since midnight without a date); ``None`` if absent.

    From AcquisitionDateTime, else AcquisitionDate and AcquisitionTime, else ContentDate and ContentTime.
    """
    if ds.get("AcquisitionDateTime"):
        moment = DT(str(ds.AcquisitionDateTime))
        return (datetime.combine(moment.date(), moment.time()) - _EPOCH).total_seconds()
    for date_keyword, time_keyword in (("AcquisitionDate", "AcquisitionTime"), ("ContentDate", "ContentTime")):
        if ds.get(time_keyword):
            clock = TM(str(ds.get(time_keyword)))
            seconds = clock.hour * 3600.0 + clock.minute * 60.0 + clock.second + clock.microsecond * 1e-6
            if ds.get(date_keyword):
                seconds += (
                    datetime.combine(DA(str(ds.get(date_keyword))), datetime.min.time()) - _EPOCH
                ).total_seconds()
            return seconds
    return None


def _position_groups(datasets: Sequence[Dataset]) -> list[list[Dataset]]:
    """Datasets grouped by their position along the slice normal, groups in ascending position."""
    normal = slice_normal(datasets[0].ImageOrientationPatient)
    distance = np.array([float(normal @ np.asarray([float(v) for v in ds.ImagePositionPatient])) for ds in datasets])
    order = np.argsort(distance, kind="stable")
    groups: list[list[Dataset]] = []
    last = -np.inf
    for i in order:
        if distance[i] - last > POSITION_TOLERANCE_MM:
            groups.append([])
        groups[-1].append(datasets[int(i)])
        last = distance[i]
    return groups


def time_points_per_position(datasets: Sequence[Dataset]) -> int:
    """Largest number of distinct time points at one slice position.

    A time point is told by the acquisition time, else the TemporalPositionIdentifier (MR), else the
    AcquisitionNumber.  1 for a static series, the number of frames for a dynamic one.  Headers read
    with ``stop_before_pixels`` suffice; files without ImagePositionPatient/ImageOrientationPatient
    are ignored.
    """
    usable = [ds for ds in datasets if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds]
    if not usable:
        return 0
    counts = []
    for group in _position_groups(usable):
        keys = set()
        for ds in group:
            seconds = acquisition_time_s(ds)
            if seconds is not None:
                keys.add(("time", seconds))
            elif ds.get("TemporalPositionIdentifier") is not None:
                keys.add(("temporal position", ds.TemporalPositionIdentifier))
            else:
                keys.add(("number", ds.get("AcquisitionNumber")))
        counts.append(len(keys))
    return max(counts)


def is_dynamic_series(datasets: Sequence[Dataset], min_time_points: int = 2) -> bool:
    """Whether the images repeat slice positions at ``min_time_points`` or more times (a 4D series)."""
    return time_points_per_position(datasets) >= min_time_points


def _check_complete(groups: list[list[Dataset]], normal: np.ndarray) -> int:
    """The number of time points, after checking every slice position has all of them.

    A position seen in at most half of the time points is a stray (a shifted slice, another
    acquisition); one seen in more is missing files.
    """
    counts = [len(g) for g in groups]
    n_times = max(counts)
    where = [float(normal @ np.asarray([float(v) for v in g[0].ImagePositionPatient])) for g in groups]
    stray = [(w, c) for w, c in zip(where, counts) if c <= n_times // 2]
    if stray:
        w, c = stray[0]
        raise InputDataError(
            f"inconsistent slice positions: position {w:.2f} mm along the slice normal appears in only {c} of "
            f"{n_times} time points; all frames must cover the same positions (mixed acquisitions or a moved table?)"
        )
    incomplete = [(w, c) for w, c in zip(where, counts) if c < n_times]
    if incomplete:
        w, c = incomplete[0]
        raise InputDataError(
            f"missing frame files: the slice at {w:.2f} mm has {c} of {n_times} time points; "
            "every frame must hold every slice (re-export the complete series)"
        )
    return n_times


def _frames(groups: list[list[Dataset]], n_times: int, time_of: TimeOf) -> tuple[list[list[Dataset]], np.ndarray]:
    """Frame ``k`` = the ``k``-th time at every position (inferior to superior) and the frames' mean times."""
    times = np.empty((len(groups), n_times))
    ordered = []
    for p, group in enumerate(groups):
        stamps = [time_of(ds) for ds in group]
        if any(stamp is None for stamp in stamps):
            raise InputDataError(
                "an image has no AcquisitionDateTime, AcquisitionTime or ContentTime; a perfusion series needs "
                "the time of every frame"
            )
        seconds = np.asarray(stamps, dtype=np.float64)
        order = np.argsort(seconds, kind="stable")
        times[p] = seconds[order]
        if np.any(np.diff(times[p]) <= 0):
            raise InputDataError(
                "times are not increasing: two images at one slice position share an acquisition time "
                "(duplicate files?)"
            )
        ordered.append([group[int(i)] for i in order])
    frame_times = times.mean(axis=0)
    spread = float(np.ptp(times, axis=0).max())
    if n_times > 1 and spread >= 0.5 * float(np.diff(frame_times).min()):
        raise InputDataError(
            f"the frames are not separable: slices of one time point were acquired up to {spread:.2f} s apart, "
            "as long as the time between frames; the files may mix acquisitions"
        )
    return [[ordered[p][k] for p in range(len(groups))] for k in range(n_times)], frame_times


def _in_plane_geometry(ds: Dataset) -> tuple[int, int, float, float]:
    """Rows, Columns and PixelSpacing (mm, rounded to 1e-6)."""
    dy, dx = (round(float(v), 6) for v in ds.PixelSpacing)
    return int(ds.Rows), int(ds.Columns), dy, dx


def _check_geometry(frames: list[list[Dataset]]) -> tuple[list[list[Dataset]], Grid]:
    """Every frame sorted along the normal, after checking all frames share the first one's grid; and the grid."""
    sorted_frames = [sorted_along_normal(frame) for frame in frames]
    first = sorted_frames[0]
    grid = grid_of_slices(first)
    reference = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in first])
    geometry = _in_plane_geometry(first[0])
    for k, frame in enumerate(sorted_frames):
        positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in frame])
        deviation = float(np.abs(positions - reference).max())
        if deviation > POSITION_TOLERANCE_MM:
            raise InputDataError(
                f"inconsistent slice positions: frame {k + 1} lies up to {deviation:.3f} mm from the first frame"
            )
        if any(_in_plane_geometry(ds) != geometry for ds in frame):
            raise InputDataError(
                f"mixed geometry: frame {k + 1} differs from the first frame in Rows/Columns or PixelSpacing"
            )
    return sorted_frames, grid


def read_series_files(paths: Sequence[Path], what: str) -> list[Dataset]:
    """Read the files of one axial series (pixels included).

    ``what`` names the series in messages (``"CT perfusion"``).

    Raises
    ------
    InputDataError
        If there are no files, they belong to several series, or an image is not axial.
    """
    if not paths:
        raise InputDataError(f"no {what} files given; pass the files of one dynamic {what} series")
    datasets: list[Dataset] = [pydicom.dcmread(path) for path in paths]
    if len({ds.SeriesInstanceUID for ds in datasets}) != 1:
        raise InputDataError(f"the files belong to several series; pass the files of one {what} series only")
    for path, ds in zip(paths, datasets, strict=True):
        require_axial(ds.ImageOrientationPatient, Path(path).name)
    return datasets


@dataclass(frozen=True)
class DynamicFrames:
    """The images of a dynamic series ordered in time and space, their times and the shared grid.

    ``frames[k][j]`` is slice ``j`` (inferior to superior) of time point ``k``; ``times_s`` ``(T,)``
    float64 s after the first time point (``times_s[0] == 0``).
    """

    frames: list[list[Dataset]]
    times_s: np.ndarray
    grid: Grid

    def pixels(self) -> np.ndarray:
        """``(T, nz, ny, nx)`` float32 stored values with RescaleSlope/Intercept applied where present."""
        volumes = np.empty((len(self.frames), *self.grid.shape), dtype=np.float32)
        for k, frame in enumerate(self.frames):
            for j, image in enumerate(frame):
                volumes[k, j] = apply_rescale(image.pixel_array, image)
        return volumes


def read_dynamic_frames(
    datasets: Sequence[Dataset], what: str, time_of: TimeOf = acquisition_time_s, min_frames: int = MIN_FRAMES
) -> DynamicFrames:
    """Order the images of one axial dynamic series (see :func:`read_series_files`) into frames.

    Parameters
    ----------
    datasets
        The images, in any order.
    what
        The series' kind for messages (``"CT perfusion"``).
    time_of
        Acquisition time of an image (s); frames are ordered and timed by it.
    min_frames
        Fewest time points accepted.

    Raises
    ------
    InputDataError
        If frames lack slices or times, positions or geometry differ between frames, or there are
        fewer than ``min_frames`` frames.
    """
    groups = _position_groups(datasets)
    n_times = _check_complete(groups, slice_normal(datasets[0].ImageOrientationPatient))
    if n_times < min_frames:
        raise InputDataError(
            f"only {n_times} time point(s) per slice; a {what} analysis needs at least {min_frames} frames "
            "(is this a static series?)"
        )
    frames, frame_times = _frames(groups, n_times, time_of)
    frames, grid = _check_geometry(frames)
    times_s = frame_times - frame_times[0]
    intervals = np.diff(times_s)
    if np.ptp(intervals) > IRREGULAR_SAMPLING * intervals.mean():
        logger.info("%s frames are irregularly sampled: intervals %.2f-%.2f s", what, intervals.min(), intervals.max())
    logger.debug("read %s series: %d frames of %s", what, n_times, grid)
    return DynamicFrames(frames, times_s, grid)
