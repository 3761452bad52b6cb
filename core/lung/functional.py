"""Synthetic perfusion and ventilation of a CT, from the lung crops to everything the writers need.

:func:`synthesise_study` runs the shipped model on each lung's Eq. 1 crop, pastes the predictions
back onto the canonical CT grid (both lungs combined), cuts the functional volumes (seed 000:
75th-percentile normalisation, threshold 0.66) and the six zones, and quantifies the regions
(:mod:`core.lung.quantification`).  :func:`agreement_with_spect` scores the crops against a
lung perfusion or ventilation SPECT of the same study, at the SPECT's own resolution, with
exactly the trainer's evaluation path (:func:`core.metrics.native_spect`,
:func:`core.metrics.evaluate_on_spect`).

Conventions: arrays ``(z, y, x)`` on the canonical LPS :class:`~core.geometry.Grid` of the CT.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from core.geometry import Grid
from core.lung.enhancement import EnhancedLung
from core.lung.quantification import (
    LUNG_NAMES,
    FunctionalVolumes,
    RegionStats,
    functional_volumes,
    lung_box,
    quantify_regions,
    zone_labels,
)
from core.lung.synthesis import FunctionModel, paste_predictions
from core.metrics import METRIC_KEYS, evaluate_on_spect, native_spect


@dataclass(frozen=True)
class FunctionalResult:
    """Synthetic maps of one CT and what is derived from them.

    Parameters
    ----------
    maps
        ``"perfusion"`` / ``"ventilation"`` -> float32 ``grid.shape`` in [0, 1] (Eq. 2 scale), 0 outside the lungs.
    lung_labels
        uint8 :class:`~core.labels.LungLabel` mask on ``grid``.
    grid
        Canonical LPS grid of the CT.
    crop_predictions
        Lung label -> function name -> the network's crop output (before pasting back).
    zones
        ``"<lung> <zone>"`` -> bool mask on ``grid`` (:func:`core.lung.quantification.zone_labels`).
    volumes
        Function name -> high-/low-function masks on ``grid``.
    regions
        The regional table (:func:`core.lung.quantification.quantify_regions`).
    """

    maps: dict[str, np.ndarray]
    lung_labels: np.ndarray
    grid: Grid
    crop_predictions: dict[int, dict[str, np.ndarray]]
    zones: dict[str, np.ndarray]
    volumes: dict[str, FunctionalVolumes]
    regions: list[RegionStats]


def synthesise_study(
    model: FunctionModel, lungs: Mapping[int, EnhancedLung], lung_labels: np.ndarray, grid: Grid
) -> FunctionalResult:
    """Predict every lung, paste back, cut functional volumes and zones, quantify.

    Parameters
    ----------
    model
        The loaded perfusion/ventilation model.
    lungs
        Lung label -> its network input (:func:`core.lung.enhancement.enhance_lung`).
    lung_labels
        ``grid.shape`` canonical lung mask the crops were cut from.
    grid
        The CT's canonical grid.
    """
    predictions = {int(label): model.predict_crop(lung.enhanced) for label, lung in lungs.items()}
    maps = paste_predictions(predictions, {int(label): lung.crop for label, lung in lungs.items()}, lung_labels)
    box = lung_box(lung_labels)  # once for the three steps below
    volumes = {name: functional_volumes(maps[name], lung_labels, box=box) for name in maps}
    zones = zone_labels(lung_labels, box=box)
    regions = quantify_regions(
        maps["perfusion"], maps["ventilation"], lung_labels, grid, volumes=volumes, zones=zones, box=box
    )
    return FunctionalResult(maps, lung_labels, grid, predictions, zones, volumes, regions)


def agreement_with_spect(
    result: FunctionalResult,
    lungs: Mapping[int, EnhancedLung],
    spects: Mapping[str, tuple[np.ndarray, Grid]],
) -> dict[str, dict[str, dict[str, float | None]]]:
    """Seed 000's metrics of the synthetic maps against the study's own SPECT, per lung and averaged.

    Parameters
    ----------
    result
        The synthesis of this CT.
    lungs
        The lung inputs the result was computed from.
    spects
        Function name (``"perfusion"``, ``"ventilation"``) -> (SPECT volume, its canonical grid) in
        the CT's Frame of Reference; functions without a SPECT are left out.

    Returns
    -------
    dict
        Function -> ``"right"`` / ``"left"`` / ``"mean"`` -> :data:`core.metrics.METRIC_KEYS` values
        (``None`` where undefined).
    """
    agreement: dict[str, dict[str, dict[str, float | None]]] = {}
    for name, (volume, spect_grid) in spects.items():
        if name not in result.maps:
            continue
        per_lung = {}
        for label, lung in lungs.items():
            native = native_spect(volume, spect_grid, lung.mask, lung.crop.grid)
            metrics = evaluate_on_spect(result.crop_predictions[int(label)][name], lung.mask, lung.crop.grid, native)
            per_lung[LUNG_NAMES[label]] = metrics  # type: ignore[index]
        mean = {key: float(np.nanmean([m[key] for m in per_lung.values()])) for key in METRIC_KEYS}
        agreement[name] = {side: _finite(m) for side, m in {**per_lung, "mean": mean}.items()}
    return agreement


def _finite(metrics: Mapping[str, float]) -> dict[str, float | None]:
    """Metrics rounded to 4 decimals, ``nan`` as ``None`` (strict JSON)."""
    return {k: (None if math.isnan(v) else round(float(v), 4)) for k, v in metrics.items()}
