"""Tests of core.dicom.ct_writer: valid CT Image Storage files whose pixels and geometry round-trip.

Tolerances: HU within 1 HU (values are rounded to integers, error <= 0.5 HU);
positions and spacings within 1e-4 mm (DS strings keep >= 6 significant digits).
"""

from __future__ import annotations

from pathlib import Path

import highdicom
import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage

from core.dicom.ct_reader import read_ct_volume
from core.dicom.ct_writer import WINDOWS, hu_to_stored, write_ct_series
from core.dicom.study import synthetic_patient_study
from core.geometry import Grid
from tests.core.dicom.synthetic_study import CT_GRID, WrittenStudy
from tests.dciodvfy import dciodvfy_errors, dciodvfy_warnings

HU_TOLERANCE = 1.0
MM_TOLERANCE = 1e-4


def test_every_file_passes_dciodvfy_without_errors_or_warnings(written_study: WrittenStudy) -> None:
    for path in written_study.ct_paths:
        assert dciodvfy_errors(path) == [], path.name
        assert dciodvfy_warnings(path) == [], path.name


def test_one_file_per_slice_named_in_slice_order(written_study: WrittenStudy) -> None:
    assert [p.name for p in written_study.ct_paths] == [f"CT_{k:04d}.dcm" for k in range(1, CT_GRID.shape[0] + 1)]
    for k, path in enumerate(written_study.ct_paths):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.SOPClassUID == CTImageStorage
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.InstanceNumber == k + 1


def test_geometry_of_each_file_equals_the_grid(written_study: WrittenStudy) -> None:
    dz, dy, dx = CT_GRID.spacing_mm
    for path, position in zip(written_study.ct_paths, CT_GRID.slice_positions_lps_mm(), strict=True):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], position, atol=MM_TOLERANCE)
        np.testing.assert_allclose([float(v) for v in ds.ImageOrientationPatient], [1, 0, 0, 0, 1, 0])
        np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], [dy, dx], atol=MM_TOLERANCE)
        assert float(ds.SliceThickness) == pytest.approx(dz)
        assert float(ds.SliceLocation) == pytest.approx(position[2])
        assert (ds.Rows, ds.Columns) == CT_GRID.shape[1:]


def test_pixels_round_trip_in_hu(written_study: WrittenStudy) -> None:
    for k, path in enumerate(written_study.ct_paths):
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_allclose(hu, written_study.hu[k], atol=HU_TOLERANCE)


def test_read_ct_volume_inverts_the_writer(written_study: WrittenStudy) -> None:
    hu, grid = read_ct_volume(list(reversed(written_study.ct_paths)))
    assert grid.shape == CT_GRID.shape
    np.testing.assert_allclose(grid.spacing_mm, CT_GRID.spacing_mm, atol=MM_TOLERANCE)
    np.testing.assert_allclose(grid.origin_lps_mm, CT_GRID.origin_lps_mm, atol=MM_TOLERANCE)
    np.testing.assert_allclose(hu, written_study.hu, atol=HU_TOLERANCE)


def test_highdicom_reads_the_series_as_the_same_volume(written_study: WrittenStudy) -> None:
    image = highdicom.imread(written_study.ct_paths[0])
    assert image.SOPClassUID == CTImageStorage
    volume = highdicom.get_volume_from_series([pydicom.dcmread(p) for p in written_study.ct_paths])
    assert volume.spatial_shape == CT_GRID.shape
    # highdicom stacks slices from the voxel whose position is (affine @ [0, 0, 0, 1]); map it back to LPS corners.
    first = volume.affine @ np.array([0, 0, 0, 1.0])
    last = volume.affine @ np.array([CT_GRID.shape[0] - 1, 0, 0, 1.0])
    positions = CT_GRID.slice_positions_lps_mm()
    if first[2] > last[2]:
        array = volume.array[::-1]
        np.testing.assert_allclose(last[:3], positions[0], atol=MM_TOLERANCE)
    else:
        array = volume.array
        np.testing.assert_allclose(first[:3], positions[0], atol=MM_TOLERANCE)
    np.testing.assert_allclose(array, written_study.hu, atol=HU_TOLERANCE)


def test_study_series_and_equipment_attributes(written_study: WrittenStudy) -> None:
    study = written_study.study
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in written_study.ct_paths]
    assert {ds.SeriesInstanceUID for ds in headers}.__len__() == 1
    assert len({ds.SOPInstanceUID for ds in headers}) == len(headers)
    ds = headers[0]
    assert ds.StudyInstanceUID == study.study_instance_uid
    assert ds.FrameOfReferenceUID == written_study.frame_of_reference_uid
    assert (ds.PatientName, ds.PatientID, ds.PatientAge) == (study.patient_name, study.patient_id, study.patient_age)
    assert (ds.Manufacturer, ds.AccessionNumber) == (study.manufacturer, study.accession_number)
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert (ds.Modality, ds.PatientPosition, ds.BodyPartExamined) == ("CT", "HFS", "CHEST")
    assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1
    assert float(ds.WindowCenter[0]) == WINDOWS[0][1] and ds.WindowCenterWidthExplanation[0] == "LUNG"
    assert "SYNTHETIC" in ds.ImageComments
    assert ds.SeriesDate + ds.SeriesTime >= study.study_date + study.study_time


def test_hu_encoding_limits() -> None:
    np.testing.assert_array_equal(hu_to_stored(np.array([-1024.4, -3024.0, 0.6, 31743.0])), [0, -2000, 1025, 32767])
    with pytest.raises(ValueError, match="outside the representable"):
        hu_to_stored(np.array([40000.0]))
    with pytest.raises(ValueError, match="NaN"):
        hu_to_stored(np.array([np.nan]))


def test_rejects_wrong_shape_and_a_folder_with_a_series(tmp_path: Path) -> None:
    study = synthetic_patient_study(np.random.default_rng(0))
    grid = Grid((2, 8, 8), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="grid's shape"):
        write_ct_series(np.zeros((2, 8, 9)), grid, study, tmp_path, frame_of_reference_uid=highdicom.UID())
    write_ct_series(np.zeros((2, 8, 8)), grid, study, tmp_path, frame_of_reference_uid=highdicom.UID())
    with pytest.raises(FileExistsError, match="empty folder"):
        write_ct_series(np.zeros((2, 8, 8)), grid, study, tmp_path, frame_of_reference_uid=highdicom.UID())


def test_clinical_size_series_round_trips(tmp_path: Path) -> None:
    """512 x 512 x 300 slices (150 MB); the write time is reported by bench/bench_generate_clinical.py."""
    grid = Grid.centred((300, 512, 512), (1.0, 0.7, 0.7))
    hu = np.random.default_rng(0).integers(-1024, 2000, size=grid.shape, dtype=np.int16)
    study = synthetic_patient_study(np.random.default_rng(0))
    paths = write_ct_series(hu, grid, study, tmp_path, frame_of_reference_uid=highdicom.UID())
    assert len(paths) == 300
    np.testing.assert_array_equal(pydicom.dcmread(paths[-1]).pixel_array, hu[-1] + 1024)
