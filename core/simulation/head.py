"""Head anatomy of the CT-perfusion phantom: tissue labels, vessels, the ischaemic territory, baseline HU.

The head is a stack of elliptic cross-sections of an ellipsoidal brain (the slab of a CTP
acquisition, 40-80 mm around the lateral ventricles):

- outside in: air, scalp (~30 HU), skull (1000-1500 HU), a thin subarachnoid CSF layer, a folded
  cortical grey-matter ribbon (sulci as a pattern of CSF clefts lined with grey matter), white matter;
  the interhemispheric fissure; lateral and third ventricles (CSF); caudate, lentiform nuclei and
  thalami (deep grey matter);
- arteries: both middle cerebral arteries (horizontal M1, ascending insular M2) and both anterior
  cerebral arteries (A1, ascending A2), 5-6.5 mm wide tubes of pure blood;
- venous sinuses: the superior sagittal sinus along the inner table (posterior, and anterior in the
  upper half) and the transverse sinuses at the bottom of the slab;
- the ischaemic MCA territory of one hemisphere (a sector of the lateral brain), with an
  ellipsoidal core inside it; everything else in the territory is penumbra.

Coordinates are relative to the grid centre in mm (x to the patient's left, y posterior, z superior).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from core.geometry import Grid
from core.labels import BrainTissue
from core.simulation.ctp_params import HeadParams
from core.simulation.shapes import centred_axes_mm, segment_distance_mm, smooth_random_field, zoom_to_shape

TISSUE_HU = {
    BrainTissue.OUTSIDE_AIR: -1000.0,
    BrainTissue.SCALP: 30.0,
    BrainTissue.CSF: 5.0,
    BrainTissue.GREY_MATTER: 40.0,
    BrainTissue.WHITE_MATTER: 30.0,
    BrainTissue.ARTERY: 40.0,
    BrainTissue.VENOUS_SINUS: 40.0,
}
"""Unenhanced CT numbers at 80 kVp (HU); the skull is drawn from :data:`SKULL_HU`."""
SKULL_HU = (1000.0, 1500.0)
TEXTURE_HU = 1.5
"""Standard deviation of the smooth parenchymal texture of the baseline (HU)."""

ISCHAEMIA_NONE, ISCHAEMIA_PENUMBRA, ISCHAEMIA_CORE = 0, 1, 2
"""Values of :attr:`HeadAnatomy.ischaemia`."""

CORTEX_MM = 3.5
"""Mean thickness of the cortical ribbon (mm)."""
SULCUS_DEPTH_MM = 15.0
"""Mean depth of the sulci (mm); the cortex lining them makes grey matter about a third of the parenchyma."""
N_GYRI = 28
"""Sulci around the brain's circumference in one axial section."""
GYRAL_WARP = 2.5
"""Amplitude (radians of the sulcal pattern's phase) of the smooth warp that makes sulci wander."""
FISSURE_HALF_WIDTH_MM = 1.0
FISSURE_REACH = 0.45
"""The interhemispheric fissure separates the hemispheres where ``|y|`` exceeds this fraction of the half-length."""
MEDIAL_EXCLUSION_MM = 12.0
"""Tissue closer than this to the midline (thalamus, medial structures) lies outside the MCA territory."""
PENUMBRA_REACH = 1.2
"""Penumbral severity falls from 1 at the core boundary to 0 at this many core radii beyond it."""


@dataclass(frozen=True)
class HeadAnatomy:
    """Label map and lesion layout on the CTP grid; every array is ``(nz, ny, nx)``.

    Attributes
    ----------
    labels
        :class:`core.labels.BrainTissue` values (uint8).
    brain_mask
        Everything inside the inner table of the skull: parenchyma, CSF and vessels (bool).
    ischaemia
        ``ISCHAEMIA_NONE``, ``ISCHAEMIA_PENUMBRA`` or ``ISCHAEMIA_CORE`` as designed (uint8), inside the brain.
    severity
        0-1 within the penumbra (1 next to the core) and within the core (1 at its centre), float32.
    """

    grid: Grid
    params: HeadParams
    labels: np.ndarray
    brain_mask: np.ndarray
    ischaemia: np.ndarray
    severity: np.ndarray

    @property
    def tissue_mask(self) -> np.ndarray:
        """Brain parenchyma (grey and white matter; no CSF, no vessels)."""
        return (self.labels == BrainTissue.GREY_MATTER) | (self.labels == BrainTissue.WHITE_MATTER)


