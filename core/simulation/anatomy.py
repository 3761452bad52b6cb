"""Digital thorax anatomy: tissue labels, lung masks and the bronchovascular trees.

Everything is built analytically on the CT grid (supine, head first), so any matrix and
spacing works: clinical 512x512 at 0.6-0.9 mm with 1-2.5 mm slices, or small test grids.
Cross-sections are ellipses whose size follows the height ``z``; a smooth random warp
makes each lung's outline unique.  The lungs are the thoracic cavity minus the
mediastinum, the heart, the spine and everything below the diaphragm domes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.geometry import Grid
from core.labels import LungLabel, Tissue
from core.simulation.anatomy_params import ThoraxParams
from core.simulation.shapes import centred_axes_mm, ellipse_inside, paint_capsules, smooth_random_field, zoom_to_shape
from core.simulation.tree import Tree, TreeParams, grow_tree

RIB_PITCH_MM = 26.0
RIB_HEIGHT_MM = 10.0
RIB_DROP_MM = 55.0
VERTEBRA_PITCH_MM = 28.0
DISC_MM = 6.0
BACK_FLATTENING = 0.85


@dataclass
class Landmarks:
    """Heights (z, mm relative to the grid centre) and cavity size used by the other modules."""

    apex_z: float
    base_z: float
    carina_z: float
    cavity_a_mm: float
    cavity_b_mm: float
    heart_centre_mm: tuple[float, float, float]


@dataclass
class Anatomy:
    """Result of :func:`build_anatomy`, all arrays on the CT grid ``(z, y, x)``."""

    labels: np.ndarray
    lung_mask: np.ndarray
    vessel_fraction: np.ndarray
    airway_fraction: np.ndarray
    trees: dict[str, Tree]
    landmarks: Landmarks


def build_anatomy(grid: Grid, params: ThoraxParams, rng: np.random.Generator) -> Anatomy:
    """Build the tissue label map and lung masks of one phantom case on ``grid``."""
    z, y, x = centred_axes_mm(grid)
    lm = _landmarks(grid, params)
    labels = np.zeros(grid.shape, dtype=np.uint8)
    warp = _warp_field(grid, params, rng)
    _paint_body(labels, z, y, x, params, lm)
    cavity = _cavity(z, y, x, lm, warp)
    labels[cavity] = Tissue.MEDIASTINUM
    lung_mask = _lungs(z, y, x, params, lm, cavity, warp)
    labels[lung_mask > 0] = Tissue.LUNG
    _paint_mediastinum(labels, grid, z, y, x, params, lm)
    _paint_abdomen(labels, z, y, x, params, lm, cavity)
    _paint_skeleton(labels, z, y, x, params, lm)
    lung_mask[labels != Tissue.LUNG] = LungLabel.BACKGROUND
    trees = _grow_trees(grid, lung_mask, lm, rng)
    vessel_fraction, airway_fraction = _paint_trees(grid, trees, lung_mask, labels)
    return Anatomy(labels, lung_mask, vessel_fraction, airway_fraction, trees, lm)


def _landmarks(grid: Grid, p: ThoraxParams) -> Landmarks:
    z_top = (grid.shape[0] - 1) * grid.spacing_mm[0] / 2.0
    apex = z_top - p.apex_below_top_mm
    base = apex - p.lung_height_mm
    wall = p.fat_mm + p.muscle_mm + 10.0
    return Landmarks(
        apex_z=apex,
        base_z=base,
        carina_z=apex - 0.36 * p.lung_height_mm,
        cavity_a_mm=p.body_width_mm / 2.0 - wall,
        cavity_b_mm=p.body_depth_mm / 2.0 - wall,
        heart_centre_mm=(base + 0.3 * p.lung_height_mm, -0.2 * (p.body_depth_mm / 2.0 - wall), 28.0),
    )


def _warp_field(grid: Grid, p: ThoraxParams, rng: np.random.Generator) -> np.ndarray:
    """Smooth random outline perturbation (mm), computed coarse and upsampled."""
    coarse_shape = tuple(max(4, int(np.ceil(n * s / 12.0))) for n, s in zip(grid.shape, grid.spacing_mm))
    coarse_spacing = tuple(n * s / c for n, s, c in zip(grid.shape, grid.spacing_mm, coarse_shape))
    field = smooth_random_field(coarse_shape, coarse_spacing, 45.0, rng) * p.shape_warp_mm
    return zoom_to_shape(field, grid.shape)


def _paint_body(
    labels: np.ndarray, z: np.ndarray, y: np.ndarray, x: np.ndarray, p: ThoraxParams, lm: Landmarks
) -> None:
    a, b = p.body_width_mm / 2.0, p.body_depth_mm / 2.0
    # flatter back on the table: stretch the posterior half of the ellipse by 1 / BACK_FLATTENING
    yb = np.where(y > 0, y * BACK_FLATTENING, y)
    body = ellipse_inside(yb, x, 0.0, 0.0, b, a) <= 1.0
    body = np.broadcast_to(body, labels.shape)
    labels[body] = Tissue.FAT
    inner = ellipse_inside(yb, x, 0.0, 0.0, b - p.fat_mm, a - p.fat_mm) <= 1.0
    labels[np.broadcast_to(inner, labels.shape)] = Tissue.MUSCLE
    if p.table:
        top = b / BACK_FLATTENING + 1.0  # the patient lies on the table
        table = (y >= top) & (y <= top + 12.0) & (np.abs(x) <= 0.9 * a)
        labels[np.broadcast_to(table, labels.shape)] = Tissue.TABLE


def _taper(z: np.ndarray, lm: Landmarks) -> np.ndarray:
    """Cavity scale 0..1 along z: conical apex, full size below it."""
    height = lm.apex_z - lm.base_z
    cone = np.sqrt(np.clip((lm.apex_z + 12.0 - z) / (0.28 * height), 0.0, 1.0))
    widening = 0.86 + 0.14 * np.clip((lm.apex_z - z) / height, 0.0, 1.0)
    return (cone * widening).astype(np.float32)


def _cavity(z: np.ndarray, y: np.ndarray, x: np.ndarray, lm: Landmarks, warp: np.ndarray) -> np.ndarray:
    s = np.maximum(_taper(z, lm), 0.35)
    r2 = ellipse_inside(y, x, 0.0, 0.0, lm.cavity_b_mm * s, lm.cavity_a_mm * s)
    inside = np.sqrt(r2) * lm.cavity_a_mm <= lm.cavity_a_mm + warp * 0.5
    return inside & (z <= lm.apex_z + 12.0)


def _diaphragm_z(y: np.ndarray, x: np.ndarray, p: ThoraxParams, lm: Landmarks) -> np.ndarray:
    """Height of the diaphragm surface: two domes, the right one higher, lowest in the posterior recesses."""
    out = []
    for side, extra in ((-1.0, p.right_dome_extra_mm), (1.0, 0.0)):
        cx = side * 0.45 * lm.cavity_a_mm
        r2 = ((x - cx) / (0.6 * lm.cavity_a_mm)) ** 2 + ((y + 0.1 * lm.cavity_b_mm) / (0.9 * lm.cavity_b_mm)) ** 2
        out.append(lm.base_z + (p.dome_height_mm + extra) * np.clip(1.0 - r2, 0.0, 1.0) - 12.0 * y / lm.cavity_b_mm)
    return np.maximum(out[0], out[1]).astype(np.float32)


def _apex_z(y: np.ndarray, x: np.ndarray, lm: Landmarks) -> np.ndarray:
    """Dome-shaped lung apices, one per side, slightly posterior."""
    r2 = ((np.abs(x) - 0.45 * lm.cavity_a_mm) / (0.55 * lm.cavity_a_mm)) ** 2 + (
        (y - 0.15 * lm.cavity_b_mm) / lm.cavity_b_mm
    ) ** 2
    return (lm.apex_z - 70.0 * r2).astype(np.float32)


def _mediastinum_half_width(y: np.ndarray, p: ThoraxParams, lm: Landmarks) -> np.ndarray:
    v = np.clip((y + lm.cavity_b_mm) / (2.0 * lm.cavity_b_mm), 0.0, 1.0)
    return np.interp(v, [0.0, 0.12, 0.45, 0.8, 1.0], [p.anterior_gap_mm / 2.0, 10.0, 20.0, 18.0, 40.0]).astype(
        np.float32
    )


def _heart_r2(z: np.ndarray, y: np.ndarray, x: np.ndarray, p: ThoraxParams, lm: Landmarks) -> np.ndarray:
    hz, hy, hx = lm.heart_centre_mm
    c, s = np.cos(np.deg2rad(35.0)), np.sin(np.deg2rad(35.0))
    u = (x - hx) * c - (y - hy) * s
    w = (x - hx) * s + (y - hy) * c
    k = p.heart_scale
    return (u / (62.0 * k)) ** 2 + (w / (48.0 * k)) ** 2 + ((z - hz) / (58.0 * k)) ** 2


def _lungs(
    z: np.ndarray, y: np.ndarray, x: np.ndarray, p: ThoraxParams, lm: Landmarks, cavity: np.ndarray, warp: np.ndarray
) -> np.ndarray:
    half = _mediastinum_half_width(y, p, lm)
    xm = 4.0
    lung = cavity & (z > _diaphragm_z(y, x, p, lm)) & (_heart_r2(z, y, x, p, lm) > 1.0)
    lung &= z <= _apex_z(y, x, lm)
    spine = ellipse_inside(y, x, lm.cavity_b_mm - 12.0, 0.0, 26.0, 28.0) <= 1.0
    lung &= ~spine
    mask = np.zeros(lung.shape, dtype=np.uint8)
    right = lung & (x - xm < -half - 0.3 * warp.clip(0))
    left = lung & (x - xm > half + 0.3 * warp.clip(0))
    # each lung has its own lateral extent scale
    for sel, scale, label in (
        (right, p.right_lung_scale, LungLabel.RIGHT_LUNG),
        (left, p.left_lung_scale, LungLabel.LEFT_LUNG),
    ):
        shrink = ellipse_inside(y, x, 0.0, 0.0, lm.cavity_b_mm, lm.cavity_a_mm * scale) <= 1.02
        mask[sel & shrink] = label
    return mask


def _paint_mediastinum(
    labels: np.ndarray, grid: Grid, z: np.ndarray, y: np.ndarray, x: np.ndarray, p: ThoraxParams, lm: Landmarks
) -> None:
    heart = _heart_r2(z, y, x, p, lm) <= 1.0
    labels[heart & (labels != Tissue.FAT) & (labels != Tissue.MUSCLE)] = Tissue.HEART
    b = lm.cavity_b_mm
    top = lm.apex_z + 60.0
    arch_z = lm.carina_z + 35.0
    hz = lm.heart_centre_mm[0]
    tubes = {
        Tissue.GREAT_VESSEL: [
            ((hz + 30.0, -0.25 * b, -8.0), (arch_z, -0.15 * b, -8.0), 14.0),  # ascending aorta
            ((arch_z, -0.15 * b, -8.0), (arch_z + 10.0, 0.3 * b, 12.0), 12.0),  # arch
            ((arch_z + 10.0, 0.3 * b, 12.0), (arch_z, b - 35.0, 22.0), 12.0),
            ((arch_z, b - 35.0, 22.0), (lm.base_z - 80.0, b - 40.0, 12.0), 11.0),  # descending aorta
            ((hz + 10.0, -0.35 * b, -30.0), (top, -0.2 * b, -30.0), 10.0),  # superior vena cava
            ((hz + 35.0, -0.4 * b, 10.0), (lm.carina_z - 5.0, -0.1 * b, 14.0), 13.0),  # pulmonary trunk
        ],
        Tissue.OESOPHAGUS: [((top, 0.55 * b, 3.0), (lm.base_z - 30.0, 0.5 * b, 12.0), 8.0)],
    }
    for tissue, segs in tubes.items():
        frac = np.zeros(labels.shape, dtype=np.float32)
        paint_capsules(frac, grid, *_segments(segs))
        labels[(frac >= 0.5) & (labels == Tissue.MEDIASTINUM)] = tissue
    _paint_central_airways(labels, grid, lm)


def _segments(segs: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    starts = np.asarray([s[0] for s in segs], dtype=np.float32)
    ends = np.asarray([s[1] for s in segs], dtype=np.float32)
    radii = np.asarray([s[2] for s in segs], dtype=np.float32)
    return starts, ends, radii


def central_airway_segments(
    lm: Landmarks,
) -> list[tuple[tuple[float, float, float], tuple[float, float, float], float]]:
    """Trachea and main bronchi as (start, end, radius) in (z, y, x) mm: right bronchus short and steep."""
    y_t = 0.2 * lm.cavity_b_mm
    carina = (lm.carina_z, y_t, 0.0)
    return [
        ((lm.apex_z + 80.0, y_t - 10.0, 0.0), carina, 9.0),
        (carina, (lm.carina_z - 24.0, y_t + 5.0, -22.0), 7.0),
        (carina, (lm.carina_z - 32.0, y_t + 8.0, 42.0), 6.0),
    ]


def _paint_central_airways(labels: np.ndarray, grid: Grid, lm: Landmarks) -> None:
    starts, ends, radii = _segments(central_airway_segments(lm))
    wall = np.zeros(labels.shape, dtype=np.float32)
    paint_capsules(wall, grid, starts, ends, radii + 1.8)
    lumen = np.zeros(labels.shape, dtype=np.float32)
    paint_capsules(lumen, grid, starts, ends, radii)
    soft = np.isin(labels, [Tissue.MEDIASTINUM, Tissue.LUNG, Tissue.MUSCLE, Tissue.FAT, Tissue.GREAT_VESSEL])
    labels[(wall >= 0.5) & soft] = Tissue.CARTILAGE
    labels[lumen >= 0.5] = Tissue.AIRWAY


def _paint_abdomen(
    labels: np.ndarray, z: np.ndarray, y: np.ndarray, x: np.ndarray, p: ThoraxParams, lm: Landmarks, cavity: np.ndarray
) -> None:
    below = (z <= _diaphragm_z(y, x, p, lm)) & np.isin(labels, [Tissue.MEDIASTINUM, Tissue.MUSCLE])
    inner = ellipse_inside(y, x, 0.0, 0.0, lm.cavity_b_mm + 5.0, lm.cavity_a_mm + 5.0) <= 1.0
    abdomen = below & inner
    labels[abdomen] = Tissue.MUSCLE
    base = lm.base_z
    organs = [
        (
            Tissue.LIVER,
            (base - 30.0, 0.0, -0.35 * lm.cavity_a_mm),
            (95.0, 0.85 * lm.cavity_b_mm, 0.65 * lm.cavity_a_mm),
        ),
        (Tissue.SPLEEN, (base - 20.0, 0.45 * lm.cavity_b_mm, 0.65 * lm.cavity_a_mm), (55.0, 35.0, 25.0)),
        (Tissue.STOMACH, (base - 10.0, -0.2 * lm.cavity_b_mm, 0.4 * lm.cavity_a_mm), (50.0, 45.0, 40.0)),
        (Tissue.KIDNEY, (base - 110.0, 0.55 * lm.cavity_b_mm, -70.0), (55.0, 25.0, 28.0)),
        (Tissue.KIDNEY, (base - 120.0, 0.55 * lm.cavity_b_mm, 70.0), (55.0, 25.0, 28.0)),
        (Tissue.BLADDER, (base - 240.0, -0.3 * lm.cavity_b_mm, 0.0), (35.0, 40.0, 45.0)),
    ]
    for tissue, (cz, cy, cx), (rz, ry, rx) in organs:
        organ = ((z - cz) / rz) ** 2 + ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0
        labels[organ & abdomen] = tissue


def _paint_skeleton(
    labels: np.ndarray, z: np.ndarray, y: np.ndarray, x: np.ndarray, p: ThoraxParams, lm: Landmarks
) -> None:
    a, b = lm.cavity_a_mm, lm.cavity_b_mm
    soft = np.isin(labels, [Tissue.MUSCLE, Tissue.FAT, Tissue.MEDIASTINUM])
    # ribs: a 10 mm shell outside the cavity, sloping down anteriorly, cartilage near the sternum
    s = np.maximum(_taper(z, lm), 0.35)
    rho = np.sqrt(ellipse_inside(y, x, 0.0, 0.0, b * s, a * s))
    shell = (rho >= 1.0) & (rho <= 1.0 + 11.0 / a)
    yn = np.clip(y / b, -1.0, 1.0)
    phase = (z - lm.apex_z + RIB_DROP_MM * (1.0 - yn) / 2.0) / RIB_PITCH_MM
    in_band = np.abs(phase - np.round(phase)) * RIB_PITCH_MM <= RIB_HEIGHT_MM / 2.0
    rib_z = (z <= lm.apex_z + 5.0) & (z >= lm.base_z - 60.0)
    ribs = shell & in_band & rib_z & soft
    cartilage = ribs & (yn < -0.55) & (np.abs(x) < 0.45 * a)
    labels[ribs & ~cartilage] = Tissue.CORTICAL_BONE
    core = (rho >= 1.0 + 3.0 / a) & (rho <= 1.0 + 8.0 / a) & (np.abs(phase - np.round(phase)) * RIB_PITCH_MM <= 2.5)
    labels[ribs & ~cartilage & core] = Tissue.MARROW
    labels[cartilage] = Tissue.CARTILAGE
    sternum = (np.abs(x) < 18.0) & (y < -b + 2.0) & (y > -b - 12.0) & (z < lm.apex_z - 20.0) & (z > lm.base_z + 30.0)
    labels[sternum & soft] = Tissue.CORTICAL_BONE
    labels[sternum & soft & (np.abs(x) < 14.0) & (y < -b - 2.0) & (y > -b - 9.0)] = Tissue.MARROW
    _paint_spine(labels, z, y, x, lm)


def _paint_spine(labels: np.ndarray, z: np.ndarray, y: np.ndarray, x: np.ndarray, lm: Landmarks) -> None:
    yv = lm.cavity_b_mm - 12.0
    body_r2 = ellipse_inside(y, x, yv, 0.0, 17.0, 20.0)
    canal_r2 = ellipse_inside(y, x, yv + 27.0, 0.0, 8.0, 8.0)
    arch_r2 = ellipse_inside(y, x, yv + 30.0, 0.0, 16.0, 15.0)
    process = (np.abs(x) < 4.0) & (y > yv + 30.0) & (y < yv + 55.0)
    disc = np.abs(((z - lm.apex_z) / VERTEBRA_PITCH_MM) % 1.0 - 0.5) * VERTEBRA_PITCH_MM < DISC_MM / 2.0
    labels[np.broadcast_to((arch_r2 <= 1.0) | process, labels.shape)] = Tissue.CORTICAL_BONE
    labels[np.broadcast_to(canal_r2 <= 1.0, labels.shape)] = Tissue.SPINAL_CANAL
    body = np.broadcast_to(body_r2 <= 1.0, labels.shape)
    labels[body] = Tissue.CORTICAL_BONE
    labels[np.broadcast_to(body_r2 <= 0.72, labels.shape)] = Tissue.MARROW
    labels[body & disc] = Tissue.CARTILAGE


def _grow_trees(grid: Grid, lung_mask: np.ndarray, lm: Landmarks, rng: np.random.Generator) -> dict[str, Tree]:
    """Arterial (with accompanying bronchi) and venous trees for each lung, from the hila."""
    z, y, x = centred_axes_mm(grid)
    airways = central_airway_segments(lm)
    trees: dict[str, Tree] = {}
    for name, label, bronchus in (
        ("right", LungLabel.RIGHT_LUNG, airways[1]),
        ("left", LungLabel.LEFT_LUNG, airways[2]),
    ):
        idx = np.flatnonzero(lung_mask.ravel() == label)
        if idx.size < 50:
            continue
        pick = rng.choice(idx, size=min(2400, idx.size), replace=False)
        kz, ky, kx = np.unravel_index(pick, grid.shape)
        jitter = rng.uniform(-0.5, 0.5, (pick.size, 3)) * np.asarray(grid.spacing_mm)
        pts = np.stack([z.ravel()[kz], y.ravel()[ky], x.ravel()[kx]], axis=1) + jitter
        hilum = np.asarray(bronchus[1], dtype=np.float32)
        root_start = np.asarray(bronchus[0], dtype=np.float32) * 0.5 + hilum * 0.5
        trees[f"artery_{name}"] = grow_tree(root_start, hilum, pts, TreeParams(root_radius_mm=7.5))
        vein_hilum = hilum + np.asarray([-35.0, -20.0, 0.0], dtype=np.float32)
        vein_pts = pts[rng.permutation(len(pts))[: len(pts) // 2]]
        trees[f"vein_{name}"] = grow_tree(
            vein_hilum + np.asarray([0.0, 0.0, -np.sign(hilum[2]) * 25.0], dtype=np.float32),
            vein_hilum,
            vein_pts,
            TreeParams(root_radius_mm=6.5, min_points=3),
        )
    return trees


def _paint_trees(
    grid: Grid, trees: dict[str, Tree], lung_mask: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise vessels (all generations) and bronchi (larger generations) as partial-volume fractions."""
    vessels = np.zeros(grid.shape, dtype=np.float32)
    airways = np.zeros(grid.shape, dtype=np.float32)
    for name, tree in trees.items():
        paint_capsules(vessels, grid, tree.starts_mm, tree.ends_mm, tree.radii_mm)
        if name.startswith("artery"):
            big = tree.radii_mm >= 1.5
            offset = _perpendicular_offsets(tree)[big] * (tree.radii_mm[big, None] * 1.9 + 1.0)
            paint_capsules(
                airways, grid, tree.starts_mm[big] + offset, tree.ends_mm[big] + offset, tree.radii_mm[big] * 0.8
            )
    inside = lung_mask > 0
    vessels[~inside] = 0.0
    airways[~inside] = 0.0
    vessel_label = inside & (vessels >= 0.5)
    labels[vessel_label] = Tissue.PULMONARY_VESSEL
    return vessels, airways


def _perpendicular_offsets(tree: Tree) -> np.ndarray:
    d = tree.ends_mm - tree.starts_mm
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-6
    ref = np.where(np.abs(d[:, :1]) > 0.9, np.asarray([[0.0, 1.0, 0.0]]), np.asarray([[1.0, 0.0, 0.0]]))
    perp = np.cross(d, ref)
    return (perp / (np.linalg.norm(perp, axis=1, keepdims=True) + 1e-6)).astype(np.float32)
