"""Tests of core.dicom.nm_derived_writer: a DERIVED NM image on the source's grid, and the comparison picture.

The source is the synthetic study's perfusion SPECT (``NM_GRID``, written by
:func:`core.dicom.nm_writer.write_nm_series`); the "processed" volume is ``0.6 * v + 2``
counts (non-negative, clearly different from ``v``).  Tolerances: counts within half a
quantisation step of the derived image (``max / 65535 / 2``) plus float32 rounding;
the grid is compared exactly (its attributes are copied, not recomputed).
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian, NuclearMedicineImageStorage, RLELossless

from core.dicom.nm_derived_writer import write_comparison_capture, write_derived_nm
from core.dicom.nm_writer import UINT16_MAX, read_nm_volume
from core.dicom.provenance import SYNTHETIC_NOTICE, contributing_equipment
from tests.core.dicom.synthetic_study import NM_GRID, WrittenStudy
from tests.dciodvfy import dciodvfy_errors, dciodvfy_warnings

MODEL, VERSION = "test-denoiser", "0.4.2"
DESCRIPTION = "Deep-learning denoising of a 1/7-time acquisition"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
# Units (0054,1001), copied from the source: outside the NM IOD, as for core.dicom.nm_writer.
EXPECTED_NM_WARNINGS = {
    "Warning - Attribute is not present in standard DICOM IOD - (0x0054,0x1001) CS Units",
    "Warning - Dicom dataset contains attributes not present in standard DICOM IOD"
    " - this is a Standard Extended SOP Class",
}
KEPT_KEYWORDS = (
    "PatientID",
    "PatientWeight",
    "StudyInstanceUID",
    "FrameOfReferenceUID",
    "RadiopharmaceuticalInformationSequence",
    "EnergyWindowInformationSequence",
    "DetectorInformationSequence",
    "RotationInformationSequence",
    "PatientOrientationCodeSequence",
    "Units",
    "CorrectedImage",
    "PixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "SliceVector",
    "NumberOfFrames",
    "AcquisitionDate",
    "AcquisitionTime",
)


def processed(volume: np.ndarray) -> np.ndarray:
    return 0.6 * volume + 2.0


def tolerance(volume: np.ndarray) -> float:
    return float(volume.max()) / UINT16_MAX / 2 + 1e-6 * float(volume.max())


def write(volume: np.ndarray, source: Dataset, out_path: Path) -> Path:
    return write_derived_nm(
        volume,
        source,
        out_path,
        series_number=12,
        series_description="Denoised perfusion SPECT",
        derivation_description=DESCRIPTION,
        equipment=contributing_equipment(MODEL, VERSION, "Denoising"),
    )


@pytest.fixture(scope="module")
def source_path(written_study: WrittenStudy) -> Path:
    return written_study.nm_paths["perfusion"]


@pytest.fixture(scope="module")
def expected(source_path: Path) -> np.ndarray:
    """The processed volume that the derived image holds."""
    return processed(read_nm_volume(source_path)[0])


@pytest.fixture(scope="module")
def derived_path(source_path: Path, expected: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(expected, pydicom.dcmread(source_path), tmp_path_factory.mktemp("derived") / "derived.dcm")


def test_round_trip_gives_the_values_on_the_same_grid(
    source_path: Path, derived_path: Path, expected: np.ndarray
) -> None:
    volume, grid = read_nm_volume(derived_path)
    source_volume, source_grid = read_nm_volume(source_path)
    assert grid == source_grid and grid.shape == NM_GRID.shape
    np.testing.assert_allclose(volume, expected, rtol=0, atol=tolerance(expected))
    assert not np.allclose(volume, source_volume, atol=1.0)
    ds = pydicom.dcmread(derived_path)
    slope = float(ds.RealWorldValueMappingSequence[0].RealWorldValueSlope)
    assert slope == pytest.approx(float(expected.max()) / UINT16_MAX, rel=1e-6)
    assert ds.pixel_array.max() == UINT16_MAX


def test_new_derived_series_in_the_same_study(source_path: Path, derived_path: Path) -> None:
    ds, source = pydicom.dcmread(derived_path), pydicom.dcmread(source_path)
    assert ds.SOPClassUID == NuclearMedicineImageStorage and ds.Modality == "NM"
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID != source.SOPInstanceUID
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID
    assert (ds.SeriesNumber, ds.SeriesDescription) == (12, "Denoised perfusion SPECT")
    assert list(ds.ImageType) == ["DERIVED", "PRIMARY", "RECON TOMO", "EMISSION"]
    written = datetime.strptime(ds.ContentDate + ds.ContentTime, "%Y%m%d%H%M%S")
    assert abs(datetime.now() - written) < timedelta(hours=1)
    assert (ds.SeriesDate, ds.SeriesTime) == (ds.ContentDate, ds.ContentTime)


def test_patient_study_and_acquisition_attributes_are_kept(source_path: Path, derived_path: Path) -> None:
    ds, source = pydicom.dcmread(derived_path), pydicom.dcmread(source_path)
    for keyword in KEPT_KEYWORDS:
        assert keyword in source, keyword
        assert ds[keyword].value == source[keyword].value, keyword
    assert float(ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose) > 0


def test_derivation_and_provenance(source_path: Path, derived_path: Path) -> None:
    ds, source = pydicom.dcmread(derived_path), pydicom.dcmread(source_path)
    code = ds.DerivationCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113087", "DCM")
    assert ds.DerivationDescription == DESCRIPTION
    (reference,) = ds.SourceImageSequence
    assert (reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID) == (
        source.SOPClassUID,
        source.SOPInstanceUID,
    )
    assert reference.PurposeOfReferenceCodeSequence[0].CodeValue == "121322"
    (series,) = ds.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == source.SeriesInstanceUID
    assert series.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    (equipment,) = ds.ContributingEquipmentSequence
    assert (equipment.ManufacturerModelName, equipment.SoftwareVersions) == (MODEL, VERSION)
    assert ds.ImageComments.startswith(SYNTHETIC_NOTICE) and DESCRIPTION in ds.ImageComments
    assert ds.BurnedInAnnotation == "NO"


def test_real_world_value_mapping_keeps_label_and_units(source_path: Path, derived_path: Path) -> None:
    (mapping,) = pydicom.dcmread(derived_path).RealWorldValueMappingSequence
    (old,) = pydicom.dcmread(source_path).RealWorldValueMappingSequence
    for keyword in ("LUTLabel", "LUTExplanation", "MeasurementUnitsCodeSequence"):
        assert mapping[keyword].value == old[keyword].value, keyword
    assert float(mapping.RealWorldValueSlope) != float(old.RealWorldValueSlope)
    assert float(mapping.RealWorldValueIntercept) == 0.0
    first, last = mapping.DoubleFloatRealWorldValueFirstValueMapped, mapping.DoubleFloatRealWorldValueLastValueMapped
    assert (first, last) == (0.0, UINT16_MAX)


def test_derived_nm_passes_dciodvfy(derived_path: Path) -> None:
    assert dciodvfy_errors(derived_path) == []
    assert set(dciodvfy_warnings(derived_path)) <= EXPECTED_NM_WARNINGS


def _feet_first(ds: Dataset) -> Dataset:
    """Most superior frame first, negative SpacingBetweenSlices (as some vendors write)."""
    dz = float(ds.SpacingBetweenSlices)
    position = [float(v) for v in ds.DetectorInformationSequence[0].ImagePositionPatient]
    position[2] += dz * (int(ds.NumberOfFrames) - 1)
    ds.DetectorInformationSequence[0].ImagePositionPatient = position
    ds.SpacingBetweenSlices = -dz
    ds.PixelData = ds.pixel_array[::-1].tobytes()
    return ds


def _shuffled(ds: Dataset) -> Dataset:
    """Frames stored in a random order, SliceVector saying where each one belongs."""
    permutation = np.random.default_rng(3).permutation(int(ds.NumberOfFrames))
    ds.PixelData = ds.pixel_array[permutation].tobytes()
    ds.SliceVector = [int(k) + 1 for k in permutation]
    return ds


@pytest.mark.parametrize("reorder", [_feet_first, _shuffled], ids=["feet-first", "shuffled"])
def test_frames_are_written_in_the_source_order(source_path: Path, tmp_path: Path, reorder) -> None:
    variant_path = tmp_path / "variant.dcm"
    reorder(pydicom.dcmread(source_path)).save_as(variant_path, enforce_file_format=True)
    volume, grid = read_nm_volume(variant_path)
    np.testing.assert_array_equal(volume, read_nm_volume(source_path)[0])  # the reader undoes the reordering
    derived = write(processed(volume), pydicom.dcmread(variant_path), tmp_path / "derived.dcm")
    variant, ds = pydicom.dcmread(variant_path), pydicom.dcmread(derived)
    old_slope = float(variant.RealWorldValueMappingSequence[0].RealWorldValueSlope)
    new_slope = float(ds.RealWorldValueMappingSequence[0].RealWorldValueSlope)
    expected_frames = processed(variant.pixel_array * old_slope)  # file frame k of the derived = of the source
    np.testing.assert_allclose(ds.pixel_array * new_slope, expected_frames, rtol=0, atol=tolerance(expected_frames))
    assert list(ds.SliceVector) == list(variant.SliceVector)
    derived_volume, derived_grid = read_nm_volume(derived)
    assert derived_grid == grid
    np.testing.assert_allclose(derived_volume, processed(volume), rtol=0, atol=tolerance(processed(volume)))


def test_compressed_source_with_rescale_slope(source_path: Path, tmp_path: Path) -> None:
    """A vendor-style source: RLE compressed, RescaleSlope instead of a mapping, its own equipment item."""
    ds = pydicom.dcmread(source_path)
    volume, grid = read_nm_volume(source_path)
    ds.RescaleSlope = ds.RealWorldValueMappingSequence[0].RealWorldValueSlope
    ds.RescaleIntercept = 0
    del ds.RealWorldValueMappingSequence
    ds.add_new(0x00280107, "US", int(ds.pixel_array.max()))  # LargestImagePixelValue
    ds.ContributingEquipmentSequence = [contributing_equipment("vendor OSEM", "2.0", "Reconstruction")]
    ds.compress(RLELossless, generate_instance_uid=False)
    ds.save_as(tmp_path / "vendor.dcm", enforce_file_format=True)
    source = pydicom.dcmread(tmp_path / "vendor.dcm")
    assert source.file_meta.TransferSyntaxUID == RLELossless

    derived = pydicom.dcmread(write(processed(volume), source, tmp_path / "derived.dcm"))
    assert derived.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert not {"RescaleSlope", "RescaleIntercept", "LargestImagePixelValue"} & set(derived.dir())
    (mapping,) = derived.RealWorldValueMappingSequence
    assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "{counts}" and mapping.LUTLabel == "CNTS"
    assert [item.ManufacturerModelName for item in derived.ContributingEquipmentSequence] == ["vendor OSEM", MODEL]
    derived_volume, derived_grid = read_nm_volume(tmp_path / "derived.dcm")
    assert derived_grid == grid
    np.testing.assert_allclose(derived_volume, processed(volume), rtol=0, atol=tolerance(processed(volume)))
    assert dciodvfy_errors(tmp_path / "derived.dcm") == []


def test_a_second_mapping_keeps_its_real_world_values(source_path: Path, tmp_path: Path) -> None:
    """Source: ``counts = s * stored + 0.5`` and an SUV-like ``suv = 0.002 * s * stored + 0.1``.

    So ``suv = 0.002 * (counts - 0.5) + 0.1``, which must still hold in the derived image.
    """
    source = pydicom.dcmread(source_path)
    counts = source.RealWorldValueMappingSequence[0]
    suv = copy.deepcopy(counts)
    suv.LUTLabel = "SUVbw"
    suv.RealWorldValueSlope = 0.002 * float(counts.RealWorldValueSlope)
    suv.RealWorldValueIntercept = 0.1
    counts.RealWorldValueIntercept = 0.5
    source.RealWorldValueMappingSequence.append(suv)
    source.save_as(tmp_path / "source.dcm", enforce_file_format=True)
    volume, _ = read_nm_volume(tmp_path / "source.dcm")
    path = write(processed(volume), source, tmp_path / "derived.dcm")
    ds = pydicom.dcmread(path)
    assert [item.LUTLabel for item in ds.RealWorldValueMappingSequence] == ["COUNTS", "SUVbw"]
    np.testing.assert_allclose(read_nm_volume(path)[0], processed(volume), rtol=0, atol=tolerance(processed(volume)))
    new_suv = ds.RealWorldValueMappingSequence[1]
    suv_values = ds.pixel_array * float(new_suv.RealWorldValueSlope) + float(new_suv.RealWorldValueIntercept)
    expected_suv = 0.002 * (processed(volume) - 0.5) + 0.1
    np.testing.assert_allclose(suv_values, expected_suv, rtol=0, atol=0.002 * tolerance(processed(volume)) + 1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v[:-1], "shape"),
        (lambda v: v.transpose(0, 2, 1)[:, :, :-1], "shape"),
        (lambda v: np.where(np.arange(v.size).reshape(v.shape) == 7, -0.5, v), "negative"),
        (lambda v: np.where(np.arange(v.size).reshape(v.shape) == 7, np.nan, v), "NaN"),
    ],
    ids=["frames", "columns", "negative", "nan"],
)
def test_bad_volumes_are_refused(source_path: Path, expected: np.ndarray, tmp_path: Path, change, message) -> None:
    with pytest.raises(ValueError, match=message):
        write(change(expected), pydicom.dcmread(source_path), tmp_path / "derived.dcm")
    assert not list(tmp_path.iterdir())


def test_sources_that_are_not_nm_recon_tomo_are_refused(
    written_study: WrittenStudy, source_path: Path, expected: np.ndarray, tmp_path: Path
) -> None:
    projections = pydicom.dcmread(source_path)
    projections.ImageType = ["ORIGINAL", "PRIMARY", "TOMO", "EMISSION"]
    ct = pydicom.dcmread(written_study.ct_paths[0])
    for source in (projections, ct):
        with pytest.raises(ValueError, match="RECON TOMO"):
            write(expected, source, tmp_path / "derived.dcm")
    gated = pydicom.dcmread(source_path)
    gated.FrameIncrementPointer = [0x00540080, 0x00540070]
    with pytest.raises(ValueError, match="SliceVector"):
        write(expected, gated, tmp_path / "derived.dcm")
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def comparison_path(
    source_path: Path, derived_path: Path, expected: np.ndarray, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return write_comparison_capture(
        read_nm_volume(source_path)[0],
        expected,
        pydicom.dcmread(source_path),
        tmp_path_factory.mktemp("comparison") / "comparison.dcm",
        series_number=13,
        equipment=contributing_equipment(MODEL, VERSION, "Denoising"),
        derived=pydicom.dcmread(derived_path),
    )


def test_comparison_capture_passes_dciodvfy(comparison_path: Path) -> None:
    assert dciodvfy_errors(comparison_path) == []
    assert dciodvfy_warnings(comparison_path) == []


def test_comparison_capture_is_an_rgb_picture_in_the_study(
    comparison_path: Path, source_path: Path, derived_path: Path
) -> None:
    sc, source, derived = (pydicom.dcmread(path) for path in (comparison_path, source_path, derived_path))
    assert sc.SOPClassUID == SECONDARY_CAPTURE
    assert (sc.PhotometricInterpretation, sc.SamplesPerPixel, sc.BitsAllocated) == ("RGB", 3, 8)
    assert sc.pixel_array.shape == (sc.Rows, sc.Columns, 3)
    assert (sc.StudyInstanceUID, sc.PatientID) == (source.StudyInstanceUID, source.PatientID)
    assert sc.SeriesInstanceUID not in (source.SeriesInstanceUID, derived.SeriesInstanceUID)
    assert sc.SeriesNumber == 13
    assert [item.ReferencedSOPInstanceUID for item in sc.SourceImageSequence] == [
        source.SOPInstanceUID,
        derived.SOPInstanceUID,
    ]
    ours = [item for item in sc.ContributingEquipmentSequence if item.get("SoftwareVersions") == VERSION]
    assert [item.ManufacturerModelName for item in ours] == [MODEL]
    assert SYNTHETIC_NOTICE in sc.ImageComments


def test_comparison_capture_has_the_notice_burned_in(comparison_path: Path) -> None:
    """The notice is the only yellow text in the bottom tenth of the picture (orientation letters are higher)."""
    rgb = pydicom.dcmread(comparison_path).pixel_array.astype(np.int16)
    bottom = rgb[int(0.9 * rgb.shape[0]) :]
    yellow = (bottom[..., 0] > 200) & (bottom[..., 1] > 200) & (bottom[..., 2] < 80)
    assert yellow.sum() > 500


@pytest.mark.parametrize(("axial_index", "shown"), [(None, 11), (3, 4)], ids=["hottest", "given"])
def test_comparison_capture_shows_the_hottest_or_the_given_slice(
    source_path: Path, expected: np.ndarray, tmp_path: Path, axial_index: int | None, shown: int
) -> None:
    hot = expected.copy()
    hot[10, 5, 7] = 10 * expected.max()
    path = write_comparison_capture(
        expected, hot, pydicom.dcmread(source_path), tmp_path / "sc.dcm", series_number=13,
        equipment=contributing_equipment(MODEL, VERSION, "Denoising"), axial_index=axial_index,
    )  # fmt: skip
    assert f"axial slice {shown} of {NM_GRID.shape[0]}" in pydicom.dcmread(path).DerivationDescription


def test_comparison_capture_refuses_bad_inputs(source_path: Path, expected: np.ndarray, tmp_path: Path) -> None:
    source = pydicom.dcmread(source_path)
    equipment = contributing_equipment(MODEL, VERSION, "Denoising")
    with pytest.raises(ValueError, match="one shape"):
        write_comparison_capture(expected[1:], expected, source, tmp_path / "a", series_number=1, equipment=equipment)
    with pytest.raises(ValueError, match="axial_index"):
        write_comparison_capture(
            expected, expected, source, tmp_path / "b.dcm", series_number=1, equipment=equipment, axial_index=16
        )
    assert not list(tmp_path.iterdir())
