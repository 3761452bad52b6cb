"""Write the lung mask as a DICOM SEG into the run's output folder (core.dicom.seg_writer)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from holoscan.core import ExecutionContext, InputContext, OutputContext
from monai.deploy.core import Fragment, Operator, OperatorSpec

from core.dicom.seg_writer import DEFAULT_SERIES_NUMBER, write_lung_seg
from core.run_record import OutputFile, StageTimings
from operators.lung_segmentation_operator import LungSegmentation

logger = logging.getLogger(__name__)


class LungSegWriterOperator(Operator):
    """Write the right/left lung mask as one BINARY DICOM Segmentation of the CT series.

    Nothing is written when no segmentation arrives (no CT, or no lungs found).

    Named input
    -----------
    ``INPUT_SEGMENTATION``: :class:`operators.lung_segmentation_operator.LungSegmentation` or ``None``.

    Named output
    ------------
    ``OUTPUT_FILES``: ``list[core.run_record.OutputFile]``, the SEG written (empty when none).
    """

    INPUT_SEGMENTATION = "lung_segmentation"
    OUTPUT_FILES = "output_files"

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        output_dir: Path,
        file_name: str,
        algorithm_version: str,
        timings: StageTimings,
        series_number: int = DEFAULT_SERIES_NUMBER,
        **kwargs: Any,
    ) -> None:
        """Create the writer.

        Parameters
        ----------
        fragment
            The application.
        output_dir
            Folder the run writes into (the runner publishes it when the run succeeds).
        file_name
            Name of the SEG file inside ``output_dir``.
        algorithm_version
            Version of the application, recorded as the algorithm's version.
        timings
            The stage timings shared by all operators.
        series_number
            SeriesNumber of the SEG series.
        """
        self._output_dir = Path(output_dir)
        self._file_name = file_name
        self._algorithm_version = algorithm_version
        self._series_number = series_number
        self._timings = timings
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the ports."""
        spec.input(self.INPUT_SEGMENTATION)
        spec.output(self.OUTPUT_FILES)

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Write the SEG when a segmentation arrived; emit what was written."""
        segmentation = op_input.receive(self.INPUT_SEGMENTATION)
        if segmentation is not None and not isinstance(segmentation, LungSegmentation):
            raise TypeError(
                f"{self.INPUT_SEGMENTATION} must be a LungSegmentation or None, got {type(segmentation).__name__}"
            )
        written: list[OutputFile] = []
        if segmentation is not None:
            with self._timings.measure(self.name):
                path = write_lung_seg(
                    segmentation.mask,
                    segmentation.ct.slices,
                    self._output_dir / self._file_name,
                    algorithm_version=self._algorithm_version,
                    series_number=self._series_number,
                )
                written.append(OutputFile.from_dicom(path, self._output_dir))
            logger.info("Wrote the lung segmentation (DICOM SEG) as %s", self._file_name)
        op_output.emit(written, self.OUTPUT_FILES)
