"""The app's loader keeps every frame of a CT perfusion series, and only of such series.

The SDK 4.0 loader keeps one image per slice position (the highest AcquisitionNumber); that is right
for a re-acquired slice of a static CT and wrong for a 4D CT perfusion, whose frames share positions.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from holoscan.core import Fragment
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator

from core.run_record import StageTimings
from operators import DicomLoaderOperator
from tests.app.conftest import CTP_STUDY

CTP_FILES = sorted((CTP_STUDY / "dicom").glob("*.dcm"))


def _instances(loader: DICOMDataLoaderOperator, folder: Path) -> int:
    studies = loader.load_data_to_studies(folder)
    return sum(len(series.get_sop_instances()) for study in studies for series in study.get_all_series())


def test_every_frame_of_the_ctp_sample_is_kept() -> None:
    fragment = Fragment()
    assert _instances(DICOMDataLoaderOperator(fragment, name="sdk"), CTP_STUDY / "dicom") == 8  # the SDK alone
    ours = DicomLoaderOperator(fragment, input_folder=CTP_STUDY / "dicom", timings=StageTimings(), name="ours")
    assert _instances(ours, CTP_STUDY / "dicom") == len(CTP_FILES) == 320


def test_a_few_repeated_positions_stay_deduplicated(tmp_path: Path) -> None:
    # the first 3 frames (24 files): positions repeat 3 times, fewer than the 10 a perfusion needs
    by_time = sorted(CTP_FILES, key=lambda p: int(pydicom.dcmread(p, stop_before_pixels=True).AcquisitionNumber))
    for path in by_time[:24]:
        shutil.copy(path, tmp_path / path.name)
    ours = DicomLoaderOperator(Fragment(), input_folder=tmp_path, timings=StageTimings(), name="ours")
    assert _instances(ours, tmp_path) == 8
