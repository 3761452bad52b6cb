"""Functional lung volumes and regional quantification of perfusion and ventilation maps.

What a lung perfusion quantification report gives before lobectomy or functional-avoidance
radiotherapy planning: the share of total perfusion and ventilation in each lung and in six zones
(upper, middle and lower third of each lung along the cranio-caudal axis), the zone V/Q ratios,
and the volumes of high- and low-function lung.

Functional volumes follow seed 000 (Eq. 6): each lung's map is divided by its 75th percentile
inside that lung, and voxels at or above 0.66 are high-function, the rest of the lung
low-function.

Conventions: arrays ``(z, y, x)`` on a canonical LPS :class:`~core.geometry.Grid` (array index 0
increasing towards the head), lung labels of :class:`~core.labels.LungLabel`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from core.errors import InputDataError
from core.geometry import Grid, bounding_box
from core.labels import LungLabel
from core.metrics import FUNCTION_THRESHOLD
from core.nm.standardisation import HIR_PERCENTILE, normalise_spect

LUNG_NAMES = {LungLabel.RIGHT_LUNG: "right", LungLabel.LEFT_LUNG: "left"}
ZONE_NAMES = ("upper", "middle", "lower")


@dataclass(frozen=True)
class FunctionalVolumes:
    """High- and low-function masks of one map, both lungs together (each lung normalised on its own)."""

    high: np.ndarray
    low: np.ndarray


def functional_volumes(
    function_map: np.ndarray,
    lung_labels: np.ndarray,
    *,
    threshold: float = FUNCTION_THRESHOLD,
    percentile: float = HIR_PERCENTILE,
    box: tuple[slice, ...] | None = None,
) -> FunctionalVolumes:
    """High-/low-function lung of a perfusion or ventilation map (seed 000: P75 normalisation, 0.66).

    Parameters
    ----------
    function_map
        ``(z, y, x)`` map, any non-negative unit.
    lung_labels
        Same shape, :class:`~core.labels.LungLabel` values.
    threshold, percentile
        0.66 and 75 in the paper.
    box
        :func:`lung_box` of ``lung_labels`` when the caller has it (it takes a CT-sized pass); found here otherwise.

    Returns
    -------
    FunctionalVolumes
        Boolean masks; every lung voxel is in exactly one of them.

    Raises
    ------
    InputDataError
        If no lung is labelled, the shapes differ, or a lung's percentile is not positive.
    """
    if function_map.shape != lung_labels.shape:
        raise InputDataError(f"function map shape {function_map.shape} differs from lung mask {lung_labels.shape}")
    box = lung_box(lung_labels) if box is None else box
    if box is None:
        raise InputDataError("the lung mask labels no lung; segment the lungs first")
    # Everything outside the lungs' bounding box is neither high nor low: work on the box only
    # (a fifth of a chest CT's voxels), then place the result into full-size masks.
    labels, values = lung_labels[box], function_map[box]
    high_box = np.zeros(labels.shape, dtype=bool)
    for label in LUNG_NAMES:
        lung = labels == label
        if lung.any():
            high_box |= lung & (normalise_spect(values, lung, percentile=percentile) >= threshold)
    high = np.zeros(lung_labels.shape, dtype=bool)
    low = np.zeros(lung_labels.shape, dtype=bool)
    high[box] = high_box
    low[box] = np.isin(labels, list(LUNG_NAMES)) & ~high_box
    return FunctionalVolumes(high, low)


def lung_box(lung_labels: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest ``(z, y, x)`` box holding every lung voxel (:data:`LUNG_NAMES` labels); None without one."""
    lungs: np.ndarray = np.zeros(lung_labels.shape, dtype=bool)
    for label in LUNG_NAMES:  # faster than np.isin on a CT-sized volume
        lungs |= lung_labels == label
    return bounding_box(lungs)


def zone_labels(lung_labels: np.ndarray, *, box: tuple[slice, ...] | None = None) -> dict[str, np.ndarray]:
    """Six zones: each lung cut into thirds of its cranio-caudal extent (slices), keyed ``<lung> <zone>``.

    The extent runs from the lowest to the highest slice holding that lung; each third covers an
    equal length of it (voxel centres at a boundary go to the upper zone).  ``box``: as for
    :func:`functional_volumes`.
    """
    zones: dict[str, np.ndarray] = {}
    box = lung_box(lung_labels) if box is None else box
    if box is None:
        return zones
    labels = lung_labels[box]  # zones lie in the lungs' bounding box: cut them there
    for label, lung_name in LUNG_NAMES.items():
        lung = labels == label
        slices = np.flatnonzero(lung.any(axis=(1, 2))) + box[0].start
        if slices.size == 0:
            continue
        bottom, top = float(slices[0]) - 0.5, float(slices[-1]) + 0.5
        position = (np.arange(box[0].start, box[0].stop) - bottom) / (top - bottom)  # 0 at the base, 1 at the apex
        third = np.clip((3 * position).astype(int), 0, 2)  # 0 lower, 1 middle, 2 upper
        for index, zone in enumerate(("lower", "middle", "upper")):
            # Only the zone's own slices of the box are written: the rest of the array stays as
            # np.zeros left it, pages the system has not handed out, so six full-size zone masks
            # take about a tenth of their nominal memory.
            slab = np.flatnonzero(third == index)
            zone_mask = np.zeros(lung_labels.shape, dtype=bool)
            if slab.size:
                rows = slice(int(slab[0]), int(slab[-1]) + 1)
                zone_mask[box][rows] = lung[rows]
            zones[f"{lung_name} {zone}"] = zone_mask
    ordered = [f"{lung} {zone}" for lung in LUNG_NAMES.values() for zone in ZONE_NAMES]
    return {name: zones[name] for name in ordered if name in zones}


