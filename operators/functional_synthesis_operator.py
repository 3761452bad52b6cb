"""Synthetic perfusion and ventilation from the CT (DDRAN, seeds 000/001), with regional quantification."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from holoscan.core import ExecutionContext, InputContext, OutputContext
from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec

from core.geometry import Grid
from core.lung.quantification import quantify_regions
from core.lung.synthesis import FunctionModel
from core.orientation import canonical
from core.run_record import StageTimings
from operators.ct_enhancement_operator import EnhancedLung
from operators.lung_segmentation_operator import LungSegmentation

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FunctionalMaps:
    """Synthetic maps on the canonical CT grid (Eq. 2 scale: 1 = the lung's 75th percentile or above).

    Parameters
    ----------
    maps
        ``"perfusion"`` / ``"ventilation"`` -> float32 ``grid.shape``, 0 outside the lungs.
    lung_labels
        uint8 :class:`core.labels.LungLabel` mask on ``grid``.
    grid
        Canonical LPS grid of the CT.
    """

    maps: dict[str, np.ndarray]
    lung_labels: np.ndarray
    grid: Grid


class FunctionalSynthesisOperator(Operator):
    """Run the shipped model on each enhanced lung crop, paste the maps back and quantify them.

    The model (``model.ts`` + ``metadata.json``) is loaded and its contract checked once, when the
    operator is built, so a wrong model stops the run before any DICOM is read.

    Named inputs
    ------------
    ``INPUT_SEGMENTATION``: :class:`operators.lung_segmentation_operator.LungSegmentation` or ``None``.
    ``INPUT_LUNGS``: ``dict[LungLabel, EnhancedLung]`` from :class:`operators.CtEnhancementOperator`.

    Named outputs
    -------------
    ``OUTPUT_MAPS``: :class:`FunctionalMaps`, or ``None`` without lungs.
    ``OUTPUT_SUMMARY``: dict for the run record (model, regional table), or ``None`` without lungs.
    """

    INPUT_SEGMENTATION = "lung_segmentation"
    INPUT_LUNGS = "enhanced_lungs"
    OUTPUT_MAPS = "functional_maps"
    OUTPUT_SUMMARY = "functional_summary"

    def __init__(self, fragment: Fragment, *args: Any, model_dir: Path, timings: StageTimings, **kwargs: Any) -> None:
        """Load the model once (raises :class:`core.errors.ModelContractError` on a bad model)."""
        self._model = FunctionModel(model_dir)
        self._timings = timings
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the ports."""
        spec.input(self.INPUT_SEGMENTATION)
        spec.input(self.INPUT_LUNGS)
        spec.output(self.OUTPUT_MAPS).condition(ConditionType.NONE)
        spec.output(self.OUTPUT_SUMMARY).condition(ConditionType.NONE)

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Synthesise and quantify; emit ``None`` twice when the CT had no lungs."""
        segmentation = op_input.receive(self.INPUT_SEGMENTATION)
        lungs = op_input.receive(self.INPUT_LUNGS)
        if segmentation is not None and not isinstance(segmentation, LungSegmentation):
            raise TypeError(f"{self.INPUT_SEGMENTATION} must be a LungSegmentation or None")
        if not isinstance(lungs, dict) or not all(isinstance(v, EnhancedLung) for v in lungs.values()):
            raise TypeError(f"{self.INPUT_LUNGS} must be a dict of EnhancedLung")
        if segmentation is None or not lungs:
            op_output.emit(None, self.OUTPUT_MAPS)
            op_output.emit(None, self.OUTPUT_SUMMARY)
            return
        with self._timings.measure(self.name):
            result = synthesise(self._model, segmentation, lungs)
            summary = functional_summary(self._model, result)
        op_output.emit(result, self.OUTPUT_MAPS)
        op_output.emit(summary, self.OUTPUT_SUMMARY)


def synthesise(model: FunctionModel, segmentation: LungSegmentation, lungs: dict) -> FunctionalMaps:
    """The maps of every enhanced lung on the canonical CT grid."""
    _, grid, reorientation = canonical(segmentation.ct.hu, segmentation.ct.affine_lps)
    labels = reorientation.to_canonical(segmentation.mask)
    crops = {int(label): (lung.enhanced, lung.crop) for label, lung in lungs.items()}
    return FunctionalMaps(model.synthesise_crops(crops, labels), labels, grid)


def functional_summary(model: FunctionModel, result: FunctionalMaps) -> dict[str, Any]:
    """Model identity and the regional table (shares in percent, volumes in mL) for the run record."""
    regions = quantify_regions(result.maps["perfusion"], result.maps["ventilation"], result.lung_labels, result.grid)
    metadata = model.metadata
    return {
        "model": {
            "folder": model.folder.name,
            "name": metadata.get("name"),
            "version": metadata.get("version"),
            "notice": metadata.get("notice"),
        },
        "maps": "synthetic, relative to each lung's 75th percentile (1 = P75 or above); research use only",
        "regions": [{k: _json_number(v) for k, v in r.as_dict().items()} for r in regions],
    }


def _json_number(value: object) -> object:
    """Floats rounded to 3 decimals, ``nan`` as ``None`` (strict JSON); other values unchanged."""
    if isinstance(value, float):
        return None if value != value else round(value, 3)
    return value
