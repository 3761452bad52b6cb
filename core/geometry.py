"""Voxel grids in DICOM patient space (LPS).

Conventions used everywhere in ``core``:

* Arrays are indexed ``[k, j, i]`` = ``(z, y, x)``: slice, row, column.
* Patient axes are DICOM LPS: +x towards the patient's left, +y posterior,
  +z superior (head).  Axial images have ImageOrientationPatient
  ``[1, 0, 0, 0, 1, 0]``: column index ``i`` runs along +x, row index ``j``
  along +y, and slice index ``k`` along +z (index 0 is the most inferior slice).
* ``spacing_mm`` is given in array order ``(dz, dy, dx)``; ``origin_lps_mm`` is
  the LPS position ``(x, y, z)`` of the *centre* of voxel ``[0, 0, 0]``, exactly
  what DICOM stores in ImagePositionPatient of the first slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """A regular axial voxel grid in LPS patient space.

    Parameters
    ----------
    shape
        ``(nz, ny, nx)`` number of slices, rows, columns.
    spacing_mm
        ``(dz, dy, dx)`` voxel size in mm, array order.
    origin_lps_mm
        ``(x, y, z)`` LPS position in mm of the centre of voxel ``[0, 0, 0]``.
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_lps_mm: tuple[float, float, float]

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"shape must be three positive ints (nz, ny, nx), got {self.shape}")
        if len(self.spacing_mm) != 3 or min(self.spacing_mm) <= 0:
            raise ValueError(f"spacing_mm must be three positive values (dz, dy, dx), got {self.spacing_mm}")
        if len(self.origin_lps_mm) != 3:
            raise ValueError(f"origin_lps_mm must be (x, y, z), got {self.origin_lps_mm}")

    @classmethod
    def centred(cls, shape: tuple[int, int, int], spacing_mm: tuple[float, float, float]) -> Grid:
        """Grid whose centre lies at the LPS origin (0, 0, 0)."""
        nz, ny, nx = shape
        dz, dy, dx = spacing_mm
        origin = (-(nx - 1) * dx / 2.0, -(ny - 1) * dy / 2.0, -(nz - 1) * dz / 2.0)
        return cls(tuple(int(s) for s in shape), tuple(float(s) for s in spacing_mm), origin)  # type: ignore[arg-type]

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        """Physical size ``(z, y, x)`` covered by the voxels, in mm."""
        return tuple(n * s for n, s in zip(self.shape, self.spacing_mm))  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (cm^3)."""
        dz, dy, dx = self.spacing_mm
        return dz * dy * dx / 1000.0

    def axis_mm(self, axis: str) -> np.ndarray:
        """LPS coordinate (mm) of voxel centres along ``'x'``, ``'y'`` or ``'z'``, float32."""
        index = {"z": 0, "y": 1, "x": 2}[axis]
        lps = {"x": 0, "y": 1, "z": 2}[axis]
        n = self.shape[index]
        return (self.origin_lps_mm[lps] + self.spacing_mm[index] * np.arange(n)).astype(np.float32)

    def slice_positions_lps_mm(self) -> np.ndarray:
        """``(nz, 3)`` ImagePositionPatient of every slice."""
        z = self.axis_mm("z").astype(np.float64)
        x0, y0, _ = self.origin_lps_mm
        return np.stack([np.full_like(z, x0), np.full_like(z, y0), z], axis=1)


def bounding_box(mask: np.ndarray, margin: int | Sequence[int] = 0) -> tuple[slice, ...] | None:
    """The smallest box holding every non-zero voxel of ``mask``, grown by ``margin`` voxels per axis (clipped).

    ``None`` when ``mask`` is all zero.  The first axis comes from one pass over ``mask``, the others from
    the projection of its occupied slab (for a lung in a chest CT, much less than a pass per axis).
    """
    mask = np.asarray(mask)
    pads = (margin,) * mask.ndim if isinstance(margin, int) else tuple(margin)
    if len(pads) != mask.ndim:
        raise ValueError(f"margin needs one value per axis of the {mask.ndim}-D mask, got {pads}")
    hits = np.flatnonzero(mask.any(axis=tuple(range(1, mask.ndim))) if mask.ndim > 1 else mask)
    if hits.size == 0:
        return None
    box = [slice(int(hits[0]), int(hits[-1]) + 1)]
    if mask.ndim > 1:
        inner = bounding_box(np.any(mask[box[0]], axis=0))
        assert inner is not None  # the slab holds a voxel
        box.extend(inner)
    return tuple(
        slice(max(0, b.start - pad), min(n, b.stop + pad)) for b, pad, n in zip(box, pads, mask.shape, strict=True)
    )
