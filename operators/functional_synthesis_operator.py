"""Synthetic perfusion and ventilation from the CT (DDRAN, seeds 000/001), with regional quantification."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from holoscan.core import ExecutionContext, InputContext, OutputContext
from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec

from core.lung.enhancement import EnhancedLung
from core.lung.functional import FunctionalResult, agreement_with_spect, synthesise_study
from core.lung.functional_outputs import FunctionalSource, ModelIdentity
from core.lung.synthesis import FunctionModel
from core.orientation import canonical
from core.run_record import StageTimings
from operators.lung_segmentation_operator import LungSegmentation

logger = logging.getLogger(__name__)

MAPS_NOTE = "synthetic, relative to each lung's 75th percentile (1 = P75 or above); research use only"
LIMITATIONS = (
    "measured on phantoms: the lung and zone shares of the synthetic maps follow lung volume more than "
    "function; a lobar embolic defect was missed (left share 43.3 % against a true 34.0 %), so do not use "
    "the split for decisions"
)
AGREEMENT_NOTE = (
    "synthetic maps against this study's own SPECT, per lung at SPECT resolution (seed 000's metrics); "
    "phantom-trained model, not a clinical validation"
)


@dataclass(frozen=True)
class FunctionalMaps:
    """What the writers need: the synthesis result, the CT it was computed on, and the model's identity."""

    result: FunctionalResult
    source: FunctionalSource
    identity: ModelIdentity


