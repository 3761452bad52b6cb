"""The SDK's DICOM loader, timed."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import monai.deploy.operators.dicom_data_loader_operator as sdk_loader
from holoscan.core import ExecutionContext, InputContext, OutputContext
from monai.deploy.core import Fragment
from monai.deploy.core.domain.dicom_study import DICOMStudy
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator
from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError

from core.dicom.ctp_reader import time_points_per_position
from core.run_record import StageTimings

logger = logging.getLogger(__name__)

DEFER_SIZE_BYTES = 64 * 1024
"""Elements larger than this (pixel data) stay in their file until first used."""


class DicomLoaderOperator(DICOMDataLoaderOperator):
    """Load every DICOM Part 10 file under a folder into DICOMStudy objects (the SDK's loader).

    Adds the stage timing to :class:`~monai.deploy.operators.DICOMDataLoaderOperator`, and keeps the
    frames of dynamic series: the SDK keeps one image per slice position (the highest
    AcquisitionNumber), which is right for a re-acquired slice of a static CT but drops every frame
    but the last of a CT perfusion.  A series whose positions repeat at ``min_time_points`` or more
    acquisition times gets all its images back (as headers; readers open the files).  Files are read
    in name order, so that where the SDK keeps the first of two equal images the choice does not
    depend on the file system, and ``skipped_files`` (damaged files, DICOMDIRs, found by the runner's
    header scan) are not read at all.  Large elements (pixel data) are read from their file only when
    first used: the SDK reads every file whole, so memory would otherwise grow with every series in
    the study, also those the app never uses.  Give it a ``CountCondition(fragment, 1)`` so that it
    loads once.

    Named output
    ------------
    ``OUTPUT_STUDIES``: ``list[DICOMStudy]``.
    """

    OUTPUT_STUDIES = "dicom_study_list"

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        input_folder: Path,
        timings: StageTimings,
        min_time_points: int = 10,
        skipped_files: tuple[Path, ...] = (),
        **kwargs: Any,
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
        min_time_points
            Fewest acquisition times per slice position that make a series dynamic (kept whole).
        skipped_files
            Files under ``input_folder`` not to read.
        """
        self._timings = timings
        self._min_time_points = min_time_points
        self._skipped_files = {str(path) for path in skipped_files}
        super().__init__(fragment, *args, input_folder=Path(input_folder), output_name=self.OUTPUT_STUDIES, **kwargs)

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Load the studies and emit them (the SDK's compute, timed)."""
        with self._timings.measure(self.name):
            super().compute(op_input, op_output, context)

    def _load_data(self, files: list[str]) -> list[DICOMStudy]:
        """The SDK's studies, with the frames of dynamic series restored (see the class docstring)."""
        files = sorted(file for file in files if file not in self._skipped_files)
        with _large_elements_deferred():
            studies = super()._load_data(files)
        by_series: dict[str, list[Dataset]] = {}
        for file in files:
            try:
                header: Dataset = dcmread(file, stop_before_pixels=True)
            except (InvalidDicomError, OSError):
                continue
            if "SeriesInstanceUID" in header:
                by_series.setdefault(str(header.SeriesInstanceUID), []).append(header)
        for study in studies:
            for series in study.get_all_series():
                headers = by_series.get(str(series.SeriesInstanceUID), [])
                kept = series.get_sop_instances()
                if len(headers) > len(kept) and time_points_per_position(headers) >= self._min_time_points:
                    kept.clear()  # the SDK's own list: refill it with every frame
                    for image in headers:
                        series.add_sop_instance(image)
                    logger.info("kept all %d images of dynamic series %s", len(headers), series.SeriesInstanceUID)
        return studies


@contextmanager
def _large_elements_deferred() -> Iterator[None]:
    """Make the SDK loader's ``dcmread`` defer elements over :data:`DEFER_SIZE_BYTES` while in this block."""
    if not callable(getattr(sdk_loader, "dcmread", None)):
        raise RuntimeError(
            "the SDK's DICOM loader no longer reads files with its module-level dcmread; update "
            "DicomLoaderOperator so that pixel data stays deferred"
        )
    sdk_read = sdk_loader.dcmread
    sdk_loader.dcmread = functools.partial(dcmread, defer_size=DEFER_SIZE_BYTES)
    try:
        yield
    finally:
        sdk_loader.dcmread = sdk_read
