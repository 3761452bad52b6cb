"""Synthetic perfusion and ventilation from a plain chest CT with the shipped TorchScript model.

Per lung (seed 000 separates left and right): crop and Eq. 1 (:func:`core.lung.enhancement.enhance_lung`,
the function the trainer used) -> the network -> pasted back onto the CT grid inside that lung;
both lungs are combined into one map per function.  The values are on the Eq. 2 scale: relative to
the lung's 75th percentile, 1 = P75 or above.

``models/<name>/metadata.json`` is the model's contract (written by ``trainer.export``); it is
checked when the model loads, so a model exported for other preprocessing is refused with a
message instead of giving silently wrong maps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import ModelContractError
from core.geometry import Grid
from core.lung import enhancement
from core.lung.enhancement import LungCrop
from core.lung.quantification import LUNG_NAMES
from core.model_files import load_torchscript, read_model_metadata
from core.nm import standardisation

logger = logging.getLogger(__name__)

METADATA_VERSION = 1
"""Version of the ``metadata.json`` layout this code reads and the trainer writes."""


def preprocessing_contract() -> dict[str, Any]:
    """The Eq. 1 / Eq. 2 parameters of this code base, as ``metadata.json`` records them."""
    return {
        "crop_shape_zyx": list(enhancement.LUNG_CROP_SHAPE),
        "crop_margin_mm": enhancement.CROP_MARGIN_MM,
        "eq1": {
            "low_hu": enhancement.LOW_HU,
            "high_hu": enhancement.HIGH_HU,
            "median_size": enhancement.MEDIAN_SIZE,
            "uniform_size": enhancement.UNIFORM_SIZE,
            "histogram_bins": enhancement.HISTOGRAM_BINS,
        },
        "eq2": {"percentile": standardisation.HIR_PERCENTILE, "levels": standardisation.DISCRETE_LEVELS},
    }


def check_contract(metadata: dict[str, Any], outputs: tuple[str, ...]) -> None:
    """Raise :class:`ModelContractError` naming the first difference between ``metadata`` and this code."""
    fix = (
        "re-export the model with this version's trainer (python -m trainer.train --export) "
        "or install the app version it was made for"
    )
    if metadata.get("metadata_version") != METADATA_VERSION:
        raise ModelContractError(
            f"metadata_version is {metadata.get('metadata_version')!r}, this app reads {METADATA_VERSION}; {fix}"
        )
    expected_shape = [1, 1, *enhancement.LUNG_CROP_SHAPE]
    shape = metadata.get("input", {}).get("shape")
    if shape != expected_shape:
        raise ModelContractError(f"the model takes input shape {shape}, this app makes {expected_shape}; {fix}")
    recorded = metadata["input"].get("preprocessing")
    expected = json.loads(json.dumps(preprocessing_contract()))
    if recorded != expected:
        differing = sorted(k for k in set(expected) | set(recorded or {}) if (recorded or {}).get(k) != expected.get(k))
        raise ModelContractError(f"the model was trained with other preprocessing ({', '.join(differing)}); {fix}")
    names = [o.get("name") for o in metadata.get("outputs", [])]
    missing = [o for o in outputs if o not in names]
    if missing:
        raise ModelContractError(f"the model does not output {missing} (it outputs {names}); use a DDRAN model")


class FunctionModel:
    """A TorchScript perfusion/ventilation model and its contract, loaded once.

    Parameters
    ----------
    folder
        ``models/<name>`` holding ``model.ts`` and ``metadata.json``.
    outputs
        Functions the caller needs (both, for the DDRAN).

    Raises
    ------
    ModelContractError
        If a file is missing or unreadable, or the contract does not match (:func:`check_contract`).
    """

    def __init__(self, folder: Path, outputs: tuple[str, ...] = ("perfusion", "ventilation")) -> None:
        folder = Path(folder)
        self.metadata: dict[str, Any] = read_model_metadata(folder, "the app ships models/ddran_lung, or pass --model")
        check_contract(self.metadata, outputs)
        self.output_names = tuple(o["name"] for o in self.metadata["outputs"])
        self.outputs = outputs
        self.module = load_torchscript(folder / "model.ts")
        self.folder = folder

    @torch.no_grad()
    def predict_crop(self, enhanced_ct: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs for one Eq. 1 lung crop ``(128, 64, 64)`` in [0, 1]: name -> float32 crop in [0, 1]."""
        x = torch.from_numpy(np.ascontiguousarray(enhanced_ct, dtype=np.float32)[None, None])
        result = self.module(x)
        tensors = result if isinstance(result, tuple) else (result,)
        produced = {name: t[0, 0].float().numpy() for name, t in zip(self.output_names, tensors)}
        return {name: produced[name] for name in self.outputs}

    def synthesise_crops(
        self, crops: Mapping[int, tuple[np.ndarray, LungCrop]], lung_labels: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Maps on the CT grid from per-lung Eq. 1 crops: each prediction pasted back inside its lung.

        Parameters
        ----------
        crops
            Lung label -> (enhanced CT crop, its :class:`~core.lung.enhancement.LungCrop`).
        lung_labels
            The canonical CT-grid lung mask the crops were cut from.

        Returns
        -------
        dict of str to numpy.ndarray
            Function name -> float32 ``lung_labels.shape`` map in [0, 1], 0 outside the lungs.
        """
        predictions = {label: self.predict_crop(enhanced) for label, (enhanced, _) in crops.items()}
        return paste_predictions(predictions, {label: crop for label, (_, crop) in crops.items()}, lung_labels)

    def synthesise(self, hu: np.ndarray, lung_labels: np.ndarray, grid: Grid) -> dict[str, np.ndarray]:
        """Perfusion and ventilation maps on the CT grid (Eq. 2 scale, 0 outside the lungs).

        Parameters
        ----------
        hu
            ``grid.shape`` CT in HU (canonical LPS).
        lung_labels
            ``grid.shape`` :class:`~core.labels.LungLabel` values (:func:`core.lung.segmentation.segment_lungs`).
        grid
            The CT grid.
        """
        crops: dict[int, tuple[np.ndarray, LungCrop]] = {}
        for label, side in LUNG_NAMES.items():
            if not (lung_labels == label).any():
                logger.warning("no %s lung in the mask; its maps stay empty", side)
                continue
            enhanced, _, crop = enhancement.enhance_lung(hu, lung_labels, label, grid)
            crops[label] = (enhanced, crop)
        return self.synthesise_crops(crops, lung_labels)


def paste_predictions(
    predictions: Mapping[int, Mapping[str, np.ndarray]], crops: Mapping[int, LungCrop], lung_labels: np.ndarray
) -> dict[str, np.ndarray]:
    """Crop outputs pasted back onto the CT grid, each inside its own lung only, clipped to [0, 1].

    Parameters
    ----------
    predictions
        Lung label -> function name -> crop output.
    crops
        Lung label -> the crop's geometry.
    lung_labels
        The canonical CT-grid lung mask the crops were cut from.

    Returns
    -------
    dict of str to numpy.ndarray
        Function name -> float32 ``lung_labels.shape`` map, 0 outside the lungs.
    """
    names = {name for outputs in predictions.values() for name in outputs}
    maps = {name: np.zeros(lung_labels.shape, dtype=np.float32) for name in sorted(names)}
    for label, outputs in predictions.items():
        crop = crops[label]
        lung = lung_labels[crop.box] == label  # lung voxels outside the crop's box stay 0, as in a full paste
        for name, prediction in outputs.items():
            maps[name][crop.box][lung] = np.clip(crop.to_box(prediction)[lung], 0.0, 1.0)
    return maps
