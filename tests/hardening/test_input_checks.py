"""The checks behind the bad-input suite, without running the application (fast)."""

from __future__ import annotations

import copy
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MediaStorageDirectoryStorage

from app.config import AppConfig
from core.dicom.slice_stack import check_complete_slices, slice_stack_affine_lps, undecodable_slice
from core.errors import InputDataError, NoMatchingSeriesError
from core.series_selection import CT_ROLE, REJECTED, scan_folder, select_series, summarize_series
from tests.hardening import cases


@pytest.mark.filterwarnings("ignore:VR lookup failed:UserWarning")  # the random bytes of garbage.dcm
def test_scan_names_damaged_files_and_skips_a_dicomdir(tmp_path: Path) -> None:
    cases.write_series(cases.small_ct()[:4], tmp_path)
    cases.add_corrupted_file(tmp_path)
    (tmp_path / "cut.dcm").write_bytes((tmp_path / "CT_0001.dcm").read_bytes()[:600])
    directory = pydicom.Dataset()
    directory.file_meta = FileMetaDataset()
    directory.file_meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    directory.file_meta.MediaStorageSOPInstanceUID = cases.uid("dicomdir")
    directory.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    directory.FileSetID = "STUDY"
    directory.save_as(tmp_path / "DICOMDIR", enforce_file_format=True)

    scan = scan_folder(tmp_path)
    assert [d.path.name for d in scan.damaged_files] == ["cut.dcm", "garbage.dcm"]
    assert all("no StudyInstanceUID" in d.problem or "does not parse" in d.problem for d in scan.damaged_files)
    assert [p.name for p in scan.directory_files] == ["DICOMDIR"]
    assert [s.n_instances for s in scan.series] == [4]


def test_two_different_images_at_one_position_reject_the_series() -> None:
    slices = cases.small_ct()[:10]
    other = copy.deepcopy(slices[4])
    other.SOPInstanceUID = cases.uid("other image")
    copied = copy.deepcopy(slices[5])  # the same instance twice is harmless
    rules = AppConfig().selection
    assert summarize_series([*slices, copied]).conflicting_positions == 0
    summary = summarize_series([*slices, other])
    assert summary.conflicting_positions == 1
    other.AcquisitionNumber = int(slices[4].AcquisitionNumber) + 1  # a re-acquired slice: the loader keeps it
    assert summarize_series([*slices, other]).conflicting_positions == 0
    with pytest.raises(NoMatchingSeriesError, match="1 slice position"):
        select_series([summary], rules)
    good = summarize_series(cases.small_ct("good", series_number=2)[:10])
    result = select_series([summary, good], rules)
    assert result.chosen[CT_ROLE].summary.series_number == 2
    assert result.verdicts[0].decision == REJECTED


def test_incomplete_and_undecodable_slices_are_named(tmp_path: Path) -> None:
    slices = cases.small_ct()[:3]
    del slices[1].PixelSpacing
    slices[1].filename = str(tmp_path / "CT_0002.dcm")
    with pytest.raises(InputDataError, match=r"CT file CT_0002\.dcm lacks PixelSpacing"):
        check_complete_slices(slices)

    readable = cases.small_ct()[:3]
    assert undecodable_slice(readable) is None
    readable[2].PixelData = readable[2].PixelData[:100]
    readable[2].filename = "CT_0003.dcm"
    error = undecodable_slice(readable)
    assert error is not None and "CT file CT_0003.dcm cannot be decoded" in str(error)


def test_a_gap_names_its_size_and_the_file_before_it() -> None:
    slices = cases.small_ct()[:8]
    for k, ds in enumerate(slices):
        ds.filename = f"CT_{k + 1:04d}.dcm"
    with pytest.raises(InputDataError, match=r"range from 6\.00 to 12\.00 mm, the widest after file CT_0004\.dcm"):
        slice_stack_affine_lps(slices[:4] + slices[5:])
