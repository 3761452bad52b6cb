"""Pathologies of the thorax phantom and how each ties CT appearance to regional function.

Every pathology returns multiplicative maps on the coarse function grid:

=============  ================================  =====================  =====================
kind           CT appearance                     ventilation            perfusion
=============  ================================  =====================  =====================
emphysema      low density (tissue x 0.2-0.6),   reduced (trapping)     reduced (capillary
               upper-zone predominant blobs                             loss)
embolism       wedge-shaped, pleura-based        normal                 0-50 % (occluded
               mosaic: slightly lower density                           arterial subtree)
               (less blood), subtle
fibrosis       reticulation, higher density,     reduced                reduced
               basal and subpleural
tumour         solid soft tissue (lung mask      none                   none
               includes it)
consolidation  airspace filled (~30 HU) with     none                   strongly reduced
               air bronchograms in a territory
obstruction    subtle (slight volume loss)       0-40 % in a bronchial  matched reduction
                                                 subtree                (hypoxic vasoconstr.)
effusion       dependent fluid (not lung),       reduced next to it     reduced next to it
               compressive atelectasis
=============  ================================  =====================  =====================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from core.simulation.shapes import smooth_random_field
from core.simulation.tree import Tree

KINDS = ("emphysema", "embolism", "fibrosis", "tumour", "consolidation", "obstruction", "effusion")
# probability that a case has at least one pathology of each kind
LARGE_EMBOLISM_GENERATIONS = (1, 2)
LARGE_EMBOLISM_SEVERITY = (0.8, 1.0)
KIND_PROBABILITY = {
    "emphysema": 0.3,
    "embolism": 0.35,
    "fibrosis": 0.2,
    "tumour": 0.25,
    "consolidation": 0.12,
    "obstruction": 0.2,
    "effusion": 0.12,
}


@dataclass(frozen=True)
class Pathology:
    """One lesion: its kind, side ('right' or 'left'), severity 0..1 and, for tree-based ones, the segment."""

    kind: str
    side: str
    severity: float
    segment: int = -1
    centre_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    radius_mm: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown pathology kind {self.kind!r}; expected one of {KINDS}")
        if not 0.0 <= self.severity <= 1.0:
            raise ValueError(f"pathology severity must be in [0, 1], got {self.severity}")


@dataclass
class Effects:
    """Multiplicative maps on the function grid (1 = unaffected) and a tumour/effusion list."""

    tissue: np.ndarray
    ventilation: np.ndarray
    perfusion: np.ndarray
    blood: np.ndarray
    kind_map: np.ndarray
    solid: list[Pathology] = field(default_factory=list)


def sample_pathologies(
    rng: np.random.Generator, trees: dict[str, Tree], lung_points: dict[str, np.ndarray]
) -> list[Pathology]:
    """Draw the pathologies of one case; about one case in six is healthy."""
    out: list[Pathology] = []
    for kind in KINDS:
        if rng.random() >= KIND_PROBABILITY[kind]:
            continue
        count = int(rng.integers(1, 4)) if kind in ("embolism", "tumour") else 1
        for _ in range(count):
            side = str(rng.choice(["right", "left"]))
            tree = trees.get(f"artery_{side}")
            if tree is None:
                continue
            out.append(_draw(kind, side, rng, tree, lung_points[side]))
    return out


def draw_large_embolism(rng: np.random.Generator, trees: dict[str, Tree]) -> Pathology:
    """A lobar-size embolus: a generation 1-2 pulmonary artery branch of a random lung, severity 0.8-1.0.

    Drawn emboli (:func:`sample_pathologies`) block generation 3-6 branches, 1/8 to 1/64 of a lung; a
    blocked lobar branch removes about a third to a half of one lung's perfusion, the defect a
    perfusion split must show.  Its CT sign is the same as theirs (mosaic attenuation, less blood).
    """
    sides = [side for side in ("right", "left") if f"artery_{side}" in trees]
    if not sides:
        raise ValueError("the phantom has no pulmonary artery tree to block")
    side = str(rng.choice(sides))
    tree = trees[f"artery_{side}"]
    lo, hi = LARGE_EMBOLISM_GENERATIONS
    candidates = np.flatnonzero((tree.generation >= lo) & (tree.generation <= hi))
    severity = float(rng.uniform(*LARGE_EMBOLISM_SEVERITY))
    return Pathology("embolism", side, severity, segment=int(rng.choice(candidates)))


def _draw(kind: str, side: str, rng: np.random.Generator, tree: Tree, points: np.ndarray) -> Pathology:
    severity = float(rng.uniform(0.4, 1.0))
    if kind in ("embolism", "obstruction", "consolidation"):
        lo, hi = {"embolism": (3, 6), "obstruction": (2, 4), "consolidation": (2, 4)}[kind]
        candidates = np.flatnonzero((tree.generation >= lo) & (tree.generation <= hi))
        return Pathology(kind, side, severity, segment=int(rng.choice(candidates)))
    cz, cy, cx = (float(c) for c in points[rng.integers(len(points))])
    radius = {"tumour": rng.uniform(8.0, 30.0), "emphysema": rng.uniform(40.0, 90.0)}.get(kind, 0.0)
    return Pathology(kind, side, severity, centre_mm=(cz, cy, cx), radius_mm=float(radius))


def apply_pathologies(
    pathologies: list[Pathology],
    coords_mm: tuple[np.ndarray, np.ndarray, np.ndarray],
    lung_side: np.ndarray,
    territory_owner: dict[str, np.ndarray],
    trees: dict[str, Tree],
    landmarks_zb: tuple[float, float, float],
    spacing_mm: tuple[float, float, float],
    rng: np.random.Generator,
) -> Effects:
    """Turn a pathology list into multiplicative effect maps on the function grid.

    Parameters
    ----------
    coords_mm
        broadcastable (z, y, x) coordinates of the function grid (mm, grid-centred).
    lung_side
        ``(nz, ny, nx)`` uint8 0 background, 1 right, 2 left.
    territory_owner
        per side, ``(nz, ny, nx)`` int index of the terminal arterial segment supplying each voxel (-1 outside).
    landmarks_zb
        (apex_z, base_z, cavity_b) in mm.
    """
    shape = lung_side.shape
    eff = Effects(
        tissue=np.ones(shape, np.float32),
        ventilation=np.ones(shape, np.float32),
        perfusion=np.ones(shape, np.float32),
        blood=np.ones(shape, np.float32),
        kind_map=np.zeros(shape, np.uint8),
    )
    z = coords_mm[0]
    apex, base, cav_b = landmarks_zb
    height = (np.clip((apex - z) / (apex - base), 0.0, 1.0)).astype(np.float32)
    for path in pathologies:
        site = _Site(coords_mm, height, cav_b, lung_side == (1 if path.side == "right" else 2), spacing_mm, rng)
        if path.kind in _TERRITORY_EFFECTS:
            tree = trees[f"artery_{path.side}"]
            region = site.side_mask & np.isin(territory_owner[path.side], tree.subtree(path.segment))
            _TERRITORY_EFFECTS[path.kind](eff, path.severity * region.astype(np.float32))
        else:
            region = _LOCAL_EFFECTS[path.kind](eff, path, site)
        eff.kind_map[np.asarray(region, dtype=bool) & (eff.kind_map == 0)] = KINDS.index(path.kind) + 1
    return eff


@dataclass
class _Site:
    """Where a lesion acts: function-grid coordinates, normalised height (0 apex, 1 base), one lung."""

    coords_mm: tuple[np.ndarray, np.ndarray, np.ndarray]
    height: np.ndarray
    cavity_b_mm: float
    side_mask: np.ndarray
    spacing_mm: tuple[float, float, float]
    rng: np.random.Generator


def _embolism(eff: Effects, w: np.ndarray) -> None:
    eff.perfusion *= 1.0 - 0.95 * w
    eff.blood *= 1.0 - 0.9 * w


def _obstruction(eff: Effects, w: np.ndarray) -> None:
    eff.ventilation *= 1.0 - 0.9 * w
    eff.perfusion *= 1.0 - 0.6 * w
    eff.tissue *= 1.0 + 0.15 * w


def _consolidation(eff: Effects, w: np.ndarray) -> None:
    filled = (w > 0).astype(np.float32)  # airspaces filled whatever the severity
    eff.ventilation *= 1.0 - 0.97 * filled
    eff.perfusion *= 1.0 - 0.85 * filled
    eff.tissue *= 1.0 + 5.5 * filled


def _emphysema(eff: Effects, path: Pathology, site: _Site) -> np.ndarray:
    z, y, x = site.coords_mm
    w = _blob_weight(z, y, x, path, site.spacing_mm, site.rng, correlation_mm=6.0) * site.side_mask
    w *= (1.2 - site.height).clip(0.3, 1.0)  # upper-zone predominance
    s = path.severity
    eff.tissue *= 1.0 - 0.75 * s * w
    eff.ventilation *= 1.0 - 0.7 * s * w
    eff.perfusion *= 1.0 - 0.6 * s * w
    return w > 0.3


def _fibrosis(eff: Effects, path: Pathology, site: _Site) -> np.ndarray:
    region, reticular = _fibrosis_weight(site.height, site.side_mask, site.spacing_mm, site.rng)
    s = path.severity
    eff.tissue *= 1.0 + (0.8 + 3.0 * reticular) * s * region
    eff.ventilation *= 1.0 - 0.6 * s * region
    eff.perfusion *= 1.0 - 0.5 * s * region
    return region


def _effusion(eff: Effects, path: Pathology, site: _Site) -> np.ndarray:
    # supine: fluid layers posteriorly under a level surface, deeper towards the base
    y = site.coords_mm[1]
    level = site.cavity_b_mm * (1.0 - 0.9 * path.severity * np.clip((site.height - 0.35) / 0.65, 0.0, 1.0))
    region = site.side_mask & (y > level)
    near = site.side_mask & (y > level - 15.0) & ~region  # compressive atelectasis above the fluid
    eff.tissue *= 1.0 + 1.5 * near
    eff.ventilation *= 1.0 - 0.6 * near
    eff.perfusion *= 1.0 - 0.3 * near
    eff.solid.append(path)
    return region


def _tumour(eff: Effects, path: Pathology, site: _Site) -> np.ndarray:
    """Function removed inside the sphere; the nodule itself is drawn at full CT resolution."""
    z, y, x = site.coords_mm
    cz, cy, cx = path.centre_mm
    region = site.side_mask & (((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) <= path.radius_mm**2)
    eff.ventilation *= ~region
    eff.perfusion *= ~region
    eff.solid.append(path)
    return region


_TERRITORY_EFFECTS = {"embolism": _embolism, "obstruction": _obstruction, "consolidation": _consolidation}
_LOCAL_EFFECTS = {"emphysema": _emphysema, "fibrosis": _fibrosis, "effusion": _effusion, "tumour": _tumour}


def _blob_weight(
    z: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    path: Pathology,
    spacing_mm: tuple[float, float, float],
    rng: np.random.Generator,
    correlation_mm: float,
) -> np.ndarray:
    """Patchy lesion: random blobs (thresholded smooth noise) inside a sphere around the centre."""
    shape = np.broadcast_shapes(z.shape, y.shape, x.shape)
    noise = smooth_random_field(shape, spacing_mm, correlation_mm, rng)
    cz, cy, cx = path.centre_mm
    r = np.sqrt((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) / path.radius_mm
    envelope = np.clip(1.5 - r, 0.0, 1.0)
    return (np.clip((noise + 0.3) / 1.2, 0.0, 1.0) * envelope).astype(np.float32)


def _fibrosis_weight(
    height: np.ndarray,
    side_mask: np.ndarray,
    spacing_mm: tuple[float, float, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Basal, posterior/subpleural region and a reticular (net-like) texture within it."""
    depth = ndimage.distance_transform_edt(side_mask, sampling=spacing_mm)
    region = side_mask & (depth < 25.0) & (height > 0.5)
    noise = smooth_random_field(side_mask.shape, spacing_mm, 3.0, rng)
    reticular = np.exp(-((noise / 0.35) ** 2)).astype(np.float32)
    return region.astype(np.float32), reticular