class FunctionalSynthesisOperator(Operator):
    """Run the shipped model on each enhanced lung crop, paste the maps back, quantify, compare with SPECT.

    The model (``model.ts`` + ``metadata.json``) is loaded and its contract checked once, when the
    operator is built, so a wrong model stops the run before any DICOM is read.  When the study
    also holds a lung perfusion or ventilation SPECT, the summary gives seed 000's metrics of the
    synthetic maps against it.

    Named inputs
    ------------
    ``INPUT_SEGMENTATION``: :class:`operators.lung_segmentation_operator.LungSegmentation` or ``None``.
    ``INPUT_LUNGS``: ``dict[LungLabel, EnhancedLung]`` from :class:`operators.CtEnhancementOperator`.
    ``INPUT_NM_VOLUMES``: ``dict[str, tuple[numpy.ndarray, Grid]]`` by tracer, from :class:`operators.NmVolumeOperator`.
    ``INPUT_NM_FRAMES``: ``dict[str, str]``, their FrameOfReferenceUIDs (a SPECT in another frame is not compared).

    Named outputs
    -------------
    ``OUTPUT_MAPS``: :class:`FunctionalMaps`, or ``None`` without lungs.
    ``OUTPUT_SUMMARY``: dict for the run record (model, regional table, agreement), or ``None`` without lungs.
    """

    INPUT_SEGMENTATION = "lung_segmentation"
    INPUT_LUNGS = "enhanced_lungs"
    INPUT_NM_VOLUMES = "nm_volumes"
    INPUT_NM_FRAMES = "nm_frames_of_reference"
    OUTPUT_MAPS = "functional_maps"
    OUTPUT_SUMMARY = "functional_summary"

    def __init__(
        self, fragment: Fragment, *args: Any, model_dir: Path, app_version: str, timings: StageTimings, **kwargs: Any
    ) -> None:
        """Load the model once (raises :class:`core.errors.ModelContractError` on a bad model)."""
        self._model = FunctionModel(model_dir)
        metadata = self._model.metadata
        self._identity = ModelIdentity(
            str(metadata.get("name", self._model.folder.name)), str(metadata.get("version", "unknown")), app_version
        )
        self._timings = timings
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the ports."""
        spec.input(self.INPUT_SEGMENTATION)
        spec.input(self.INPUT_LUNGS)
        spec.input(self.INPUT_NM_VOLUMES)
        spec.input(self.INPUT_NM_FRAMES)
        spec.output(self.OUTPUT_MAPS).condition(ConditionType.NONE)
        spec.output(self.OUTPUT_SUMMARY).condition(ConditionType.NONE)

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Synthesise, quantify and compare; emit ``None`` twice when the CT had no lungs."""
        segmentation = op_input.receive(self.INPUT_SEGMENTATION)
        lungs = op_input.receive(self.INPUT_LUNGS)
        spects = op_input.receive(self.INPUT_NM_VOLUMES)
        frames = op_input.receive(self.INPUT_NM_FRAMES)
        if segmentation is not None and not isinstance(segmentation, LungSegmentation):
            raise TypeError(f"{self.INPUT_SEGMENTATION} must be a LungSegmentation or None")
        if not isinstance(lungs, dict) or not all(isinstance(v, EnhancedLung) for v in lungs.values()):
            raise TypeError(f"{self.INPUT_LUNGS} must be a dict of EnhancedLung")
        if not isinstance(spects, dict) or not isinstance(frames, dict):
            raise TypeError(f"{self.INPUT_NM_VOLUMES} and {self.INPUT_NM_FRAMES} must be dicts by tracer")
        if segmentation is None or not lungs:
            op_output.emit(None, self.OUTPUT_MAPS)
            op_output.emit(None, self.OUTPUT_SUMMARY)
            return
        with self._timings.measure(self.name):
            hu, grid, reorientation = canonical(segmentation.ct.hu, segmentation.ct.affine_lps)
            labels = reorientation.to_canonical(segmentation.mask)
            result = synthesise_study(self._model, lungs, labels, grid)
            summary = functional_summary(self._model, result)
        ct_frame = str(segmentation.ct.slices[0].get("FrameOfReferenceUID", ""))
        same_frame = {tracer: spect for tracer, spect in spects.items() if ct_frame and frames.get(tracer) == ct_frame}
        other_frame = sorted(tracer for tracer in spects if tracer in result.maps and tracer not in same_frame)
        if other_frame:
            summary["not_compared"] = f"{', '.join(other_frame)} SPECT: another Frame of Reference than the CT"
            logger.warning("Not compared with the synthetic maps: %s", summary["not_compared"])
        with self._timings.measure("agreement_with_spect"):
            agreement = agreement_with_spect(result, lungs, same_frame)
        if agreement:
            summary["agreement_with_spect"] = {"note": AGREEMENT_NOTE, **agreement}
            logger.info("Synthetic maps against the study's SPECT: %s", _agreement_line(agreement))
        maps = FunctionalMaps(result, FunctionalSource(list(segmentation.ct.slices), hu, reorientation), self._identity)
        op_output.emit(maps, self.OUTPUT_MAPS)
        op_output.emit(summary, self.OUTPUT_SUMMARY)


def functional_summary(model: FunctionModel, result: FunctionalResult) -> dict[str, Any]:
    """Model identity and the regional table (shares in percent, volumes in mL) for the run record."""
    metadata = model.metadata
    return {
        "model": {
            "folder": model.folder.name,
            "name": metadata.get("name"),
            "version": metadata.get("version"),
            "notice": metadata.get("notice"),
        },
        "maps": MAPS_NOTE,
        "limitations": LIMITATIONS,
        "regions": [{k: _json_number(v) for k, v in r.as_dict().items()} for r in result.regions],
    }


def _agreement_line(agreement: dict[str, dict[str, dict[str, float | None]]]) -> str:
    """``perfusion Spearman 0.71 SSIM 0.86, ...`` from the per-function means."""
    return ", ".join(
        f"{name} Spearman {values['mean']['spearman']} SSIM {values['mean']['ssim']}"
        for name, values in agreement.items()
    )


def _json_number(value: object) -> object:
    """Floats rounded to 3 decimals, ``nan`` as ``None`` (strict JSON); other values unchanged."""
    if isinstance(value, float):
        return None if value != value else round(value, 3)
    return value
