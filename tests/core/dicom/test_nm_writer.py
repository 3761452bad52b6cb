"""Tests of core.dicom.nm_writer: a valid multi-frame RECON TOMO NM object that round-trips.

Tolerances: counts within half a quantisation step (``max / 65535 / 2``) plus
float32 rounding; positions and spacings within 1e-4 mm.
"""

from __future__ import annotations

import logging
from pathlib import Path

import highdicom
import numpy as np
import pydicom
import pytest
import SimpleITK
from pydicom.uid import NuclearMedicineImageStorage

from core.dicom.nm_writer import UINT16_MAX, counts_to_stored, read_nm_volume, write_nm_series
from core.dicom.radiopharmaceuticals import TRACERS
from core.dicom.study import synthetic_patient_study
from core.errors import InputDataError
from core.geometry import Grid
from tests.core.dicom.synthetic_study import NM_GRID, WrittenStudy
from tests.dciodvfy import dciodvfy_errors, dciodvfy_warnings

MM_TOLERANCE = 1e-4
# Units (0054,1001) comes from the PET Series module; NM viewers read it, dciodvfy notes it is outside the NM IOD.
EXPECTED_WARNINGS = {
    "Warning - Attribute is not present in standard DICOM IOD - (0x0054,0x1001) CS Units",
    "Warning - Dicom dataset contains attributes not present in standard DICOM IOD"
    " - this is a Standard Extended SOP Class",
}


def _quantisation_tolerance(volume: np.ndarray) -> float:
    return float(volume.max()) / UINT16_MAX / 2 + 1e-6 * float(volume.max())


@pytest.mark.parametrize("tracer", ["perfusion", "ventilation"])
def test_passes_dciodvfy_without_errors(written_study: WrittenStudy, tracer: str) -> None:
    path = written_study.nm_paths[tracer]
    assert dciodvfy_errors(path) == []
    assert set(dciodvfy_warnings(path)) <= EXPECTED_WARNINGS


@pytest.mark.parametrize("tracer", ["perfusion", "ventilation"])
def test_read_nm_volume_returns_the_volume_and_grid(written_study: WrittenStudy, tracer: str) -> None:
    volume, grid = read_nm_volume(written_study.nm_paths[tracer])
    expected = written_study.nm_volumes[tracer]
    assert volume.dtype == np.float32
    np.testing.assert_allclose(volume, expected, rtol=0, atol=_quantisation_tolerance(expected))
    assert grid.shape == NM_GRID.shape
    np.testing.assert_allclose(grid.spacing_mm, NM_GRID.spacing_mm, atol=MM_TOLERANCE)
    np.testing.assert_allclose(grid.origin_lps_mm, NM_GRID.origin_lps_mm, atol=MM_TOLERANCE)


def test_frames_are_slices_in_order(written_study: WrittenStudy) -> None:
    ds = pydicom.dcmread(written_study.nm_paths["perfusion"])
    slope = float(ds.RealWorldValueMappingSequence[0].RealWorldValueSlope)
    expected = written_study.nm_volumes["perfusion"]
    assert ds.NumberOfFrames == NM_GRID.shape[0] == ds.NumberOfSlices
    assert ds.FrameIncrementPointer == 0x00540080
    assert list(ds.SliceVector) == list(range(1, NM_GRID.shape[0] + 1))
    np.testing.assert_allclose(ds.pixel_array * slope, expected, atol=_quantisation_tolerance(expected))
    assert ds.pixel_array.max() == UINT16_MAX


def test_simpleitk_places_the_frames_on_the_same_grid(written_study: WrittenStudy) -> None:
    image = SimpleITK.ReadImage(str(written_study.nm_paths["perfusion"]))
    nz, ny, nx = NM_GRID.shape
    assert image.GetSize() == (nx, ny, nz)
    np.testing.assert_allclose(image.GetOrigin(), NM_GRID.origin_lps_mm, atol=MM_TOLERANCE)
    np.testing.assert_allclose(image.GetSpacing(), NM_GRID.spacing_mm[::-1], atol=MM_TOLERANCE)
    np.testing.assert_allclose(image.GetDirection(), np.eye(3).ravel())


