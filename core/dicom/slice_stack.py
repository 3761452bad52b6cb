"""A single-frame image series as a volume: slice order and the exact index-to-LPS affine.

A CT volume here is a stack of single-frame slices sorted by their ImagePositionPatient
projected on the slice normal (row cosine x column cosine), ascending: the order of the
MONAI Deploy SDK's DICOMSeriesToVolumeOperator and, for axial head-first or feet-first
series alike, index 0 is the slice nearest the feet.  :func:`sorted_along_normal` defines
that order once; :func:`slice_stack_affine_lps` gives the exact affine of the stack from the
headers (the SDK's own affine swaps PixelSpacing for non-square pixels).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom import Dataset

from core.errors import InputDataError
from core.orientation import affine_from_dicom

POSITION_TOLERANCE_MM = 0.01
"""Largest accepted deviation (mm) of a slice position from the regular stack."""
ORIENTATION_TOLERANCE = 1e-4
"""Largest accepted difference between the direction cosines of two slices."""
REQUIRED_SLICE_ATTRIBUTES = (
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "Rows",
    "Columns",
    "PixelData",
)
"""What every slice of a volume must hold; a file cut off by an interrupted transfer lacks some."""


def slice_normal(image_orientation_patient: Sequence[float] | np.ndarray) -> np.ndarray:
    """Unit normal (row cosine x column cosine) of an image plane."""
    cosines = np.asarray([float(v) for v in image_orientation_patient], dtype=np.float64)
    return np.cross(cosines[:3], cosines[3:])


def sorted_along_normal(datasets: Sequence[Dataset]) -> list[Dataset]:
    """The slices of one single-frame series in volume order: ascending position along the slice normal.

    Raises
    ------
    InputDataError
        If there are no slices, they differ in orientation or size, or two share a position.
    """
    if not datasets:
        raise InputDataError("no CT slices given")
    first = datasets[0]
    orientation = np.asarray([float(v) for v in first.ImageOrientationPatient])
    for ds in datasets:
        if np.max(np.abs(np.asarray([float(v) for v in ds.ImageOrientationPatient]) - orientation)) > (
            ORIENTATION_TOLERANCE
        ):
            raise InputDataError("the CT slices differ in ImageOrientationPatient; not one volume")
        if (int(ds.Rows), int(ds.Columns)) != (int(first.Rows), int(first.Columns)):
            raise InputDataError("the CT slices differ in Rows/Columns; not one volume")
    normal = slice_normal(orientation)
    distances = [float(normal @ np.asarray([float(v) for v in ds.ImagePositionPatient])) for ds in datasets]
    order = np.argsort(distances, kind="stable")
    if len(datasets) > 1 and np.min(np.diff(np.sort(distances))) < POSITION_TOLERANCE_MM:
        raise InputDataError("two CT slices share one position; remove the duplicates")
    return [datasets[int(i)] for i in order]


def check_complete_slices(slices: Sequence[Dataset]) -> None:
    """Refuse slices that lack an attribute a volume needs.

    Raises
    ------
    InputDataError
        Naming the first such file and what it lacks.
    """
    for ds in slices:
        missing = [name for name in REQUIRED_SLICE_ATTRIBUTES if name not in ds]
        if missing:
            raise InputDataError(
                f"CT file {file_name(ds)} lacks {', '.join(missing)}: it is incomplete or damaged (an interrupted "
                "transfer?); send the series again"
            )


def undecodable_slice(slices: Sequence[Dataset]) -> InputDataError | None:
    """The error to raise for the first slice whose pixel data cannot be decoded, None if all decode.

    Meant for the failure path of a volume conversion, to name the file at fault.
    """
    for ds in slices:
        try:
            ds.pixel_array  # noqa: B018  (decoding is the check)
        except Exception as error:  # every decoder failure: truncated data, corrupted stream, missing codec
            return InputDataError(
                f"the pixel data of CT file {file_name(ds)} cannot be decoded ({error}); the file is damaged or "
                "truncated: send the series again"
            )
    return None


def file_name(ds: Dataset) -> str:
    """The name (not the folder) of the file ``ds`` was read from, or its InstanceNumber."""
    if isinstance(ds.filename, str) and ds.filename:
        return Path(ds.filename).name
    return f"with InstanceNumber {ds.get('InstanceNumber', '?')}"


def slice_stack_affine_lps(slices: Sequence[Dataset]) -> np.ndarray:
    """Exact index-to-LPS affine of slices in :func:`sorted_along_normal` order, from their headers.

    Column 0 is the step between slices, column 1 the step between rows (PixelSpacing[0] along
    the column cosine), column 2 the step between columns (PixelSpacing[1] along the row
    cosine), column 3 the ImagePositionPatient of the first slice (see :mod:`core.orientation`).

    Raises
    ------
    InputDataError
        If the slices are not on one regular grid (uneven spacing, shifted positions).
    """
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in slices])
    first = slices[0]
    if len(slices) > 1:
        step = (positions[-1] - positions[0]) / (len(slices) - 1)
    else:
        step = slice_normal(first.ImageOrientationPatient) * float(first.get("SliceThickness") or 1.0)
    expected = positions[0] + np.arange(len(slices))[:, None] * step
    deviation_mm = float(np.max(np.abs(positions - expected)))
    if deviation_mm > POSITION_TOLERANCE_MM:
        gaps_mm = np.linalg.norm(np.diff(positions, axis=0), axis=1)
        widest = int(np.argmax(gaps_mm))
        raise InputDataError(
            f"the CT slices are not on a regular grid (a slice lies {deviation_mm:.3f} mm off): the gaps between "
            f"neighbouring slices range from {gaps_mm.min():.2f} to {gaps_mm.max():.2f} mm, the widest after file "
            f"{file_name(slices[widest])}.  A slice may be missing (send the complete series) or the spacing "
            "is uneven (resample the series to even spacing first)"
        )
    pixel_spacing = [float(v) for v in first.PixelSpacing]
    return affine_from_dicom(first.ImageOrientationPatient, positions[0], pixel_spacing, step)
