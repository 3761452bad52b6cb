"""NEMA IEC body phantom (NEMA NU 2 / IEC 61675-1) on a voxel grid.

Geometry (interior dimensions, mm):

* body cavity: a "D" shape 180 mm long (z) - the anterior half a half-circle of radius 147,
  the posterior part 77 deep, 294 wide with corners rounded to radius 77 (flat posterior
  side, as the phantom lies on the couch); about 9.7 l, the volume quoted in seed 003;
* wall: 3 mm PMMA (+120 HU) around the cavity and at both ends;
* lung insert: a 50 mm diameter cylinder through the whole length, centred on the axis of
  the 147 mm arc, low-density filling of 0.30 g/ml (-700 HU), no activity;
* six fillable spheres of inner diameter 10, 13, 17, 22, 28 and 37 mm, centres in the
  transverse plane 70 mm below the lid (the superior, +z, end) on a circle of radius 57.2 mm
  around the lung insert (seed 003 rounds this to 5 cm), 60 degrees apart, the 10 mm sphere
  at 0 degrees (patient left, +x) and the others counter-clockwise towards anterior (-y).
  Sphere walls (about 1 mm glass) are neglected.

The phantom's lung-insert axis is placed at ``centre_lps_mm`` (default: the grid centre),
with the centre of the cavity's length there too.  The sphere-to-background ratio of seed 003
is 12:1; the default background of 10 kBq/ml (97 MBq in total) gives about 3 Mcounts in a
60-view, 20 s/view acquisition with the LEHR defaults of :mod:`core.simulation.spect`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.errors import SimulationParameterError
from core.geometry import Grid
from core.simulation.spect.attenuation import hu_to_mu_per_mm

logger = logging.getLogger(__name__)

SPHERE_DIAMETERS_MM = (10.0, 13.0, 17.0, 22.0, 28.0, 37.0)
SPHERE_RING_RADIUS_MM = 57.2
SPHERE_PLANE_FROM_LID_MM = 70.0
ARC_RADIUS_MM = 147.0
CORNER_RADIUS_MM = 77.0
POSTERIOR_DEPTH_MM = 77.0
CAVITY_LENGTH_MM = 180.0
WALL_MM = 3.0
LUNG_INSERT_DIAMETER_MM = 50.0
HU_AIR, HU_PMMA, HU_WATER, HU_LUNG_INSERT = -1000.0, 120.0, 0.0, -700.0


@dataclass
class NemaPhantom:
    """A NEMA IEC body phantom rasterised on a grid (all arrays ``grid.shape``, ``(z, y, x)``).

    Attributes
    ----------
    grid
        The grid of every array.
    activity_kbq_per_ml
        float32 activity concentration, kBq/ml.
    hu
        float32 CT numbers, HU (air, PMMA wall, water, lung insert).
    mu_per_mm
        float32 linear attenuation coefficients at 140.5 keV, 1/mm.
    sphere_masks
        Inner diameter in mm -> bool mask of the sphere (voxels at least half inside).
    background_mask
        bool: active background at least ``background_margin_mm`` from walls, lung insert and spheres.
    cavity_mask
        bool: the water-filled cavity including spheres and lung insert (voxels at least half inside).
    lung_mask
        bool: the lung insert (voxels at least half inside).
    """

    grid: Grid
    activity_kbq_per_ml: np.ndarray
    hu: np.ndarray
    mu_per_mm: np.ndarray
    sphere_masks: dict[float, np.ndarray]
    background_mask: np.ndarray
    cavity_mask: np.ndarray
    lung_mask: np.ndarray

    def activity_mbq(self) -> np.ndarray:
        """float32 activity per voxel, MBq (concentration x voxel volume)."""
        return (self.activity_kbq_per_ml * np.float32(self.grid.voxel_volume_ml * 1.0e-3)).astype(np.float32)


def nema_iec_body_phantom(
    grid: Grid,
    background_kbq_per_ml: float = 10.0,
    sphere_to_background: float = 12.0,
    centre_lps_mm: tuple[float, float, float] | None = None,
    oversample: int = 1,
    background_margin_mm: float = 15.0,
) -> NemaPhantom:
    """Rasterise the NEMA IEC body phantom.

    Parameters
    ----------
    grid
        Target grid (any spacing; e.g. a CT grid or the SPECT grid).
    background_kbq_per_ml
        Background activity concentration, kBq/ml.
    sphere_to_background
        Concentration ratio of the spheres to the background (12 in seed 003).
    centre_lps_mm
        LPS ``(x, y, z)`` of the lung-insert axis at mid-length; default the grid centre.
    oversample
        Sub-samples per voxel edge for partial-volume fractions (1 = voxel-centre test).
    background_margin_mm
        Clearance of :attr:`NemaPhantom.background_mask` from walls, insert and spheres, mm.

    Returns
    -------
    NemaPhantom
    """
    if background_kbq_per_ml < 0 or sphere_to_background < 0:
        raise SimulationParameterError("background_kbq_per_ml and sphere_to_background must be >= 0")
    if oversample < 1:
        raise SimulationParameterError(f"oversample must be >= 1, got {oversample}")
    z, y, x = _relative_axes(grid, centre_lps_mm)
    box = _box(
        z,
        y,
        x,
        (
            0.5 * CAVITY_LENGTH_MM + WALL_MM,
            -ARC_RADIUS_MM - WALL_MM,
            POSTERIOR_DEPTH_MM + WALL_MM,
            ARC_RADIUS_MM + WALL_MM,
        ),
        grid.spacing_mm,
    )
    zb, yb, xb = z[box[0]], y[:, box[1]], x[:, :, box[2]]
    outer = _fraction(lambda a, b, c: _cavity_inside(a, b, c, -WALL_MM), zb, yb, xb, grid.spacing_mm, oversample)
    cavity = _fraction(lambda a, b, c: _cavity_inside(a, b, c, 0.0), zb, yb, xb, grid.spacing_mm, oversample)
    lung = _fraction(_lung_inside, zb, yb, xb, grid.spacing_mm, oversample) * cavity
    sphere_masks, sphere_total = {}, np.zeros_like(cavity)
    for d, (cz, cy, cx) in sphere_centres_mm().items():
        r = 0.5 * d
        sub = _box(zb - cz, yb - cy, xb - cx, (r, -r, r, r), grid.spacing_mm)
        fraction = np.zeros_like(cavity)
        fraction[sub] = _fraction(
            _sphere_inside((cz, cy, cx), r), zb[sub[0]], yb[:, sub[1]], xb[:, :, sub[2]], grid.spacing_mm, oversample
        )
        sphere_total += fraction
        sphere_masks[d] = _embed(fraction >= 0.5, box, grid.shape, False)
    water = np.clip(cavity - lung - sphere_total, 0.0, 1.0)
    hu_box = HU_AIR * (1 - outer) + HU_PMMA * (outer - cavity) + HU_LUNG_INSERT * lung + HU_WATER * (cavity - lung)
    activity_box = background_kbq_per_ml * (water + sphere_to_background * sphere_total)
    hu = _embed(hu_box.astype(np.float32), box, grid.shape, np.float32(HU_AIR))
    logger.debug("NEMA phantom: cavity %.0f ml", float(cavity.sum()) * grid.voxel_volume_ml)
    return NemaPhantom(
        grid=grid,
        activity_kbq_per_ml=_embed(activity_box.astype(np.float32), box, grid.shape, np.float32(0.0)),
        hu=hu,
        mu_per_mm=hu_to_mu_per_mm(hu),
        sphere_masks=sphere_masks,
        background_mask=_embed(_background_region(zb, yb, xb, background_margin_mm), box, grid.shape, False),
        cavity_mask=_embed(cavity >= 0.5, box, grid.shape, False),
        lung_mask=_embed(lung >= 0.5, box, grid.shape, False),
    )


def sphere_centres_mm() -> dict[float, tuple[float, float, float]]:
    """Sphere centres ``(z, y, x)`` in mm relative to the phantom centre, keyed by inner diameter."""
    z = 0.5 * CAVITY_LENGTH_MM - SPHERE_PLANE_FROM_LID_MM
    centres = {}
    for i, d in enumerate(SPHERE_DIAMETERS_MM):
        angle = np.deg2rad(60.0 * i)
        centres[d] = (z, -SPHERE_RING_RADIUS_MM * float(np.sin(angle)), SPHERE_RING_RADIUS_MM * float(np.cos(angle)))
    return centres


def _relative_axes(
    grid: Grid, centre_lps_mm: tuple[float, float, float] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel-centre coordinates (mm) relative to the phantom centre, shaped ``(z,1,1)``, ``(1,y,1)``, ``(1,1,x)``."""
    axes = {a: grid.axis_mm(a).astype(np.float64) for a in ("x", "y", "z")}
    if centre_lps_mm is None:
        centre = {a: 0.5 * (v[0] + v[-1]) for a, v in axes.items()}
    else:
        centre = dict(zip(("x", "y", "z"), centre_lps_mm, strict=True))
    return (
        (axes["z"] - centre["z"]).reshape(-1, 1, 1),
        (axes["y"] - centre["y"]).reshape(1, -1, 1),
        (axes["x"] - centre["x"]).reshape(1, 1, -1),
    )