def smooth_field(grid: Grid, correlation_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance smooth random field on ``grid``, computed on a coarse grid and interpolated (float32)."""
    step_mm = correlation_mm / 3.0
    coarse = tuple(max(2, int(np.ceil(n * s / step_mm))) for n, s in zip(grid.shape, grid.spacing_mm))
    spacing = tuple(n * s / c for n, s, c in zip(grid.shape, grid.spacing_mm, coarse))
    field = smooth_random_field(coarse, spacing, correlation_mm, rng)
    return zoom_to_shape(field, grid.shape, order=1)


@dataclass(frozen=True)
class _Head:
    """Voxel-centre coordinates (mm; ``(z,1,1)``, ``(1,y,1)``, ``(1,1,x)``) and the brain's semi-axes ``(z,1,1)``."""

    z: np.ndarray
    y: np.ndarray
    x: np.ndarray
    a: np.ndarray
    """Half-width of the brain's section (mm, along x)."""
    b: np.ndarray
    """Half-length of the brain's section (mm, along y)."""

    def ellipsoid(self, centre: tuple[float, float, float], semi: tuple[float, float, float]) -> np.ndarray:
        """Boolean ellipsoid of ``(z, y, x)`` centre and semi-axes in mm."""
        z, y, x = self.z - centre[0], self.y - centre[1], self.x - centre[2]
        return (z / semi[0]) ** 2 + (y / semi[1]) ** 2 + (x / semi[2]) ** 2 < 1.0


def _tube(points: np.ndarray, p0: tuple[float, ...], p1: tuple[float, ...], radius_mm: float) -> np.ndarray:
    """Voxels whose centre lies within ``radius_mm`` of the segment ``p0-p1`` (``(z, y, x)`` mm)."""
    dist, _ = segment_distance_mm(points, np.asarray(p0, np.float32), np.asarray(p1, np.float32))
    return dist < radius_mm


def _cortex(labels: np.ndarray, grid: Grid, brain: np.ndarray, h: _Head, rng: np.random.Generator) -> None:
    """Grey-matter ribbon, subarachnoid CSF, sulci and the interhemispheric fissure (in place)."""
    z, y, x, a, b = h.z, h.y, h.x, h.a, h.b
    depth = ndimage.distance_transform_edt(brain, sampling=grid.spacing_mm).astype(np.float32)
    csf_mm = np.clip(1.5 + 0.6 * smooth_field(grid, 25.0, rng), 0.6, None)
    gm_mm = CORTEX_MM + 0.5 * smooth_field(grid, 25.0, rng)
    sulcus_mm = SULCUS_DEPTH_MM + 3.0 * smooth_field(grid, 20.0, rng)
    angle = np.arctan2(y / b, x / a)
    pattern = np.cos(N_GYRI * angle + 0.12 * z + GYRAL_WARP * smooth_field(grid, 20.0, rng))
    labels[brain] = BrainTissue.WHITE_MATTER
    gyri = (depth < csf_mm + gm_mm) | ((pattern > 0.0) & (depth < sulcus_mm + gm_mm))
    sulci = (depth < csf_mm) | ((pattern > 0.85) & (depth < sulcus_mm))
    fissure = np.abs(y) > FISSURE_REACH * b  # the hemispheres touch only around the corpus callosum
    gyri |= fissure & (np.abs(x) < FISSURE_HALF_WIDTH_MM + gm_mm)
    sulci |= fissure & (np.abs(x) < FISSURE_HALF_WIDTH_MM)
    labels[brain & gyri] = BrainTissue.GREY_MATTER
    labels[brain & sulci] = BrainTissue.CSF


def _deep_structures(labels: np.ndarray, brain: np.ndarray, h: _Head, p: HeadParams, scale: float) -> None:
    """Deep grey nuclei and the ventricles (in place); ``scale`` is the head size relative to the default."""
    zv = p.brain_centre_z_mm + 22.0
    for side in (-1.0, 1.0):
        for centre, semi in (
            ((zv - 2.0, -18.0, 13.0), (12.0, 9.0, 5.0)),  # caudate head
            ((zv - 10.0, -2.0, 24.0), (10.0, 14.0, 6.0)),  # lentiform nucleus
            ((zv - 12.0, 10.0, 10.0), (10.0, 12.0, 8.0)),  # thalamus
        ):
            c = (centre[0], centre[1] * scale, side * centre[2] * scale)
            labels[brain & h.ellipsoid(c, (semi[0], semi[1] * scale, semi[2] * scale))] = BrainTissue.GREY_MATTER
    for centre, semi in (
        ((zv, -4.0, 8.0), (14.0, 26.0, 6.0)),  # lateral ventricles
        ((zv, -4.0, -8.0), (14.0, 26.0, 6.0)),
        ((zv - 12.0, 4.0, 0.0), (10.0, 12.0, 2.0)),  # third ventricle
    ):
        c = (centre[0], centre[1] * scale, centre[2] * scale)
        labels[brain & h.ellipsoid(c, (semi[0], semi[1] * scale, semi[2]))] = BrainTissue.CSF


def _vessels(labels: np.ndarray, brain: np.ndarray, h: _Head, p: HeadParams) -> None:
    """Arteries (MCA, ACA) and venous sinuses (superior sagittal, transverse) inside the skull (in place)."""
    z, y, x, a, b = h.z, h.y, h.x, h.a, h.b
    points = np.stack(np.broadcast_arrays(z, y, x), axis=-1)
    zm = p.brain_centre_z_mm + 4.0
    arteries = np.zeros(labels.shape, dtype=bool)
    for s in (-1.0, 1.0):
        arteries |= _tube(points, (zm, -10.0, 4.0 * s), (zm, -6.0, 34.0 * s), 3.2)  # M1
        arteries |= _tube(points, (zm, -6.0, 34.0 * s), (zm + 45.0, 8.0, 40.0 * s), 3.0)  # M2, insular
        arteries |= _tube(points, (zm, -10.0, 4.0 * s), (zm + 4.0, -24.0, 3.4 * s), 2.7)  # A1
        arteries |= _tube(points, (zm + 4.0, -24.0, 3.4 * s), (zm + 50.0, -40.0, 3.4 * s), 2.7)  # A2
    sinus_r = 4.5
    veins = (x / sinus_r) ** 2 + ((y - (b - sinus_r - 0.5)) / sinus_r) ** 2 < 1.0  # posterior SSS
    veins |= ((x / 3.0) ** 2 + ((y + b - 3.5) / 3.0) ** 2 < 1.0) & (z > p.brain_centre_z_mm + 22.0)  # anterior SSS
    z_ts = p.brain_centre_z_mm + 2.0
    psi = np.deg2rad([0.0, 25.0, 50.0, 70.0])
    for s in (-1.0, 1.0):
        ring = [(z_ts, float(np.mean(b) - 5.0) * np.cos(q), s * float(np.mean(a) - 5.0) * np.sin(q)) for q in psi]
        for p0, p1 in itertools.pairwise(ring):
            veins |= _tube(points, p0, p1, 4.0)  # transverse sinus
    labels[brain & arteries] = BrainTissue.ARTERY
    labels[brain & veins & ~arteries] = BrainTissue.VENOUS_SINUS


def _ischaemia(
    grid: Grid, h: _Head, p: HeadParams, tissue: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Designed ischaemic regions (none / penumbra / core) and their severity, in the parenchyma."""
    z, y, x = h.z, h.y, h.x
    lateral = p.affected_side * x
    angle_deg = np.degrees(np.arctan2(y, np.maximum(lateral, 1e-3))) + 4.0 * smooth_field(grid, 30.0, rng)
    lo, hi = p.territory_deg
    territory = tissue & (lateral > MEDIAL_EXCLUSION_MM) & (angle_deg > lo) & (angle_deg < hi)
    cz, cy, cx = p.core_centre_mm
    sz, sy, sx = p.core_semi_axes_mm
    q = np.sqrt(((z - cz) / sz) ** 2 + ((y - cy) / sy) ** 2 + ((lateral - cx) / sx) ** 2)
    q = q - 0.12 * smooth_field(grid, 15.0, rng)
    ischaemia = np.where(territory, ISCHAEMIA_PENUMBRA, ISCHAEMIA_NONE).astype(np.uint8)
    ischaemia[territory & (q < 1.0)] = ISCHAEMIA_CORE
    severity = np.where(q < 1.0, np.clip(1.0 - q, 0.0, 1.0), np.clip(1.0 - (q - 1.0) / PENUMBRA_REACH, 0.0, 1.0))
    severity = np.where(territory, severity, 0.0).astype(np.float32)
    return ischaemia, severity


def head_anatomy(grid: Grid, params: HeadParams, rng: np.random.Generator) -> HeadAnatomy:
    """Build the labels and lesion layout of one head on ``grid`` (deterministic for ``rng``'s state)."""
    z, y, x = centred_axes_mm(grid)
    p = params
    shrink = np.sqrt(np.clip(1.0 - ((z - p.brain_centre_z_mm) / p.brain_half_height_mm) ** 2, 0.05, 1.0))
    a, b = p.brain_half_width_mm * shrink, p.brain_half_length_mm * shrink
    labels = np.zeros(grid.shape, dtype=np.uint8)
    for thickness, label in ((p.skull_mm + p.scalp_mm, BrainTissue.SCALP), (p.skull_mm, BrainTissue.SKULL)):
        inside = (x / (a + thickness)) ** 2 + (y / (b + thickness)) ** 2 < 1.0
        labels[inside] = label
    brain = (x / a) ** 2 + (y / b) ** 2 < 1.0
    brain = np.broadcast_to(brain, grid.shape).copy()
    head = _Head(z, y, x, a, b)
    _cortex(labels, grid, brain, head, rng)
    scale = 0.5 * (p.brain_half_width_mm / 65.0 + p.brain_half_length_mm / 84.0)
    _deep_structures(labels, brain, head, p, scale)
    _vessels(labels, brain, head, p)
    tissue = (labels == BrainTissue.GREY_MATTER) | (labels == BrainTissue.WHITE_MATTER)
    ischaemia, severity = _ischaemia(grid, head, p, tissue, rng)
    return HeadAnatomy(grid, params, labels, brain, ischaemia, severity)


def baseline_hu(anatomy: HeadAnatomy, core_hypodensity_hu: float, rng: np.random.Generator) -> np.ndarray:
    """Unenhanced CT numbers (float32 HU, noise-free): tissue values, skull variation, parenchymal texture."""
    lut = np.zeros(256, dtype=np.float32)
    for label, value in TISSUE_HU.items():
        lut[int(label)] = value
    hu = lut[anatomy.labels]
    skull = anatomy.labels == BrainTissue.SKULL
    mid, half = 0.5 * (SKULL_HU[0] + SKULL_HU[1]), 0.5 * (SKULL_HU[1] - SKULL_HU[0])
    skull_hu = np.clip(mid + 0.5 * half * smooth_field(anatomy.grid, 20.0, rng), *SKULL_HU)
    hu[skull] = skull_hu[skull]
    tissue = anatomy.tissue_mask
    hu[tissue] += TEXTURE_HU * smooth_field(anatomy.grid, 8.0, rng)[tissue]
    hu[tissue & (anatomy.ischaemia == ISCHAEMIA_CORE)] -= core_hypodensity_hu
    return hu
