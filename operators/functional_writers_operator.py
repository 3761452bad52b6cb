"""Write every functional lung object (SEG, Parametric Maps, key images, RT Structure Set, SR, PDF)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from holoscan.core import ExecutionContext, InputContext, OutputContext
from monai.deploy.core import Fragment, Operator, OperatorSpec

from core.lung.functional_outputs import FunctionalSeriesNumbers, write_functional_outputs
from core.run_record import OutputFile, StageTimings
from operators.functional_synthesis_operator import FunctionalMaps

logger = logging.getLogger(__name__)


class FunctionalWritersOperator(Operator):
    """Write the synthetic maps and what is derived from them (:mod:`core.lung.functional_outputs`).

    Nothing is written when no maps arrive (no CT, or no lungs).  The files of the earlier writers
    come in on ``INPUT_FILES`` and go out with this operator's own, so the run record lists them all.

    Named inputs
    ------------
    ``INPUT_MAPS``: :class:`operators.functional_synthesis_operator.FunctionalMaps` or ``None``.
    ``INPUT_FILES``: ``list[core.run_record.OutputFile]`` written before.

    Named output
    ------------
    ``OUTPUT_FILES``: ``list[core.run_record.OutputFile]``, the earlier files then this operator's.
    """

    INPUT_MAPS = "functional_maps"
    INPUT_FILES = "files_so_far"
    OUTPUT_FILES = "output_files"

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        output_dir: Path,
        timings: StageTimings,
        series_numbers: FunctionalSeriesNumbers,
        **kwargs: Any,
    ) -> None:
        """Create the writer for the run's working ``output_dir``."""
        self._output_dir = Path(output_dir)
        self._timings = timings
        self._series_numbers = series_numbers
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the ports."""
        spec.input(self.INPUT_MAPS)
        spec.input(self.INPUT_FILES)
        spec.output(self.OUTPUT_FILES)

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Write the objects when maps arrived; emit every file written so far."""
        maps = op_input.receive(self.INPUT_MAPS)
        earlier = op_input.receive(self.INPUT_FILES)
        if maps is not None and not isinstance(maps, FunctionalMaps):
            raise TypeError(f"{self.INPUT_MAPS} must be FunctionalMaps or None, got {type(maps).__name__}")
        if not isinstance(earlier, list) or not all(isinstance(f, OutputFile) for f in earlier):
            raise TypeError(f"{self.INPUT_FILES} must be a list of OutputFile")
        written = list(earlier)
        if maps is not None:
            paths = write_functional_outputs(
                maps.result,
                maps.source,
                self._output_dir,
                identity=maps.identity,
                timings=self._timings,
                numbers=self._series_numbers,
            )
            written += [OutputFile.from_dicom(path, self._output_dir) for path in paths]
        op_output.emit(written, self.OUTPUT_FILES)
