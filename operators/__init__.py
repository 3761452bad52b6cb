"""Operators of the application: one per file, each thin (receive -> validate -> call core -> emit).

The logic lives in :mod:`core`; an operator only moves data between ports.  Port names are
class constants, e.g. ``SeriesSelectionOperator.OUTPUT_CT_SERIES``.
"""

from operators.ct_volume_operator import CtVolumeOperator
from operators.dicom_loader_operator import DicomLoaderOperator
from operators.nm_volume_operator import NmVolumeOperator
from operators.run_record_operator import RunRecordOperator
from operators.series_selection_operator import SeriesSelectionOperator

__all__ = [
    "CtVolumeOperator",
    "DicomLoaderOperator",
    "NmVolumeOperator",
    "RunRecordOperator",
    "SeriesSelectionOperator",
]
