"""The chosen SPECT series as float volumes on their grids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
from holoscan.core import ExecutionContext, InputContext, OutputContext
from monai.deploy.core import Fragment, Operator, OperatorSpec
from monai.deploy.core.domain.dicom_series_selection import StudySelectedSeries

from core.dicom.nm_writer import read_nm_volume
from core.errors import InputDataError
from core.run_record import StageTimings


class NmVolumeOperator(Operator):
    """Read each chosen reconstructed SPECT series into a ``(z, y, x)`` float32 volume and its Grid.

    The SDK's DICOMSeriesToVolumeOperator stacks single-frame slices only; a SPECT volume is one
    multi-frame NM object, read by :func:`core.dicom.nm_writer.read_nm_volume`.

    Named input
    -----------
    ``INPUT_SERIES``: ``list[StudySelectedSeries]``, selection name = tracer; may be empty.

    Named output
    ------------
    ``OUTPUT_VOLUMES``: ``dict[str, tuple[numpy.ndarray, core.geometry.Grid]]`` keyed by tracer
    (``"perfusion"``, ``"ventilation"``, ``"bone"``); counts per voxel, slice 0 the most inferior.
    ``OUTPUT_FRAMES_OF_REFERENCE``: ``dict[str, str]``, the FrameOfReferenceUID of each tracer's
    series ("" when absent): volumes compare with the CT only in the same frame.

    Raises
    ------
    InputDataError
        If a chosen series is not one multi-frame file, or is not an axial RECON TOMO volume.
    """

    INPUT_SERIES = "nm_series"
    OUTPUT_VOLUMES = "nm_volumes"
    OUTPUT_FRAMES_OF_REFERENCE = "nm_frames_of_reference"

    def __init__(self, fragment: Fragment, *args: Any, timings: StageTimings, **kwargs: Any) -> None:
        """Create the operator with the shared stage ``timings``."""
        self._timings = timings
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the ports."""
        spec.input(self.INPUT_SERIES)
        spec.output(self.OUTPUT_VOLUMES)
        spec.output(self.OUTPUT_FRAMES_OF_REFERENCE)

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Read every chosen SPECT series and emit the volumes by tracer."""
        selected = op_input.receive(self.INPUT_SERIES)
        if not isinstance(selected, list) or not all(isinstance(s, StudySelectedSeries) for s in selected):
            raise TypeError(f"{self.INPUT_SERIES} must be a list of StudySelectedSeries, got {type(selected).__name__}")
        with self._timings.measure(self.name):
            files = {
                chosen.selection_name: source_file(chosen.series.get_sop_instances())
                for study in selected
                for chosen in study.selected_series
            }
            volumes = {tracer: read_nm_volume(path) for tracer, path in files.items()}
            frames = {
                tracer: str(pydicom.dcmread(path, stop_before_pixels=True).get("FrameOfReferenceUID", ""))
                for tracer, path in files.items()
            }
        op_output.emit(volumes, self.OUTPUT_VOLUMES)
        op_output.emit(frames, self.OUTPUT_FRAMES_OF_REFERENCE)


def source_file(instances: list[Any]) -> Path:
    """The one file a tomographic NM series is stored in."""
    if len(instances) != 1:
        raise InputDataError(f"a SPECT volume must be one multi-frame instance, got {len(instances)} instances")
    filename = getattr(instances[0].get_native_sop_instance(), "filename", None)
    if not filename:
        raise InputDataError("the SPECT instance was not read from a file; cannot read its volume")
    return Path(filename)