@dataclass(frozen=True)
class RegionStats:
    """Quantification of one region (a lung, a zone, or both lungs)."""

    region: str
    volume_ml: float
    perfusion_percent: float
    """Share of the total perfusion of both lungs, in percent."""
    ventilation_percent: float
    vq_ratio: float
    """Ventilation share / perfusion share (1 = matched; ``nan`` without perfusion)."""
    high_perfusion_ml: float
    low_perfusion_ml: float
    high_ventilation_ml: float
    low_ventilation_ml: float

    def as_dict(self) -> dict[str, float | str]:
        """Plain dict for JSON and reports."""
        return asdict(self)


def quantify_regions(
    perfusion: np.ndarray,
    ventilation: np.ndarray,
    lung_labels: np.ndarray,
    grid: Grid,
    *,
    volumes: Mapping[str, FunctionalVolumes] | None = None,
    zones: Mapping[str, np.ndarray] | None = None,
    box: tuple[slice, ...] | None = None,
) -> list[RegionStats]:
    """Lung-by-lung and zone-by-zone shares, V/Q ratios and functional volumes.

    Parameters
    ----------
    perfusion, ventilation
        ``grid.shape`` maps (any non-negative unit; shares are scale-free).
    lung_labels
        ``grid.shape`` :class:`~core.labels.LungLabel` values.
    grid
        The maps' grid (for volumes in mL).
    volumes
        ``"perfusion"`` / ``"ventilation"`` functional volumes when already computed
        (:func:`functional_volumes`); computed here otherwise.
    zones
        The six zones when already cut (:func:`zone_labels`); cut here otherwise.
    box
        As for :func:`functional_volumes`.

    Returns
    -------
    list of RegionStats
        ``both lungs``, ``right``, ``left``, then the six zones (see :func:`zone_labels`).

    Raises
    ------
    InputDataError
        If shapes differ, no lung is labelled, a map is negative in the lung or sums to 0 there.
    """
    for name, array in (("perfusion", perfusion), ("ventilation", ventilation), ("lung mask", lung_labels)):
        if array.shape != grid.shape:
            raise InputDataError(f"{name} shape {array.shape} differs from the grid {grid.shape}")
    box = lung_box(lung_labels) if box is None else box
    if box is None:
        raise InputDataError("the lung mask labels no lung; segment the lungs first")
    # Every region lies in the lungs' bounding box: sum over the box only (same voxels, same order,
    # so the same sums as over the whole grid, about five times faster on a chest CT).
    labels = lung_labels[box]
    full_perfusion, full_ventilation = perfusion, ventilation
    perfusion, ventilation = perfusion[box], ventilation[box]
    lungs = np.isin(labels, list(LUNG_NAMES))
    totals = {}
    for name, array in (("perfusion", perfusion), ("ventilation", ventilation)):
        values = array[lungs].astype(np.float64)
        if (values < 0).any() or values.sum() <= 0:
            raise InputDataError(f"the {name} map must be non-negative with a positive sum in the lungs")
        totals[name] = values.sum()
    if volumes is None:
        volumes = {
            "perfusion": functional_volumes(full_perfusion, lung_labels, box=box),
            "ventilation": functional_volumes(full_ventilation, lung_labels, box=box),
        }
    if zones is None:
        zones = zone_labels(lung_labels, box=box)
    functional = {name: FunctionalVolumes(v.high[box], v.low[box]) for name, v in volumes.items()}
    regions = {"both lungs": lungs}
    regions.update({name: labels == label for label, name in LUNG_NAMES.items() if (labels == label).any()})
    regions.update({name: mask[box] for name, mask in zones.items()})
    voxel_ml = grid.voxel_volume_ml
    stats = []
    for region, mask in regions.items():
        q = 100.0 * float(perfusion[mask].astype(np.float64).sum()) / totals["perfusion"]
        v = 100.0 * float(ventilation[mask].astype(np.float64).sum()) / totals["ventilation"]
        stats.append(
            RegionStats(
                region=region,
                volume_ml=float(mask.sum()) * voxel_ml,
                perfusion_percent=q,
                ventilation_percent=v,
                vq_ratio=v / q if q > 0 else float("nan"),
                high_perfusion_ml=float((mask & functional["perfusion"].high).sum()) * voxel_ml,
                low_perfusion_ml=float((mask & functional["perfusion"].low).sum()) * voxel_ml,
                high_ventilation_ml=float((mask & functional["ventilation"].high).sum()) * voxel_ml,
                low_ventilation_ml=float((mask & functional["ventilation"].low).sum()) * voxel_ml,
            )
        )
    return stats
