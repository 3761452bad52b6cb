"""All series of one synthetic study share study, patient and frame of reference; another seed differs."""

from __future__ import annotations

from pathlib import Path

import pydicom

from tests.core.dicom.synthetic_study import STUDY_SEED, WrittenStudy, write_study


def _headers(written: WrittenStudy) -> list[pydicom.Dataset]:
    paths = [*written.ct_paths, *written.nm_paths.values()]
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]


def test_all_files_share_study_patient_and_frame_of_reference(written_study: WrittenStudy) -> None:
    headers = _headers(written_study)
    for keyword in (
        "StudyInstanceUID",
        "FrameOfReferenceUID",
        "PatientID",
        "PatientName",
        "AccessionNumber",
        "StudyDate",
    ):
        assert len({str(ds[keyword].value) for ds in headers}) == 1, keyword
    assert headers[0].StudyInstanceUID == written_study.study.study_instance_uid
    assert headers[0].FrameOfReferenceUID == written_study.frame_of_reference_uid


def test_series_and_instances_are_distinct(written_study: WrittenStudy) -> None:
    headers = _headers(written_study)
    assert len({ds.SeriesInstanceUID for ds in headers}) == 3
    assert len({int(ds.SeriesNumber) for ds in headers}) == 3
    assert len({ds.SOPInstanceUID for ds in headers}) == len(headers)
    series_times = sorted((int(ds.SeriesNumber), ds.SeriesDate + ds.SeriesTime) for ds in headers)
    assert [t for _, t in series_times] == sorted(t for _, t in series_times)


def test_another_seed_gives_another_study(written_study: WrittenStudy, tmp_path: Path) -> None:
    other = write_study(tmp_path, STUDY_SEED + 1)
    first, second = _headers(written_study)[0], _headers(other)[0]
    for keyword in ("StudyInstanceUID", "FrameOfReferenceUID", "PatientID", "PatientName", "SeriesInstanceUID"):
        assert first[keyword].value != second[keyword].value, keyword
