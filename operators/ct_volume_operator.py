"""The chest CT as a volume, by the SDK's DICOMSeriesToVolumeOperator, with its exact geometry and slices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from holoscan.core import ExecutionContext, InputContext, OutputContext
from monai.deploy.core import ConditionType, Fragment, Image, OperatorSpec
from monai.deploy.core.domain.dicom_series_selection import StudySelectedSeries
from monai.deploy.operators.dicom_series_to_volume_operator import DICOMSeriesToVolumeOperator
from pydicom import Dataset

from core.dicom.slice_stack import (
    check_complete_slices,
    slice_stack_affine_lps,
    sorted_along_normal,
    undecodable_slice,
)
from core.run_record import StageTimings


@dataclass(frozen=True)
class CtVolume:
    """A CT series as a HU volume, its exact geometry and its source slices.

    Parameters
    ----------
    hu
        ``(slices, rows, columns)`` float32 HU, slices in
        :func:`core.dicom.seg_writer.sorted_along_normal` order (the SDK's order).
    affine_lps
        4x4 index-to-LPS affine from the DICOM headers (:mod:`core.orientation`).
    slices
        The slices' pydicom datasets, headers only (their pixel data is in ``hu``); ``slices[k]`` holds ``hu[k]``.
    series_instance_uid
        SeriesInstanceUID of the CT.
    """

    hu: np.ndarray
    affine_lps: np.ndarray
    slices: tuple[Dataset, ...]
    series_instance_uid: str


class CtVolumeOperator(DICOMSeriesToVolumeOperator):
    """Stack the chosen CT series into an SDK ``Image`` (``(z, y, x)``, rescaled to HU, LPS affine).

    The SDK's converter does the work; this subclass emits ``None`` for a study without CT
    (the SDK operator raises on an empty selection), adds the :class:`CtVolume` with the
    exact affine and the source slices, and records the stage timing.

    Named input
    -----------
    ``INPUT_SERIES``: ``list[StudySelectedSeries]`` holding only the CT, or ``[]``.

    Named outputs
    -------------
    ``OUTPUT_IMAGE``: ``monai.deploy.core.Image`` or ``None``.  Its metadata holds
    ``row_pixel_spacing`` (PixelSpacing[0], dy), ``col_pixel_spacing`` (dx), ``depth_pixel_spacing``
    (dz) and ``affine``, whose translation is the LPS position of voxel ``[0, 0, 0]``.  The SDK 4.0
    affine takes the column step from PixelSpacing[0]: use the spacings, not the affine's
    direction columns, for non-square pixels.
    ``OUTPUT_CT_VOLUME``: :class:`CtVolume` (same array, exact affine) or ``None``.

    Raises
    ------
    InputDataError
        If a slice file is incomplete or its pixel data cannot be decoded (the message names the
        file), or the slices are not on one regular grid (missing slice, uneven spacing, duplicates,
        moving table).
    """

    INPUT_SERIES = "study_selected_series_list"
    OUTPUT_IMAGE = "image"
    OUTPUT_CT_VOLUME = "ct_volume"

    def __init__(self, fragment: Fragment, *args: Any, timings: StageTimings, **kwargs: Any) -> None:
        """Create the converter (LPS affine) with the shared stage ``timings``."""
        self._timings = timings
        super().__init__(fragment, *args, affine_lps_to_ras=False, **kwargs)
        if (self.input_name_series, self.output_name_image) != (self.INPUT_SERIES, self.OUTPUT_IMAGE):
            raise RuntimeError(
                f"the SDK renamed DICOMSeriesToVolumeOperator's ports to {self.input_name_series!r} and "
                f"{self.output_name_image!r}; update CtVolumeOperator's port constants"
            )

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the SDK's ports and the CT volume output."""
        super().setup(spec)
        spec.output(self.OUTPUT_CT_VOLUME).condition(ConditionType.NONE)

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Convert the CT, or pass ``None`` on when the study has none."""
        selected = op_input.receive(self.INPUT_SERIES)
        if not isinstance(selected, list) or not all(isinstance(s, StudySelectedSeries) for s in selected):
            raise TypeError(f"{self.INPUT_SERIES} must be a list of StudySelectedSeries, got {type(selected).__name__}")
        with self._timings.measure(self.name):
            image = self._convert(selected) if selected else None
            ct_volume = _ct_volume(image, selected) if image is not None else None
            if image is not None and ct_volume is not None:
                # One array for both outputs: the SDK's (often int16) copy would otherwise stay in
                # memory until the run record, the graph's last operator, has read its geometry.
                image = Image(ct_volume.hu, metadata=image.metadata())
                # The slices are headers from here on (the writers reference them): their encoded
                # and decoded pixel data, twice the CT's int16 size, would stay for the whole run.
                for ds in ct_volume.slices:
                    if "PixelData" in ds:
                        del ds.PixelData
        op_output.emit(image, self.OUTPUT_IMAGE)
        op_output.emit(ct_volume, self.OUTPUT_CT_VOLUME)

    def _convert(self, selected: list[StudySelectedSeries]) -> Image | None:
        """The SDK's conversion, after checking that every slice is complete; a decoding failure names the file."""
        slices = [sop.get_native_sop_instance() for sop in selected[0].selected_series[0].series.get_sop_instances()]
        check_complete_slices(slices)
        try:
            return self.convert_to_image(selected)
        except Exception as error:  # the SDK wraps decoder errors in RuntimeError; find the file at fault
            damaged = undecodable_slice(slices)
            if damaged is None:
                raise
            raise damaged from error


def _ct_volume(image: Image, selected: list[StudySelectedSeries]) -> CtVolume:
    """The converted ``image`` with the affine of its slices (sorted by the SDK's converter)."""
    series = selected[0].selected_series[0].series
    slices = tuple(sop.get_native_sop_instance() for sop in series.get_sop_instances())
    if [id(ds) for ds in sorted_along_normal(slices)] != [id(ds) for ds in slices]:
        raise RuntimeError(
            "the SDK's DICOMSeriesToVolumeOperator no longer sorts slices along the slice normal; "
            "update CtVolumeOperator so that the CT volume and the SEG frames stay in one order"
        )
    hu = np.asarray(image.asnumpy(), dtype=np.float32)
    return CtVolume(hu, slice_stack_affine_lps(slices), slices, str(series.SeriesInstanceUID))
