"""Read a DSC-MRI perfusion series (single-frame axial MR images, several time points per slice position).

The modality-independent work (grouping by slice position, completeness, frame times, geometry)
is :func:`core.dicom.dynamic_reader.read_dynamic_frames`.  Time points are timed by
AcquisitionDateTime, else AcquisitionDate and AcquisitionTime, else ContentDate and ContentTime;
when an image has none of them, by ``(TemporalPositionIdentifier - 1) x RepetitionTime`` (a
2D multi-slice acquisition revisits a slice once per TR), with a logged warning.

Only legacy single-frame MR Image Storage of one echo is read: the signal change of a DSC series is
interpreted through its EchoTime (``delta R2* = -ln(S / S0) / TE``), so the EchoTime is required.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import Dataset
from pydicom.uid import MRImageStorage

from core.dicom.dynamic_reader import (
    TimeOf,
    acquisition_time_s,
    read_dynamic_frames,
    read_series_files,
)
from core.errors import InputDataError
from core.geometry import Grid

logger = logging.getLogger(__name__)

WHAT = "DSC perfusion"
_MS = 1e-3
_ECHO_TIME_TOLERANCE_MS = 1e-3


@dataclass(frozen=True)
class DscSeries:
    """A read DSC-MRI series: signal, time points, the grid, sequence timing and the first time point's images.

    ``first_frame`` (inferior to superior) is what results reference: a derived object points at
    the images of one time point, which share the series' positions and Frame of Reference.
    """

    signal: np.ndarray
    times_s: np.ndarray
    grid: Grid
    echo_time_s: float
    repetition_time_s: float | None
    first_frame: list[Dataset]


def _check_mr(datasets: Sequence[Dataset]) -> float:
    """The series' EchoTime (ms), after checking the images are single-echo legacy MR images."""
    first = datasets[0]
    modality, sop_class = first.get("Modality", "of unknown modality"), first.get("SOPClassUID", "no SOP class")
    if modality != "MR" or sop_class != MRImageStorage:
        raise InputDataError(
            f"the series is {modality} ({sop_class}), "
            "not MR Image Storage; DSC perfusion needs the single-frame MR images of the perfusion series"
        )
    if any(ds.get("EchoTime") is None or str(ds.EchoTime) == "" for ds in datasets):
        raise InputDataError(
            "an image has no EchoTime; DSC perfusion converts signal to concentration through the echo time "
            "(re-export the series with its MR Image module)"
        )
    echo_times_ms = sorted({float(ds.EchoTime) for ds in datasets})
    if echo_times_ms[-1] - echo_times_ms[0] > _ECHO_TIME_TOLERANCE_MS:
        raise InputDataError(
            f"the images have several EchoTimes {echo_times_ms} ms; pass the images of one echo of a multi-echo DSC"
        )
    return echo_times_ms[0]


def _repetition_time_ms(datasets: Sequence[Dataset]) -> float | None:
    """The series' RepetitionTime (ms), ``None`` if any image lacks one."""
    values = [ds.get("RepetitionTime") for ds in datasets]
    if any(v is None or str(v) == "" for v in values):
        return None
    return float(values[0])


def _time_of(datasets: Sequence[Dataset], repetition_time_ms: float | None) -> TimeOf:
    """Acquisition times, or ``(TemporalPositionIdentifier - 1) x RepetitionTime`` when some image lacks one."""
    if all(acquisition_time_s(ds) is not None for ds in datasets):
        return acquisition_time_s
    if repetition_time_ms is None or any(ds.get("TemporalPositionIdentifier") is None for ds in datasets):
        raise InputDataError(
            "an image has no AcquisitionDateTime, AcquisitionTime or ContentTime, nor TemporalPositionIdentifier "
            "and RepetitionTime; a DSC series needs the time of every time point"
        )
    interval_s = repetition_time_ms * _MS
    logger.warning(
        "DSC images without acquisition times: time points taken as TemporalPositionIdentifier x RepetitionTime "
        "(%g ms); check the sampling interval",
        repetition_time_ms,
    )
    return lambda ds: (int(ds.TemporalPositionIdentifier) - 1) * interval_s


def read_dsc(paths: Sequence[Path]) -> DscSeries:
    """Read the files of one axial DSC-MRI perfusion series.

    Parameters
    ----------
    paths
        The series' files, in any order.

    Returns
    -------
    DscSeries
        ``signal`` ``(T, nz, ny, nx)`` float32 (RescaleSlope/Intercept applied where present), slice 0
        the most inferior; ``times_s`` ``(T,)`` float64 s after the first time point; ``grid``;
        ``echo_time_s`` and ``repetition_time_s`` (s, ``None`` if not in the headers); the first
        time point's images.

    Raises
    ------
    InputDataError
        If the files are not one axial single-echo MR series with an EchoTime, time points lack
        slices or times, positions or geometry differ between time points, or there are fewer than
        :data:`core.dicom.dynamic_reader.MIN_FRAMES` time points.
    """
    datasets = read_series_files(paths, WHAT)
    echo_time_ms = _check_mr(datasets)
    repetition_time_ms = _repetition_time_ms(datasets)
    dynamic = read_dynamic_frames(datasets, WHAT, time_of=_time_of(datasets, repetition_time_ms))
    return DscSeries(
        signal=dynamic.pixels(),
        times_s=dynamic.times_s,
        grid=dynamic.grid,
        echo_time_s=echo_time_ms * _MS,
        repetition_time_s=None if repetition_time_ms is None else repetition_time_ms * _MS,
        first_frame=dynamic.frames[0],
    )
