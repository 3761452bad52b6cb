"""The digital thorax phantom: anatomy, CT, lung function and pathology of one case.

``make_thorax_phantom(grid, seed)`` is deterministic in ``(grid, seed, params)``.  The CT
lives on ``grid``; perfusion and ventilation live on a coarser *function grid* (blocks
of CT voxels of about 2.5-3 mm), which is what SPECT can resolve and what the CT
ventilation calibration is measured on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from core.geometry import Grid
from core.labels import LungLabel, Tissue
from core.simulation.anatomy import Anatomy, build_anatomy
from core.simulation.anatomy_params import ThoraxParams, sample_thorax_params
from core.simulation.ct import add_ct_noise, lung_hu, tissue_lut, to_stored_hu
from core.simulation.pathology import (
    KINDS,
    Effects,
    Pathology,
    apply_pathologies,
    draw_large_embolism,
    sample_pathologies,
)
from core.simulation.physiology import PhysiologyParams, base_function, sample_physiology_params
from core.simulation.shapes import block_mean, paint_capsules, zoom_to_shape

logger = logging.getLogger(__name__)

LARGE_EMBOLISM_STREAM = 11
"""Second seed word of the random stream that decides and draws the extra lobar embolus."""
FUNCTION_VOXEL_MM = 2.8


@dataclass
class ThoraxPhantom:
    """One phantom case.

    Attributes
    ----------
    grid
        CT grid.
    hu
        ``(nz, ny, nx)`` int16 CT numbers with noise.
    labels
        ``(nz, ny, nx)`` uint8 :class:`core.labels.Tissue`.
    lung_mask
        ``(nz, ny, nx)`` uint8 :class:`core.labels.LungLabel`; includes intrapulmonary vessels and dense
        pathology (tumour, consolidation, fibrosis), excludes trachea, main bronchi and effusion.
    function_grid
        Grid of ``perfusion``/``ventilation`` (blocks of CT voxels).
    perfusion, ventilation
        ``(fz, fy, fx)`` float32 true regional function per voxel, relative units (mean 1 in the lungs).
    function_lung_mask
        ``(fz, fy, fx)`` uint8 lung side on the function grid.
    pathology_map
        ``(fz, fy, fx)`` uint8, 0 none, else ``KINDS.index(kind) + 1``.
    perfusion_given_ct, ventilation_given_ct
        ``(fz, fy, fx)`` float32, the part of ``perfusion``/``ventilation`` a CT-only predictor can
        know at best (:class:`core.simulation.physiology.BaseFunction`: the heterogeneity replaced
        by its expectation given the density texture), same units; an upper bound on what the CT
        tells, as the pathologies' effects are kept whole even where their CT sign is subtle
        (embolism, obstruction).  ``None`` for phantoms made otherwise.
    """

    seed: int
    grid: Grid
    hu: np.ndarray
    labels: np.ndarray
    lung_mask: np.ndarray
    function_grid: Grid
    perfusion: np.ndarray
    ventilation: np.ndarray
    function_lung_mask: np.ndarray
    pathology_map: np.ndarray
    params: ThoraxParams
    physiology: PhysiologyParams
    pathologies: list[Pathology] = field(default_factory=list)
    anatomy: Anatomy | None = None
    perfusion_given_ct: np.ndarray | None = None
    ventilation_given_ct: np.ndarray | None = None

    def lung_volume_ml(self, label: LungLabel) -> float:
        """Volume of one lung in mL from the CT-grid mask."""
        return float((self.lung_mask == label).sum()) * self.grid.voxel_volume_ml


def function_grid_for(grid: Grid, voxel_mm: float = FUNCTION_VOXEL_MM) -> tuple[Grid, tuple[int, int, int]]:
    """Coarse grid made of whole blocks of CT voxels of about ``voxel_mm``; returns it and the block factors."""
    dz, dy, dx = grid.spacing_mm
    nz, ny, nx = grid.shape
    fz, fy, fx = (max(1, round(voxel_mm / s)) for s in (dz, dy, dx))
    x0, y0, z0 = grid.origin_lps_mm
    origin = (x0 + (fx - 1) * dx / 2.0, y0 + (fy - 1) * dy / 2.0, z0 + (fz - 1) * dz / 2.0)
    shape = (-(-nz // fz), -(-ny // fy), -(-nx // fx))
    return Grid(shape, (dz * fz, dy * fy, dx * fx), origin), (fz, fy, fx)


def make_thorax_phantom(
    grid: Grid,
    seed: int,
    params: ThoraxParams | None = None,
    physiology: PhysiologyParams | None = None,
    pathologies: list[Pathology] | None = None,
    ct_noise_hu: float = 15.0,
    large_embolism_probability: float = 0.0,
) -> ThoraxPhantom:
    """Build one phantom case on ``grid`` deterministically from ``seed``.

    Parameters left as ``None`` are drawn from the seed (anatomy, physiology, pathologies).
    With ``large_embolism_probability`` > 0, that share of the seeds also gets one lobar-size
    embolus (:func:`core.simulation.pathology.draw_large_embolism`) on top of the drawn
    pathologies, from a random stream of its own: the other draws of a seed stay the same.
    """
    if not 0.0 <= large_embolism_probability <= 1.0:
        raise ValueError(f"large_embolism_probability must be in [0, 1], got {large_embolism_probability}")
    rng = np.random.default_rng(seed)
    params = params or sample_thorax_params(rng)
    physiology = physiology or sample_physiology_params(rng)
    anatomy = build_anatomy(grid, params, rng)
    fgrid, factors = function_grid_for(grid)
    coords = _relative_coords(fgrid, grid)
    side = _coarse_side(anatomy.lung_mask, factors)
    owners = _territories(anatomy, side, coords)
    if pathologies is None:
        pathologies = sample_pathologies(rng, anatomy.trees, _lung_points(anatomy))
    if large_embolism_probability > 0.0:
        extra = np.random.default_rng([seed, LARGE_EMBOLISM_STREAM])
        if extra.random() < large_embolism_probability:
            pathologies = [*pathologies, draw_large_embolism(extra, anatomy.trees)]
    lm = anatomy.landmarks
    effects = apply_pathologies(
        pathologies, coords, side, owners, anatomy.trees, (lm.apex_z, lm.base_z, lm.cavity_b_mm), fgrid.spacing_mm, rng
    )
    dependency = _dependency(coords[1], side, lm.cavity_b_mm)
    base = base_function(dependency, fgrid.spacing_mm, physiology, rng)
    tissue = np.clip(base.tissue_fraction * effects.tissue * (0.8 + 0.2 * effects.blood), 0.01, 1.0)
    parenchyma = block_mean(
        (anatomy.lung_mask > 0) * (1.0 - anatomy.vessel_fraction) * (1.0 - anatomy.airway_fraction), factors
    )
    ventilation = _normalised(parenchyma * base.specific_ventilation * effects.ventilation, side)
    perfusion = _normalised(parenchyma * base.specific_perfusion * effects.perfusion, side)
    ventilation_given_ct = _normalised(parenchyma * base.expected_ventilation * effects.ventilation, side)
    perfusion_given_ct = _normalised(parenchyma * base.expected_perfusion * effects.perfusion, side)
    hu = _synthesise_ct(grid, anatomy, tissue, effects, ct_noise_hu, rng)
    logger.debug("phantom seed %d: %s", seed, [p.kind for p in pathologies])
    return ThoraxPhantom(
        seed=seed,
        grid=grid,
        hu=hu,
        labels=anatomy.labels,
        lung_mask=anatomy.lung_mask,
        function_grid=fgrid,
        perfusion=perfusion,
        ventilation=ventilation,
        function_lung_mask=side,
        pathology_map=effects.kind_map,
        params=params,
        physiology=physiology,
        pathologies=list(pathologies),
        anatomy=anatomy,
        perfusion_given_ct=perfusion_given_ct,
        ventilation_given_ct=ventilation_given_ct,
    )


def _relative_coords(fgrid: Grid, grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Function-grid voxel centres relative to the CT grid centre, broadcastable (z,1,1), (1,y,1), (1,1,x)."""
    out = []
    for name, shape in (("z", (-1, 1, 1)), ("y", (1, -1, 1)), ("x", (1, 1, -1))):
        ct_axis = grid.axis_mm(name)
        centre = 0.5 * (ct_axis[0] + ct_axis[-1])
        out.append((fgrid.axis_mm(name) - centre).reshape(shape))
    return out[0], out[1], out[2]


