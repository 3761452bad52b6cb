"""The chest CT as a volume, by the SDK's DICOMSeriesToVolumeOperator."""

from __future__ import annotations

from typing import Any

from holoscan.core import ExecutionContext, InputContext, OutputContext
from monai.deploy.core import Fragment
from monai.deploy.core.domain.dicom_series_selection import StudySelectedSeries
from monai.deploy.operators.dicom_series_to_volume_operator import DICOMSeriesToVolumeOperator

from core.run_record import StageTimings


class CtVolumeOperator(DICOMSeriesToVolumeOperator):
    """Stack the chosen CT series into an SDK ``Image`` (``(z, y, x)``, rescaled to HU, LPS affine).

    The SDK's converter does the work; this subclass emits ``None`` for a study without CT
    (the SDK operator raises on an empty selection) and records the stage timing.

    Named input
    -----------
    ``INPUT_SERIES``: ``list[StudySelectedSeries]`` holding only the CT, or ``[]``.

    Named output
    ------------
    ``OUTPUT_IMAGE``: ``monai.deploy.core.Image`` or ``None``.  Its metadata holds
    ``row_pixel_spacing`` (PixelSpacing[0], dy), ``col_pixel_spacing`` (dx), ``depth_pixel_spacing``
    (dz) and ``affine``, whose translation is the LPS position of voxel ``[0, 0, 0]``.  The SDK 4.0
    affine takes the column step from PixelSpacing[0]: use the spacings, not the affine's
    direction columns, for non-square pixels.
    """

    INPUT_SERIES = "study_selected_series_list"
    OUTPUT_IMAGE = "image"

    def __init__(self, fragment: Fragment, *args: Any, timings: StageTimings, **kwargs: Any) -> None:
        """Create the converter (LPS affine) with the shared stage ``timings``."""
        self._timings = timings
        super().__init__(fragment, *args, affine_lps_to_ras=False, **kwargs)
        if (self.input_name_series, self.output_name_image) != (self.INPUT_SERIES, self.OUTPUT_IMAGE):
            raise RuntimeError(
                f"the SDK renamed DICOMSeriesToVolumeOperator's ports to {self.input_name_series!r} and "
                f"{self.output_name_image!r}; update CtVolumeOperator's port constants"
            )

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Convert the CT, or pass ``None`` on when the study has none."""
        selected = op_input.receive(self.INPUT_SERIES)
        if not isinstance(selected, list) or not all(isinstance(s, StudySelectedSeries) for s in selected):
            raise TypeError(f"{self.INPUT_SERIES} must be a list of StudySelectedSeries, got {type(selected).__name__}")
        with self._timings.measure(self.name):
            image = self.convert_to_image(selected) if selected else None
        op_output.emit(image, self.OUTPUT_IMAGE)
