"""Per-lung CT crops enhanced for the synthesis network (core.lung.enhancement, seed 000 Eq. 1)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from holoscan.core import ExecutionContext, InputContext, OutputContext
from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec

from core.errors import NoLungsFoundError
from core.labels import LungLabel
from core.lung.enhancement import EnhancedLung, enhance_lung
from core.orientation import canonical
from core.run_record import StageTimings
from operators.lung_segmentation_operator import LungSegmentation

logger = logging.getLogger(__name__)


class CtEnhancementOperator(Operator):
    """Crop each segmented lung to 128x64x64 and enhance it (:func:`core.lung.enhancement.enhance_lung`).

    A lung too small to appear in its crop is skipped with a warning.

    Named input
    -----------
    ``INPUT_SEGMENTATION``: :class:`operators.lung_segmentation_operator.LungSegmentation` or ``None``.

    Named output
    ------------
    ``OUTPUT_LUNGS``: ``dict[LungLabel, EnhancedLung]``, empty without a segmentation.  Receivers
    are optional (``ConditionType.NONE``).
    """

    INPUT_SEGMENTATION = "lung_segmentation"
    OUTPUT_LUNGS = "enhanced_lungs"

    def __init__(self, fragment: Fragment, *args: Any, timings: StageTimings, **kwargs: Any) -> None:
        """Create the operator with the shared stage ``timings``."""
        self._timings = timings
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the ports."""
        spec.input(self.INPUT_SEGMENTATION)
        spec.output(self.OUTPUT_LUNGS).condition(ConditionType.NONE)

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Enhance every lung of the mask; emit them by label."""
        segmentation = op_input.receive(self.INPUT_SEGMENTATION)
        if segmentation is not None and not isinstance(segmentation, LungSegmentation):
            raise TypeError(
                f"{self.INPUT_SEGMENTATION} must be a LungSegmentation or None, got {type(segmentation).__name__}"
            )
        lungs: dict[LungLabel, EnhancedLung] = {}
        if segmentation is not None:
            with self._timings.measure(self.name):
                lungs = _enhance_lungs(segmentation)
        op_output.emit(lungs, self.OUTPUT_LUNGS)


def _enhance_lungs(segmentation: LungSegmentation) -> dict[LungLabel, EnhancedLung]:
    """Each lung of the mask, on the canonical grid, cropped and enhanced."""
    hu, grid, reorientation = canonical(segmentation.ct.hu, segmentation.ct.affine_lps)
    mask = reorientation.to_canonical(segmentation.mask)
    present = [label for label in (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG) if np.any(mask == label)]
    # One thread per lung: Eq. 1's 10-voxel median filter (most of the time) lets go of the GIL for
    # much of its work, so the two lungs take about two thirds of the time one after the other.
    with ThreadPoolExecutor(max_workers=max(len(present), 1), thread_name_prefix="enhance") as pool:
        futures = {label: pool.submit(enhance_lung, hu, mask, label, grid) for label in present}
    lungs = {}
    for label, future in futures.items():
        try:
            enhanced, lung_mask, crop = future.result()
        except NoLungsFoundError as error:
            logger.warning("No enhanced CT for the %s: %s", label.name.lower().replace("_", " "), error)
            continue
        lungs[label] = EnhancedLung(enhanced, lung_mask, crop)
    return lungs
