"""Radiotracer distributions (MBq per function-grid voxel) for the thorax phantom.

Protocols and their sources:
- perfusion, Tc-99m MAA: 111 MBq (3 mCi) injected (seed 000, DL-CTPM); > 95 % of particles lodge
  in pulmonary pre-capillary arterioles in proportion to regional blood flow, the rest circulates
  as free pertechnetate (here: 4 % spread over soft tissue).
- ventilation, Tc-99m Technegas: about 30 MBq deposited in the lungs (EANM V/Q guideline, Bajc et al.
  2009/2019: 25-30 MBq deposited), in proportion to regional ventilation; in airway obstruction
  the ultrafine particles also deposit in the central airways (hot spots in trachea and main
  bronchi) in proportion to the severity.
- bone, Tc-99m MDP: 925-1110 MBq injected (seed 003); at 3 h about 30-40 % sits in the skeleton.
  Concentrations relative to normal bone: soft tissue 0.06, liver 0.06, kidney 0.5, urine in the
  bladder 4, cartilage 0.3; metastases 3-8 x normal bone.  The absolute level is set by a normal
  bone concentration of 0.06 MBq/mL (about 35 % of 1000 MBq in about 6 L of skeleton).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.geometry import Grid
from core.labels import Tissue
from core.simulation.shapes import block_mean
from core.simulation.thorax import ThoraxPhantom, function_grid_for

MAA_INJECTED_MBQ = 111.0
MAA_LUNG_FRACTION = 0.96
TECHNEGAS_DEPOSITED_MBQ = 30.0
MDP_INJECTED_MBQ = 1000.0
BONE_CONCENTRATION_MBQ_PER_ML = 0.06 * MDP_INJECTED_MBQ / 1000.0
BONE_RELATIVE_UPTAKE = {
    Tissue.CORTICAL_BONE: 1.0,
    Tissue.MARROW: 1.0,
    Tissue.CARTILAGE: 0.3,
    Tissue.KIDNEY: 0.5,
    Tissue.BLADDER: 4.0,
    Tissue.LIVER: 0.06,
}
SOFT_TISSUE_UPTAKE = 0.06
SOFT_TISSUES = (
    Tissue.FAT,
    Tissue.MUSCLE,
    Tissue.MEDIASTINUM,
    Tissue.HEART,
    Tissue.GREAT_VESSEL,
    Tissue.SPLEEN,
    Tissue.STOMACH,
    Tissue.SPINAL_CANAL,
    Tissue.OESOPHAGUS,
    Tissue.TUMOUR,
    Tissue.EFFUSION,
)


@dataclass
class BoneActivity:
    """MDP activity (MBq per function voxel) and the hot-lesion masks (CT grid and function grid)."""

    activity_mbq: np.ndarray
    lesion_mask: np.ndarray
    function_lesion_mask: np.ndarray
    lesion_diameters_mm: list[float]


def mu_source_hu(phantom: ThoraxPhantom) -> np.ndarray:
    """CT numbers averaged onto the function grid (for the attenuation map)."""
    _, factors = function_grid_for(phantom.grid)
    return block_mean(phantom.hu, factors)


def _body_fraction(phantom: ThoraxPhantom) -> np.ndarray:
    _, factors = function_grid_for(phantom.grid)
    return block_mean(np.isin(phantom.labels, SOFT_TISSUES), factors)


def perfusion_activity(phantom: ThoraxPhantom, injected_mbq: float = MAA_INJECTED_MBQ) -> np.ndarray:
    """Tc-99m MAA activity: lungs in proportion to perfusion, free pertechnetate in soft tissue."""
    lung = phantom.perfusion / phantom.perfusion.sum() * injected_mbq * MAA_LUNG_FRACTION
    soft = _body_fraction(phantom)
    free = soft / max(float(soft.sum()), 1e-6) * injected_mbq * (1.0 - MAA_LUNG_FRACTION)
    return (lung + free).astype(np.float32)


def ventilation_activity(phantom: ThoraxPhantom, deposited_mbq: float = TECHNEGAS_DEPOSITED_MBQ) -> np.ndarray:
    """Tc-99m Technegas activity: lungs in proportion to ventilation plus central-airway deposition."""
    _, factors = function_grid_for(phantom.grid)
    obstruction = max((p.severity for p in phantom.pathologies if p.kind in ("obstruction", "emphysema")), default=0.0)
    central_fraction = 0.12 * obstruction
    airway = block_mean(phantom.labels == Tissue.AIRWAY, factors)
    lung = phantom.ventilation / phantom.ventilation.sum() * deposited_mbq * (1.0 - central_fraction)
    central = airway / max(float(airway.sum()), 1e-6) * deposited_mbq * central_fraction
    return (lung + central).astype(np.float32)


SOFT_TISSUE_LESION_RATIO = (4.0, 20.0)
"""Extra-osseous hot lesions: concentration over the soft-tissue background (NEMA spheres: 12)."""


def bone_activity(
    phantom: ThoraxPhantom,
    rng: np.random.Generator,
    n_lesions: int | None = None,
    max_soft_tissue_lesions: int = 0,
) -> BoneActivity:
    """Tc-99m MDP activity with hot lesions (8-30 mm) in the spine, ribs and sternum.

    ``max_soft_tissue_lesions`` > 0 adds 0 to that many extra-osseous hot spheres (8-30 mm, in soft
    tissue or liver, :data:`SOFT_TISSUE_LESION_RATIO` over the soft-tissue uptake, as soft-tissue
    tumours and calcifications take up MDP) that the CT does not show.  They are drawn from their own
    random stream (seeded by the phantom), so the bone lesions of a seed do not change; they join
    the lesion mask after the bone lesions.
    """
    grid = phantom.grid
    _, factors = function_grid_for(grid)
    lut = np.zeros(256, dtype=np.float32)
    for tissue in SOFT_TISSUES:
        lut[int(tissue)] = SOFT_TISSUE_UPTAKE
    for tissue, uptake in BONE_RELATIVE_UPTAKE.items():
        lut[int(tissue)] = uptake
    relative = lut[phantom.labels]
    lesion_mask, diameters = _bone_lesions(phantom, rng, n_lesions)
    ratios = rng.uniform(3.0, 8.0, len(diameters)) if diameters else np.zeros(0)
    for k, ratio in enumerate(ratios, start=1):
        relative[lesion_mask == k] = ratio
    if max_soft_tissue_lesions > 0:
        soft_rng = np.random.default_rng([phantom.seed, 31])
        count = int(soft_rng.integers(0, max_soft_tissue_lesions + 1))
        soft = np.isin(phantom.labels, (*SOFT_TISSUES, Tissue.LIVER)) & (lesion_mask == 0)
        extra, extra_diameters = _spheres_in(soft, grid, soft_rng, count, first_label=len(diameters) + 1)
        for k in range(len(diameters) + 1, len(diameters) + len(extra_diameters) + 1):
            relative[extra == k] = SOFT_TISSUE_UPTAKE * soft_rng.uniform(*SOFT_TISSUE_LESION_RATIO)
        lesion_mask = np.maximum(lesion_mask, extra)
        diameters = diameters + extra_diameters
    concentration = block_mean(relative, factors) * BONE_CONCENTRATION_MBQ_PER_ML
    voxel_ml = float(np.prod(grid.spacing_mm)) * float(np.prod(factors)) / 1000.0
    function_lesions = block_mean(lesion_mask > 0, factors) >= 0.5
    return BoneActivity((concentration * voxel_ml).astype(np.float32), lesion_mask, function_lesions, diameters)


def _bone_lesions(
    phantom: ThoraxPhantom, rng: np.random.Generator, n_lesions: int | None
) -> tuple[np.ndarray, list[float]]:
    """Spherical lesions centred on random bone voxels, restricted to bone; labelled 1..n on the CT grid."""
    bone = np.isin(phantom.labels, (Tissue.CORTICAL_BONE, Tissue.MARROW))
    n = int(rng.integers(2, 6)) if n_lesions is None else n_lesions
    return _spheres_in(bone, phantom.grid, rng, n, first_label=1)


def _spheres_in(
    allowed: np.ndarray, grid: Grid, rng: np.random.Generator, n: int, *, first_label: int
) -> tuple[np.ndarray, list[float]]:
    """``n`` balls of 8-30 mm centred on random ``allowed`` voxels, clipped to them; labels from ``first_label``."""
    bone = allowed
    candidates = np.flatnonzero(bone.ravel())
    mask = np.zeros(grid.shape, dtype=np.uint8)
    diameters: list[float] = []
    if candidates.size == 0:
        return mask, diameters
    spacing = np.asarray(grid.spacing_mm)
    for k in range(first_label, first_label + n):
        centre = np.asarray(np.unravel_index(rng.choice(candidates), grid.shape))
        diameter = float(rng.uniform(8.0, 30.0))
        half = np.ceil(diameter / 2.0 / spacing).astype(int) + 1
        lo, hi = np.maximum(centre - half, 0), np.minimum(centre + half + 1, grid.shape)
        axes = [(np.arange(lo[i], hi[i]) - centre[i]) * spacing[i] for i in range(3)]
        zz, yy, xx = np.meshgrid(*axes, indexing="ij")
        ball = zz**2 + yy**2 + xx**2 <= (diameter / 2.0) ** 2
        region = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
        sel = ball & bone[region] & (mask[region] == 0)
        mask[region][sel] = k
        diameters.append(diameter)
    return mask, diameters
