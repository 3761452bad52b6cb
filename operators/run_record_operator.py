"""Write the run record (``run_record.json``) once every volume is built."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from holoscan.core import ExecutionContext, InputContext, OutputContext
from monai.deploy.core import Fragment, Image, Operator, OperatorSpec

from core.geometry import Grid
from core.run_record import RunContext, RunFacts, StageTimings, VolumeSummary, build_run_record, write_run_record
from core.series_selection import CT_ROLE, SelectionResult, SelectionRules, selection_warnings

STATUS_COMPLETED = "completed"


class RunRecordOperator(Operator):
    """Collect what the run found and built, and write it with versions and timings as JSON.

    Named inputs
    ------------
    ``INPUT_SELECTION``: :class:`core.series_selection.SelectionResult`.
    ``INPUT_CT_IMAGE``: the CT as ``monai.deploy.core.Image``, or ``None``.
    ``INPUT_NM_VOLUMES``: ``dict[str, tuple[numpy.ndarray, Grid]]`` by tracer.
    """

    INPUT_SELECTION = "selection"
    INPUT_CT_IMAGE = "ct_image"
    INPUT_NM_VOLUMES = "nm_volumes"

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
        spec.input(self.INPUT_SELECTION)
        spec.input(self.INPUT_CT_IMAGE)
        spec.input(self.INPUT_NM_VOLUMES)

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Build the record from the inputs and write it."""
        selection = op_input.receive(self.INPUT_SELECTION)
        ct_image = op_input.receive(self.INPUT_CT_IMAGE)
        nm_volumes = op_input.receive(self.INPUT_NM_VOLUMES)
        if not isinstance(selection, SelectionResult):
            raise TypeError(f"{self.INPUT_SELECTION} must be a SelectionResult, got {type(selection).__name__}")
        if ct_image is not None and not isinstance(ct_image, Image):
            raise TypeError(f"{self.INPUT_CT_IMAGE} must be an Image or None, got {type(ct_image).__name__}")
        if not isinstance(nm_volumes, dict):
            raise TypeError(f"{self.INPUT_NM_VOLUMES} must be a dict by tracer, got {type(nm_volumes).__name__}")
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
                warnings=selection_warnings(selection, self._rules),
            )
        )
        write_run_record(record, self._record_path)


def _ct_summary(image: Image, selection: SelectionResult) -> VolumeSummary:
    """Geometry of the SDK's CT Image from its metadata (spacings, and the affine's translation)."""
    metadata = image.metadata()
    array = np.asarray(image.asnumpy())
    spacing = tuple(float(metadata[k]) for k in ("depth_pixel_spacing", "row_pixel_spacing", "col_pixel_spacing"))
    origin = tuple(float(v) for v in np.asarray(metadata["affine"], dtype=np.float64)[:3, 3])
    grid = Grid(tuple(int(n) for n in array.shape), spacing, origin)  # type: ignore[arg-type]
    return VolumeSummary.from_grid(CT_ROLE, selection.chosen[CT_ROLE].summary.series_instance_uid, array, grid)