def test_nm_attributes_a_viewer_needs(written_study: WrittenStudy) -> None:
    ds = pydicom.dcmread(written_study.nm_paths["perfusion"], stop_before_pixels=True)
    assert ds.SOPClassUID == NuclearMedicineImageStorage and ds.Modality == "NM"
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    window = ds.EnergyWindowInformationSequence[0]
    limits = window.EnergyWindowRangeSequence[0]
    assert (float(limits.EnergyWindowLowerLimit), float(limits.EnergyWindowUpperLimit)) == (126.45, 154.55)
    assert window.EnergyWindowName
    detector = ds.DetectorInformationSequence[0]
    np.testing.assert_allclose([float(v) for v in detector.ImagePositionPatient], NM_GRID.origin_lps_mm, atol=1e-4)
    np.testing.assert_allclose([float(v) for v in detector.ImageOrientationPatient], [1, 0, 0, 0, 1, 0])
    rotation = ds.RotationInformationSequence[0]
    assert rotation.NumberOfFramesInRotation == 120 and rotation.ActualFrameDuration == 20000
    assert float(rotation.ScanArc) == 360.0 and float(rotation.AngularStep) == 3.0
    dz, dy, dx = NM_GRID.spacing_mm
    assert float(ds.SliceThickness) == float(ds.SpacingBetweenSlices) == pytest.approx(dz)
    np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], [dy, dx])
    assert ds.Units == "CNTS" and "ATTN" in ds.CorrectedImage
    assert ds.RealWorldValueMappingSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == "{counts}"
    assert "PatientPosition" not in ds and ds.PatientGantryRelationshipCodeSequence[0].CodeValue == "102540008"


@pytest.mark.parametrize(
    ("tracer", "drug_code", "route_code"),
    [
        ("perfusion", "85693008", "47625008"),
        ("ventilation", "447125008", "446406008"),
        ("bone", "96390006", "47625008"),
    ],
)
def test_radiopharmaceutical_is_coded(tmp_path: Path, tracer: str, drug_code: str, route_code: str) -> None:
    study = synthetic_patient_study(np.random.default_rng(5))
    grid = Grid((4, 8, 8), (4.0, 4.0, 4.0), (0.0, 0.0, 0.0))
    path = write_nm_series(
        np.ones(grid.shape), grid, study, tmp_path / "nm.dcm", frame_of_reference_uid=highdicom.UID(),
        tracer=tracer, n_views=60, time_per_view_s=15.0, series_number=3, series_description=f"{tracer} SPECT",
    )  # fmt: skip
    assert dciodvfy_errors(path) == []
    item = pydicom.dcmread(path).RadiopharmaceuticalInformationSequence[0]
    radionuclide = item.RadionuclideCodeSequence[0]
    assert (radionuclide.CodeValue, radionuclide.CodingSchemeDesignator) == ("72454006", "SCT")
    assert item.RadiopharmaceuticalCodeSequence[0].CodeValue == drug_code
    assert item.AdministrationRouteCodeSequence[0].CodeValue == route_code
    assert item.Radiopharmaceutical == TRACERS[tracer].name
    assert float(item.RadionuclideTotalDose) == TRACERS[tracer].dose_mbq


def test_scaling_of_degenerate_and_invalid_volumes(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        stored, slope = counts_to_stored(np.zeros((2, 2, 2)))
    assert slope == 1.0 and not stored.any() and "all zero" in caplog.text
    with caplog.at_level(logging.WARNING):
        stored, slope = counts_to_stored(np.array([[[-1.0, 2.0]]]))
    assert stored.tolist() == [[[0, UINT16_MAX]]] and "negative" in caplog.text
    with pytest.raises(ValueError, match="NaN"):
        counts_to_stored(np.array([np.inf]))


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    study = synthetic_patient_study(np.random.default_rng(0))
    grid = Grid((2, 4, 4), (4.0, 4.0, 4.0), (0.0, 0.0, 0.0))
    arguments = {"frame_of_reference_uid": "1.2.3", "n_views": 60, "time_per_view_s": 10.0, "series_number": 2}
    with pytest.raises(ValueError, match="unknown tracer"):
        write_nm_series(
            np.ones(grid.shape), grid, study, tmp_path / "a.dcm", tracer="fdg", series_description="x", **arguments
        )
    with pytest.raises(ValueError, match="grid's shape"):
        write_nm_series(
            np.ones((2, 4, 5)), grid, study, tmp_path / "b.dcm", tracer="bone", series_description="x", **arguments
        )


def test_read_nm_volume_rejects_a_ct(written_study: WrittenStudy) -> None:
    with pytest.raises(InputDataError, match="not a reconstructed tomographic NM image"):
        read_nm_volume(written_study.ct_paths[0])


def test_read_nm_volume_handles_frames_running_towards_the_feet(written_study: WrittenStudy, tmp_path: Path) -> None:
    """Some vendors store the most superior slice first with a negative SpacingBetweenSlices."""
    expected, grid = read_nm_volume(written_study.nm_paths["perfusion"])
    ds = pydicom.dcmread(written_study.nm_paths["perfusion"])
    top = grid.slice_positions_lps_mm()[-1]
    ds.DetectorInformationSequence[0].ImagePositionPatient = [float(v) for v in top]
    ds.SpacingBetweenSlices = -grid.spacing_mm[0]
    ds.PixelData = ds.pixel_array[::-1].tobytes()
    ds.save_as(tmp_path / "reversed.dcm")
    volume, reversed_grid = read_nm_volume(tmp_path / "reversed.dcm")
    np.testing.assert_array_equal(volume, expected)
    np.testing.assert_allclose(reversed_grid.origin_lps_mm, grid.origin_lps_mm, atol=MM_TOLERANCE)
