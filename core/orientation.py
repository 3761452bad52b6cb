"""Volumes in any orientation <-> the canonical axial LPS layout used by ``core``.

A volume's geometry is a 4x4 *index-to-LPS affine* ``A``: for array index ``(k, j, i)``
(axis 0, 1, 2) the patient position in mm is ``A @ [k, j, i, 1]``.  Column 0 is the step
along array axis 0, and so on; column 3 is the position of voxel ``[0, 0, 0]``.  The
canonical layout (:class:`core.geometry.Grid`) has axis 0 along +z (superior), axis 1 along
+y (posterior), axis 2 along +x (patient left).  Any volume whose axes are within ~30
degrees of the patient axes (axial, coronal or sagittal acquisitions, head- or feet-first,
LPS or RAS arrays, slices in either order) is brought to it by axis permutation and flips
only, without interpolation, and brought back exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import InputDataError
from core.geometry import Grid

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
MAX_OBLIQUITY_COSINE = 0.85
"""Each array axis must be within ~32 degrees of one patient axis."""


def grid_affine_lps(grid: Grid) -> np.ndarray:
    """Index-to-LPS affine of a canonical :class:`Grid`."""
    dz, dy, dx = grid.spacing_mm
    affine = np.zeros((4, 4))
    affine[0, 2], affine[1, 1], affine[2, 0] = dx, dy, dz
    affine[:3, 3] = grid.origin_lps_mm
    affine[3, 3] = 1.0
    return affine


def affine_from_dicom(
    image_orientation_patient: Sequence[float],
    first_position_lps_mm: Sequence[float],
    pixel_spacing_mm: Sequence[float],
    slice_step_lps_mm: Sequence[float],
) -> np.ndarray:
    """Affine of a stack of DICOM images ``(slice, row, column)``.

    Parameters
    ----------
    image_orientation_patient
        The six direction cosines: row direction (along columns ``i``), then column direction (along rows ``j``).
    first_position_lps_mm
        ImagePositionPatient of the first slice of the array.
    pixel_spacing_mm
        PixelSpacing ``(row spacing, column spacing)``: the step between rows, then between columns.
    slice_step_lps_mm
        Vector from one slice position to the next, in array order.
    """
    cosines = np.asarray(image_orientation_patient, dtype=float)
    affine = np.eye(4)
    affine[:3, 0] = np.asarray(slice_step_lps_mm, dtype=float)
    affine[:3, 1] = cosines[3:] * float(pixel_spacing_mm[0])
    affine[:3, 2] = cosines[:3] * float(pixel_spacing_mm[1])
    affine[:3, 3] = np.asarray(first_position_lps_mm, dtype=float)
    return affine


@dataclass(frozen=True)
class Reorientation:
    """How an array was permuted and flipped into the canonical layout; undoes it exactly."""

    permutation: tuple[int, int, int]
    flips: tuple[bool, bool, bool]

    def to_canonical(self, array: np.ndarray) -> np.ndarray:
        """Original layout -> canonical ``(z, y, x)`` (a view where possible)."""
        out = np.transpose(array, self.permutation)
        for axis, flip in enumerate(self.flips):
            if flip:
                out = np.flip(out, axis)
        return out

    def to_original(self, array: np.ndarray) -> np.ndarray:
        """Canonical ``(z, y, x)`` -> original layout."""
        out = array
        for axis, flip in enumerate(self.flips):
            if flip:
                out = np.flip(out, axis)
        return np.transpose(out, np.argsort(self.permutation))


def canonical(volume: np.ndarray, affine_lps: np.ndarray) -> tuple[np.ndarray, Grid, Reorientation]:
    """Bring ``volume`` (any axis order and direction) into the canonical layout.

    Returns
    -------
    canonical_volume
        ``(z, y, x)`` view of ``volume``.
    grid
        Its :class:`Grid`.
    reorientation
        Undo with ``reorientation.to_original(mask)``.

    Raises
    ------
    InputDataError
        If the affine is degenerate, or an axis is too oblique to map onto a patient axis.
    """
    if volume.ndim != 3 or affine_lps.shape != (4, 4):
        raise InputDataError(f"expected a 3-D volume and a 4x4 affine, got {volume.shape} and {affine_lps.shape}")
    steps = affine_lps[:3, :3]
    spacing = np.linalg.norm(steps, axis=0)
    if np.any(spacing <= 0) or abs(np.linalg.det(steps)) < 1e-6 * np.prod(spacing):
        raise InputDataError(f"degenerate volume geometry (voxel steps {steps.T.tolist()}); check the DICOM headers")
    cosines = steps / spacing
    patient_axis = np.argmax(np.abs(cosines), axis=0)  # LPS component (0=x, 1=y, 2=z) of each array axis
    if len(set(patient_axis.tolist())) != 3 or np.min(np.max(np.abs(cosines), axis=0)) < MAX_OBLIQUITY_COSINE:
        raise InputDataError(
            "the volume is too oblique to process (array axes "
            f"{np.round(cosines.T, 2).tolist()}); resample it to axial, coronal or sagittal first"
        )
    # canonical axis 0 <- patient z, 1 <- y, 2 <- x
    permutation = tuple(int(np.flatnonzero(patient_axis == lps)[0]) for lps in (2, 1, 0))
    flips = tuple(bool(cosines[lps, axis] < 0) for lps, axis in zip((2, 1, 0), permutation))
    reorientation = Reorientation(permutation, flips)  # type: ignore[arg-type]
    shape = tuple(volume.shape[a] for a in permutation)
    corner = np.array([(volume.shape[a] - 1) if f else 0 for a, f in zip(permutation, flips)], dtype=float)
    index0 = np.zeros(3)
    index0[list(permutation)] = corner
    origin = (affine_lps @ np.append(index0, 1.0))[:3]
    grid = Grid(
        (int(shape[0]), int(shape[1]), int(shape[2])),
        tuple(float(spacing[a]) for a in permutation),  # type: ignore[arg-type]
        (float(origin[0]), float(origin[1]), float(origin[2])),
    )
    return reorientation.to_canonical(volume), grid, reorientation
