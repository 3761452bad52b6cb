"""The SDK's DICOM loader, timed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from holoscan.core import ExecutionContext, InputContext, OutputContext
from monai.deploy.core import Fragment
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator

from core.run_record import StageTimings


class DicomLoaderOperator(DICOMDataLoaderOperator):
    """Load every DICOM Part 10 file under a folder into DICOMStudy objects (the SDK's loader).

    Adds only the stage timing to :class:`~monai.deploy.operators.DICOMDataLoaderOperator`; give it
    a ``CountCondition(fragment, 1)`` so that it loads once.

    Named output
    ------------
    ``OUTPUT_STUDIES``: ``list[DICOMStudy]``.
    """

    OUTPUT_STUDIES = "dicom_study_list"

    def __init__(
        self, fragment: Fragment, *args: Any, input_folder: Path, timings: StageTimings, **kwargs: Any
    ) -> None:
        """Create the loader.

        Parameters
        ----------
        fragment
            The application.
        input_folder
            Folder of DICOM files, searched recursively.
        timings
            Where the time spent loading is recorded, under the operator's name.
        """
        self._timings = timings
        super().__init__(fragment, *args, input_folder=Path(input_folder), output_name=self.OUTPUT_STUDIES, **kwargs)

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Load the studies and emit them (the SDK's compute, timed)."""
        with self._timings.measure(self.name):
            super().compute(op_input, op_output, context)
