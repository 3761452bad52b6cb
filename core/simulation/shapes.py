"""Geometric primitives for the phantoms: coordinates, capsules with partial volume, smooth random fields.

All functions work in the LPS millimetre frame of a :class:`core.geometry.Grid` and
return float32 arrays indexed ``(z, y, x)``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from core.geometry import Grid


def centred_axes_mm(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel-centre coordinates relative to the grid centre, broadcastable as ``(z,1,1)``, ``(1,y,1)``, ``(1,1,x)``.

    Returns
    -------
    z, y, x
        float32 arrays in mm; ``x`` grows to the patient's left, ``y`` posterior, ``z`` superior.
    """
    axes = []
    for name, shape in (("z", (-1, 1, 1)), ("y", (1, -1, 1)), ("x", (1, 1, -1))):
        a = grid.axis_mm(name)
        axes.append((a - 0.5 * (a[0] + a[-1])).reshape(shape))
    return axes[0], axes[1], axes[2]


def ellipse_inside(
    y: np.ndarray,
    x: np.ndarray,
    cy: np.ndarray | float,
    cx: np.ndarray | float,
    b: np.ndarray | float,
    a: np.ndarray | float,
) -> np.ndarray:
    """Squared normalised radius ``((x-cx)/a)^2 + ((y-cy)/b)^2`` (< 1 inside); float32, broadcast shape."""
    return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2


def segment_distance_mm(points: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from points to the segment ``p0-p1`` and the position ``t`` in [0, 1] of the closest point.

    Parameters
    ----------
    points
        ``(..., 3)`` coordinates (z, y, x) in mm.
    p0, p1
        ``(3,)`` segment end points (z, y, x) in mm.
    """
    d = p1 - p0
    length2 = float(d @ d)
    if length2 == 0.0:
        t = np.zeros(points.shape[:-1], dtype=np.float32)
    else:
        t = np.clip(((points - p0) @ d) / length2, 0.0, 1.0).astype(np.float32)
    closest = p0 + t[..., None] * d
    return np.sqrt(((points - closest) ** 2).sum(-1)).astype(np.float32), t


def paint_capsules(
    target: np.ndarray,
    grid: Grid,
    starts_mm: np.ndarray,
    ends_mm: np.ndarray,
    radii_mm: np.ndarray,
) -> None:
    """Rasterise tapered-free capsules (cylinders with round caps) as partial-volume fractions into ``target``.

    ``target`` (float32, grid shape) receives ``max(target, fraction)`` where ``fraction`` is the
    fraction of each voxel inside a capsule, approximated by a linear ramp one voxel wide across
    the surface.  Coordinates are relative to the grid centre, (z, y, x) in mm, as from
    :func:`centred_axes_mm`.

    Parameters
    ----------
    target
        ``(nz, ny, nx)`` float32 array modified in place.
    starts_mm, ends_mm
        ``(n, 3)`` segment end points (z, y, x).
    radii_mm
        ``(n,)`` capsule radii.
    """
    spacing = np.asarray(grid.spacing_mm, dtype=np.float32)
    shape = np.asarray(grid.shape)
    centre_index = (shape - 1) / 2.0
    ramp_mm = float(spacing.mean())
    for p0, p1, r in zip(starts_mm.astype(np.float32), ends_mm.astype(np.float32), radii_mm.astype(np.float32)):
        margin = r + ramp_mm
        lo = np.floor(np.minimum(p0, p1) / spacing + centre_index - margin / spacing).astype(int)
        hi = np.ceil(np.maximum(p0, p1) / spacing + centre_index + margin / spacing).astype(int) + 1
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, shape)
        if np.any(hi <= lo):
            continue
        axes = [(np.arange(lo[k], hi[k], dtype=np.float32) - centre_index[k]) * spacing[k] for k in range(3)]
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
        dist, _ = segment_distance_mm(pts, p0, p1)
        frac = np.clip((r - dist) / ramp_mm + 0.5, 0.0, 1.0)
        view = target[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        np.maximum(view, frac, out=view)


def smooth_random_field(
    shape: tuple[int, ...],
    spacing_mm: tuple[float, ...],
    correlation_mm: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with Gaussian correlation of length ``correlation_mm``.

    White noise is filtered with a Gaussian of standard deviation ``correlation_mm`` (per axis in
    voxels) and renormalised to unit standard deviation.  float32.
    """
    noise = rng.standard_normal(shape, dtype=np.float32)
    sigma = [correlation_mm / s for s in spacing_mm]
    field = ndimage.gaussian_filter(noise, sigma=sigma, mode="wrap")
    std = float(field.std())
    return field / std if std > 0 else field


def zoom_to_shape(field: np.ndarray, shape: tuple[int, int, int], order: int = 1) -> np.ndarray:
    """Resample a ``(z, y, x)`` field to ``shape`` with voxel centres aligned (grid-to-grid, same extent)."""
    factors = [t / s for t, s in zip(shape, field.shape)]
    out = ndimage.zoom(field, factors, order=order, mode="nearest", grid_mode=True)
    if out.shape != tuple(shape):
        pad = [(0, max(0, t - o)) for t, o in zip(shape, out.shape)]
        out = np.pad(out, pad, mode="edge")[: shape[0], : shape[1], : shape[2]]
    return out.astype(field.dtype, copy=False)


def block_mean(volume: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Average non-overlapping blocks of ``factors`` voxels (trailing partial blocks are averaged too)."""
    fz, fy, fx = factors
    nz, ny, nx = volume.shape
    pad = ((0, (-nz) % fz), (0, (-ny) % fy), (0, (-nx) % fx))
    v = volume.astype(np.float32, copy=False)
    if any(p[1] for p in pad):
        v = np.pad(v, pad, mode="edge")
    z, y, x = v.shape
    return v.reshape(z // fz, fz, y // fy, fy, x // fx, fx).mean(axis=(1, 3, 5), dtype=np.float32)