def _coarse_side(lung_mask: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    right = block_mean(lung_mask == LungLabel.RIGHT_LUNG, factors)
    left = block_mean(lung_mask == LungLabel.LEFT_LUNG, factors)
    side = np.zeros(right.shape, dtype=np.uint8)
    side[(right >= 0.5) & (right >= left)] = LungLabel.RIGHT_LUNG
    side[(left >= 0.5) & (left > right)] = LungLabel.LEFT_LUNG
    return side


def _lung_points(anatomy: Anatomy) -> dict[str, np.ndarray]:
    return {
        name: anatomy.trees[f"artery_{name}"].points_mm
        for name in ("right", "left")
        if f"artery_{name}" in anatomy.trees
    }


def _territories(anatomy: Anatomy, side: np.ndarray, coords: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
    """Terminal arterial segment supplying each function voxel (nearest seed point of that lung)."""
    owners: dict[str, np.ndarray] = {}
    full = np.stack(np.broadcast_arrays(*coords), axis=-1)
    for name, label in (("right", LungLabel.RIGHT_LUNG), ("left", LungLabel.LEFT_LUNG)):
        owner = np.full(side.shape, -1, dtype=np.int32)
        tree = anatomy.trees.get(f"artery_{name}")
        sel = side == label
        if tree is not None and sel.any():
            _, nearest = cKDTree(tree.points_mm).query(full[sel])
            owner[sel] = tree.point_owner[nearest]
        owners[name] = owner
    return owners


def _dependency(y: np.ndarray, side: np.ndarray, cavity_b: float) -> np.ndarray:
    """0 at the anterior, 1 at the posterior edge of the lungs (supine gravity axis is +y)."""
    dep = np.clip((y + cavity_b) / (2.0 * cavity_b), 0.0, 1.0)
    return np.broadcast_to(dep, side.shape).astype(np.float32)


def _normalised(field: np.ndarray, side: np.ndarray) -> np.ndarray:
    out = np.where(side > 0, field, 0.0).astype(np.float32)
    mean = float(out[side > 0].mean()) if (side > 0).any() else 1.0
    return out / mean if mean > 0 else out


def _synthesise_ct(
    grid: Grid, anatomy: Anatomy, tissue: np.ndarray, effects: Effects, noise_hu: float, rng: np.random.Generator
) -> np.ndarray:
    """HU volume: tissue table, lung parenchyma from its tissue fraction, vessels, airways, lesions, noise."""
    labels, lung = anatomy.labels, anatomy.lung_mask
    hu = tissue_lut()[labels]
    in_lung = lung > 0
    parenchyma = lung_hu(zoom_to_shape(tissue, grid.shape)[in_lung])
    vf, af = anatomy.vessel_fraction[in_lung], anatomy.airway_fraction[in_lung]
    hu[in_lung] = parenchyma * (1.0 - vf - af).clip(0.0) + 40.0 * vf - 1000.0 * af
    _paint_solid_lesions(grid, anatomy, effects, hu, rng)
    add_ct_noise(hu, noise_hu, rng)
    return to_stored_hu(hu)


def _paint_solid_lesions(
    grid: Grid, anatomy: Anatomy, effects: Effects, hu: np.ndarray, rng: np.random.Generator
) -> None:
    """Tumours as lobulated solid nodules inside the lung mask; effusion as dependent fluid outside it."""
    kind_full = zoom_to_shape(effects.kind_map, grid.shape, order=0)
    effusion = (kind_full == KINDS.index("effusion") + 1) & (anatomy.lung_mask > 0)
    anatomy.labels[effusion] = Tissue.EFFUSION
    anatomy.lung_mask[effusion] = LungLabel.BACKGROUND
    hu[effusion] = 12.0
    for path in effects.solid:
        if path.kind != "tumour":
            continue
        frac = np.zeros(grid.shape, dtype=np.float32)
        centre = np.asarray(path.centre_mm, dtype=np.float32)
        lobes = centre + rng.normal(0.0, 0.35 * path.radius_mm, (4, 3)).astype(np.float32)
        radii = np.full(4, 0.65 * path.radius_mm, dtype=np.float32)
        paint_capsules(
            frac,
            grid,
            np.vstack([centre, lobes]),
            np.vstack([centre, centre + 0 * lobes]),
            np.append(0.8 * path.radius_mm, radii),
        )
        side = 1 if path.side == "right" else 2
        sel = (frac > 0.0) & (anatomy.lung_mask == side)
        hu[sel] = hu[sel] * (1.0 - frac[sel]) + 38.0 * frac[sel]
        anatomy.labels[sel & (frac >= 0.5)] = Tissue.TUMOUR
