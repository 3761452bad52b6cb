"""Write the run record (``run_record.json``) once every volume is built and every output written."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from holoscan.core import ExecutionContext, InputContext, OutputContext
from monai.deploy.core import Fragment, Image, Operator, OperatorSpec

from core.geometry import Grid
from core.run_record import (
    NO_LUNGS_FOUND,
    LungCropSummary,
    LungSegmentationSummary,
    OutputFile,
    RunContext,
    RunFacts,
    StageTimings,
    VolumeSummary,
    build_run_record,
    write_run_record,
)
from core.series_selection import CT_ROLE, SelectionResult, SelectionRules, selection_warnings

STATUS_COMPLETED = "completed"


class RunRecordOperator(Operator):
    """Collect what the run found, built and wrote, and write it with versions and timings as JSON.

    Named inputs
    ------------
    ``INPUT_SELECTION``: :class:`core.series_selection.SelectionResult`.
    ``INPUT_CT_IMAGE``: the CT as ``monai.deploy.core.Image``, or ``None``.
    ``INPUT_NM_VOLUMES``: ``dict[str, tuple[numpy.ndarray, Grid]]`` by tracer.
    ``INPUT_LUNG_SEGMENTATION``: :class:`core.run_record.LungSegmentationSummary`.
    ``INPUT_ENHANCED_LUNGS``: ``dict[LungLabel, EnhancedLung]`` (their crop geometry is recorded).
    ``INPUT_OUTPUT_FILES``: ``list[core.run_record.OutputFile]`` from the DICOM writers.
    ``INPUT_FUNCTIONAL``: the functional synthesis summary (dict), or ``None`` without lungs.
    ``INPUT_DENOISING``: the SPECT denoising summary (dict), or ``None`` without a fast bone SPECT.
    ``INPUT_CT_PERFUSION``: the CT perfusion summary (dict), or ``None`` without a CT perfusion series.
    ``INPUT_DSC_PERFUSION``: the DSC perfusion summary (dict), or ``None`` without a DSC series.
    """

    INPUT_SELECTION = "selection"
    INPUT_CT_IMAGE = "ct_image"
    INPUT_NM_VOLUMES = "nm_volumes"
    INPUT_LUNG_SEGMENTATION = "lung_segmentation"
    INPUT_ENHANCED_LUNGS = "enhanced_lungs"
    INPUT_OUTPUT_FILES = "output_files"
    INPUT_FUNCTIONAL = "functional_summary"
    INPUT_DENOISING = "denoising_summary"
    INPUT_CT_PERFUSION = "ct_perfusion_summary"
    INPUT_DSC_PERFUSION = "dsc_perfusion_summary"

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        record_path: Path,
        context: RunContext,
        rules: SelectionRules,
        timings: StageTimings,
        **kwargs: Any,
    ) -> None:
        """Create the operator.

        Parameters
        ----------
        fragment
            The application.
        record_path
            File to write (inside the run's working output folder).
        context
            What was known when the run started.
        rules
            The selection rules, to tell which rejections deserve a warning.
        timings
            The stage timings shared by all operators.
        """
        self._record_path = Path(record_path)
        self._context = context
        self._rules = rules
        self._timings = timings
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the ports."""
        for name in (
            self.INPUT_SELECTION,
            self.INPUT_CT_IMAGE,
            self.INPUT_NM_VOLUMES,
            self.INPUT_LUNG_SEGMENTATION,
            self.INPUT_ENHANCED_LUNGS,
            self.INPUT_OUTPUT_FILES,
            self.INPUT_FUNCTIONAL,
            self.INPUT_DENOISING,
            self.INPUT_CT_PERFUSION,
            self.INPUT_DSC_PERFUSION,
        ):
            spec.input(name)

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Build the record from the inputs and write it."""
        selection = _receive(op_input, self.INPUT_SELECTION, SelectionResult)
        ct_image = _receive(op_input, self.INPUT_CT_IMAGE, Image, optional=True)
        nm_volumes = _receive(op_input, self.INPUT_NM_VOLUMES, dict)
        lung_segmentation = _receive(op_input, self.INPUT_LUNG_SEGMENTATION, LungSegmentationSummary)
        enhanced_lungs = _receive(op_input, self.INPUT_ENHANCED_LUNGS, dict)
        outputs = _receive(op_input, self.INPUT_OUTPUT_FILES, list)
        functional = _receive(op_input, self.INPUT_FUNCTIONAL, dict, optional=True)
        denoising = _receive(op_input, self.INPUT_DENOISING, dict, optional=True)
        ct_perfusion = _receive(op_input, self.INPUT_CT_PERFUSION, dict, optional=True)
        dsc_perfusion = _receive(op_input, self.INPUT_DSC_PERFUSION, dict, optional=True)
        if not all(isinstance(output, OutputFile) for output in outputs):
            raise TypeError(f"{self.INPUT_OUTPUT_FILES} must be a list of OutputFile")
        volumes = [_ct_summary(ct_image, selection)] if ct_image is not None else []
        volumes += [
            VolumeSummary.from_grid(tracer, selection.chosen[tracer].summary.series_instance_uid, volume, grid)
            for tracer, (volume, grid) in nm_volumes.items()
        ]
        record = build_run_record(
            RunFacts(
                context=self._context,
                selection=selection,
                volumes=volumes,
                timings=self._timings,
                ended_at=datetime.now(UTC),
                ended_perf_s=time.perf_counter(),
                status=STATUS_COMPLETED,
                warnings=selection_warnings(selection, self._rules) + _lung_warnings(lung_segmentation),
                lung_segmentation=lung_segmentation,
                lung_crops=[LungCropSummary.from_crop(label, lung.crop) for label, lung in enhanced_lungs.items()],
                outputs=outputs,
                functional=functional,
                denoising=denoising,
                ct_perfusion=ct_perfusion,
                dsc_perfusion=dsc_perfusion,
            )
        )
        write_run_record(record, self._record_path)


def _receive(op_input: InputContext, name: str, expected: type, *, optional: bool = False) -> Any:
    """The message on port ``name``; raises TypeError unless it is an ``expected`` (or None if ``optional``)."""
    value = op_input.receive(name)
    if (value is None and optional) or isinstance(value, expected):
        return value
    none = " or None" if optional else ""
    raise TypeError(f"{name} must be a {expected.__name__}{none}, got {type(value).__name__}")


def _lung_warnings(summary: LungSegmentationSummary) -> list[str]:
    """The reason a CT gave no lung results, as a run record warning."""
    if summary.status == NO_LUNGS_FOUND:
        return [f"no lung segmentation (no lung results): {summary.reason}"]
    return []


def _ct_summary(image: Image, selection: SelectionResult) -> VolumeSummary:
    """Geometry of the SDK's CT Image from its metadata (spacings, and the affine's translation)."""
    metadata = image.metadata()
    array = np.asarray(image.asnumpy())
    spacing = tuple(float(metadata[k]) for k in ("depth_pixel_spacing", "row_pixel_spacing", "col_pixel_spacing"))
    origin = tuple(float(v) for v in np.asarray(metadata["affine"], dtype=np.float64)[:3, 3])
    grid = Grid(tuple(int(n) for n in array.shape), spacing, origin)  # type: ignore[arg-type]
    return VolumeSummary.from_grid(CT_ROLE, selection.chosen[CT_ROLE].summary.series_instance_uid, array, grid)