def _d_shape_inside(y: np.ndarray, x: np.ndarray, offset_mm: float) -> np.ndarray:
    """Inside the cavity outline moved inwards by ``offset_mm`` (outwards if negative); broadcast bool."""
    arc = ARC_RADIUS_MM - offset_mm
    corner = CORNER_RADIUS_MM - offset_mm
    half_flat = ARC_RADIUS_MM - CORNER_RADIUS_MM
    anterior = (y <= 0) & (x**2 + y**2 <= arc**2)
    depth = np.clip(corner**2 - np.clip(y, 0.0, None) ** 2, 0.0, None)
    posterior = (y > 0) & (y <= POSTERIOR_DEPTH_MM - offset_mm) & (np.abs(x) <= half_flat + np.sqrt(depth))
    return anterior | posterior


def _cavity_inside(z: np.ndarray, y: np.ndarray, x: np.ndarray, offset_mm: float) -> np.ndarray:
    """Inside the cavity (length and outline) moved inwards by ``offset_mm``."""
    return (np.abs(z) <= 0.5 * CAVITY_LENGTH_MM - offset_mm) & _d_shape_inside(y, x, offset_mm)


def _lung_inside(z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Inside the infinitely long lung-insert cylinder (clipped to the cavity by the caller)."""
    return np.broadcast_to(
        x**2 + y**2 <= (0.5 * LUNG_INSERT_DIAMETER_MM) ** 2, np.broadcast_shapes(z.shape, y.shape, x.shape)
    )


def _sphere_inside(centre: tuple[float, float, float], radius: float) -> Callable[..., np.ndarray]:
    """Membership function of a sphere of ``radius`` mm at ``centre`` ``(z, y, x)``."""
    cz, cy, cx = centre
    return lambda z, y, x: (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= radius**2


def _fraction(
    inside: Callable[..., np.ndarray],
    z: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    spacing_mm: tuple[float, float, float],
    oversample: int,
) -> np.ndarray:
    """float32 volume fraction of a compartment in each voxel, from ``oversample^3`` sub-samples."""
    offsets = (np.arange(oversample) + 0.5) / oversample - 0.5
    dz, dy, dx = spacing_mm
    total = np.zeros((z.shape[0], y.shape[1], x.shape[2]), dtype=np.float32)
    for oz in offsets:
        for oy in offsets:
            for ox in offsets:
                total += inside(z + oz * dz, y + oy * dy, x + ox * dx)
    return total / np.float32(oversample**3)


def _box(
    z: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    extent: tuple[float, float, float, float],
    spacing_mm: tuple[float, float, float],
) -> tuple[slice, slice, slice]:
    """Index slices of the voxels within one voxel of ``|z| <= ez``, ``y0 <= y <= y1``, ``|x| <= ex``."""
    ez, y0, y1, ex = extent
    dz, dy, dx = spacing_mm
    return (
        _span(np.abs(z.ravel()) <= ez + dz),
        _span((y.ravel() >= y0 - dy) & (y.ravel() <= y1 + dy)),
        _span(np.abs(x.ravel()) <= ex + dx),
    )


def _span(selected: np.ndarray) -> slice:
    """Smallest slice covering the True entries (empty slice if none)."""
    index = np.nonzero(selected)[0]
    return slice(int(index[0]), int(index[-1]) + 1) if index.size else slice(0, 0)


def _embed(
    values: np.ndarray, box: tuple[slice, slice, slice], shape: tuple[int, int, int], fill: object
) -> np.ndarray:
    """Full-grid array holding ``values`` in ``box`` and ``fill`` elsewhere."""
    out = np.full(shape, fill, dtype=values.dtype)
    out[box] = values
    return out


def _background_region(z: np.ndarray, y: np.ndarray, x: np.ndarray, margin_mm: float) -> np.ndarray:
    """Background voxels (centres) at least ``margin_mm`` from walls, lung insert and spheres."""
    half = 0.5 * CAVITY_LENGTH_MM
    region = (np.abs(z) <= half - margin_mm) & _d_shape_inside(y, x, margin_mm)
    region = region & (x**2 + y**2 > (0.5 * LUNG_INSERT_DIAMETER_MM + margin_mm) ** 2)
    for d, (cz, cy, cx) in sphere_centres_mm().items():
        region = region & ((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 > (0.5 * d + margin_mm) ** 2)
    return np.broadcast_to(region, (z.shape[0], y.shape[1], x.shape[2])).copy()
