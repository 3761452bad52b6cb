"""Left and right lungs of the chest CT (core.lung.segmentation)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from holoscan.core import ExecutionContext, InputContext, OutputContext
from monai.deploy.core import Fragment, Operator, OperatorSpec

from core.errors import NoLungsFoundError
from core.lung.segmentation import segment_lungs
from core.run_record import NO_LUNGS_FOUND, NOT_RUN, LungSegmentationSummary, StageTimings
from operators.ct_volume_operator import CtVolume

logger = logging.getLogger(__name__)

NO_CT_REASON = "the study holds no chest CT"


@dataclass(frozen=True)
class LungSegmentation:
    """A lung mask and the CT it was computed on.

    Parameters
    ----------
    ct
        The CT volume.
    mask
        uint8 :class:`core.labels.LungLabel` values in the layout of ``ct.hu``.
    """

    ct: CtVolume
    mask: np.ndarray


class LungSegmentationOperator(Operator):
    """Segment the right and left lungs of the CT volume.

    A CT that shows no lungs (abdomen only, head) is not an error of the run: the operator logs a
    warning with the reason, emits ``None`` (nothing downstream writes lung results) and reports
    :data:`core.run_record.NO_LUNGS_FOUND` with the reason to the run record.

    Named input
    -----------
    ``INPUT_CT``: :class:`operators.ct_volume_operator.CtVolume`, or ``None`` without CT.

    Named outputs
    -------------
    ``OUTPUT_SEGMENTATION``: :class:`LungSegmentation`, or ``None`` without CT or lungs.
    ``OUTPUT_SUMMARY``: :class:`core.run_record.LungSegmentationSummary` (status, reason, volumes in mL).
    """

    INPUT_CT = "ct_volume"
    OUTPUT_SEGMENTATION = "lung_segmentation"
    OUTPUT_SUMMARY = "lung_segmentation_summary"

    def __init__(self, fragment: Fragment, *args: Any, timings: StageTimings, **kwargs: Any) -> None:
        """Create the operator with the shared stage ``timings``."""
        self._timings = timings
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the ports."""
        spec.input(self.INPUT_CT)
        spec.output(self.OUTPUT_SEGMENTATION)
        spec.output(self.OUTPUT_SUMMARY)

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Segment the lungs, or say why not; emit the mask and the summary."""
        ct = op_input.receive(self.INPUT_CT)
        if ct is not None and not isinstance(ct, CtVolume):
            raise TypeError(f"{self.INPUT_CT} must be a CtVolume or None, got {type(ct).__name__}")
        segmentation, summary = None, LungSegmentationSummary(NOT_RUN, NO_CT_REASON)
        if ct is not None:
            with self._timings.measure(self.name):
                try:
                    mask = segment_lungs(ct.hu, ct.affine_lps)
                except NoLungsFoundError as error:
                    logger.warning("No lung segmentation, so no lung results for this CT: %s", error)
                    summary = LungSegmentationSummary(NO_LUNGS_FOUND, str(error))
                else:
                    segmentation = LungSegmentation(ct, mask)
                    summary = LungSegmentationSummary.from_mask(mask, ct.affine_lps)
                    logger.info(
                        "Lungs segmented: right %.0f mL, left %.0f mL",
                        *(summary.lung_volumes_ml[name] for name in ("right_lung", "left_lung")),
                    )
        op_output.emit(segmentation, self.OUTPUT_SEGMENTATION)
        op_output.emit(summary, self.OUTPUT_SUMMARY)
