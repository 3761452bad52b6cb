"""The Parametric Map writer: validity (dciodvfy), exact float round trip, slice mapping, codes, study and series.

The map is non-zero on slices 1..6 of the 10 CT slices only (not symmetric about the middle, so a
reversed slice order cannot pass), with different random float32 values on every slice and values
above 1 (the Eq. 2 scale is not capped).  Expected slice positions come from the CT headers, sorted
by z here (axial slices: the slice normal is +z), not from the writer.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import highdicom
import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from core.dicom.pm_writer import MapDescription, write_parametric_map
from tests.core.dicom.synthetic_study import CT_GRID, WrittenStudy
from tests.dciodvfy import dciodvfy_errors, dciodvfy_warnings

MODEL, VERSION = "test-ddran", "9.8.7"
SERIES_NUMBER = 81
PARAMETRIC_MAP_STORAGE = "1.2.840.10008.5.1.4.1.1.30"
QUANTITY = Code("PM010", "99PMAP", "Synthetic relative lung perfusion")
DESCRIPTION = MapDescription(
    quantity=QUANTITY,
    lut_label="PERFUSION",
    lut_explanation="Synthetic relative lung perfusion",
    series_number=SERIES_NUMBER,
    series_description="Synthetic perfusion map - research use",
    content_label="PERFUSION",
)
MAPPED_SLICES = range(1, 7)
"""Slices (ascending z) that hold non-zero values."""
KNOWN_WARNINGS = {
    "Warning - Unrecognized defined term <99PMAP> for value 1 of attribute <Coding Scheme Designator>",
    "Warning - Unrecognized defined term <QUANTITY> for value 4 of attribute <Image Type>",
    "Warning - Unrecognized defined term <QUANTITY> for value 4 of attribute <Frame Type>",
}
"""dciodvfy knows neither a local coding scheme (PS3.16 8.2 allows "99") nor the PM value QUANTITY (PS3.3 C.8.32.3)."""


def synthetic_map() -> np.ndarray:
    """Float32 map in the CT volume layout: a random patch on slices 1..6, different on each, 0 elsewhere."""
    rng = np.random.default_rng(11)
    values = np.zeros(CT_GRID.shape, dtype=np.float32)
    for k in MAPPED_SLICES:
        values[k, 8 + k : 40, 5 : 30 + 2 * k] = rng.uniform(0.05, 1.8, size=(32 - k, 25 + 2 * k))
    values[3, 20, 10] = 0.0  # zeros inside a stored slice stay zeros
    return values


def write(values: np.ndarray, headers: list[Dataset], out: Path) -> Path:
    return write_parametric_map(
        values, headers, out, description=DESCRIPTION, algorithm_name=MODEL, algorithm_version=VERSION
    )


def _z(ds: Dataset) -> float:
    return float(ds.ImagePositionPatient[2])


def _position(ds: Dataset) -> tuple[float, ...]:
    return tuple(float(v) for v in ds.ImagePositionPatient)


def read_frames(path: Path) -> list[tuple[tuple[float, ...], str, np.ndarray]]:
    """Per frame: ImagePositionPatient, the referenced source SOPInstanceUID and the float pixels."""
    pm = pydicom.dcmread(path)
    pixels = pm.pixel_array.reshape(-1, int(pm.Rows), int(pm.Columns))
    frames = []
    for item, frame in zip(pm.PerFrameFunctionalGroupsSequence, pixels):
        source = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        frames.append((_position(item.PlanePositionSequence[0]), str(source), frame))
    return frames


def assert_maps_onto(path: Path, values: np.ndarray, ct_slices: list[Dataset]) -> None:
    """Every frame sits at the position of, references and holds the values of its CT slice; no slice is missing."""
    ascending = sorted(ct_slices, key=_z)
    by_position = {_position(ds): k for k, ds in enumerate(ascending)}
    frames = read_frames(path)
    stored = sorted(by_position[position] for position, _, _ in frames)
    assert stored == list(MAPPED_SLICES)
    for position, source_uid, pixels in frames:
        k = by_position[position]
        assert source_uid == ascending[k].SOPInstanceUID
        assert pixels.dtype == np.float32
        np.testing.assert_array_equal(pixels, values[k])


@pytest.fixture(scope="module")
def ct_slices(written_study: WrittenStudy) -> list[Dataset]:
    """The synthetic CT's headers in file order."""
    return [pydicom.dcmread(path, stop_before_pixels=True) for path in written_study.ct_paths]


@pytest.fixture(scope="module")
def pm_path(ct_slices: list[Dataset], tmp_path_factory: pytest.TempPathFactory) -> Path:
    shuffled = [ct_slices[i] for i in np.random.default_rng(5).permutation(len(ct_slices))]
    out = tmp_path_factory.mktemp("pm") / "perfusion.dcm"
    return write(synthetic_map(), shuffled, out)


def test_parametric_map_is_valid_dicom(pm_path: Path) -> None:
    assert dciodvfy_errors(pm_path) == []
    assert set(dciodvfy_warnings(pm_path)) <= KNOWN_WARNINGS


def test_round_trip_gives_exact_values_on_the_ct_slices(pm_path: Path, ct_slices: list[Dataset]) -> None:
    assert_maps_onto(pm_path, synthetic_map(), ct_slices)
    pm = highdicom.pm.ParametricMap.from_dataset(pydicom.dcmread(pm_path))
    assert pm.SOPClassUID == PARAMETRIC_MAP_STORAGE
    assert int(pm.NumberOfFrames) == len(MAPPED_SLICES) < CT_GRID.shape[0]
    assert pm.BitsAllocated == 32 and "FloatPixelData" in pm


def test_feet_first_series_maps_by_position(ct_slices: list[Dataset], tmp_path: Path) -> None:
    feet_first = [copy.deepcopy(ds) for ds in sorted(ct_slices, key=_z, reverse=True)]
    for number, ds in enumerate(feet_first, start=1):
        ds.InstanceNumber = number  # file 1 is the most superior slice
    values = synthetic_map()
    path = write(values, feet_first, tmp_path / "pm.dcm")
    assert_maps_onto(path, values, ct_slices)


def test_map_joins_the_ct_study_in_a_new_series(pm_path: Path, ct_slices: list[Dataset]) -> None:
    pm = pydicom.dcmread(pm_path)
    ct = ct_slices[0]
    assert pm.StudyInstanceUID == ct.StudyInstanceUID
    assert pm.FrameOfReferenceUID == ct.FrameOfReferenceUID
    assert pm.SeriesInstanceUID not in {ds.SeriesInstanceUID for ds in ct_slices}
    assert pm.SOPInstanceUID not in {ds.SOPInstanceUID for ds in ct_slices}
    assert pm.PatientID == ct.PatientID
    assert pm.SeriesNumber == SERIES_NUMBER
    assert pm.SeriesDescription == DESCRIPTION.series_description
    assert pm.ContentLabel == DESCRIPTION.content_label


def test_real_world_value_mapping_is_identity_without_unit(pm_path: Path) -> None:
    pm = pydicom.dcmread(pm_path)
    shared = pm.SharedFunctionalGroupsSequence[0]
    (mapping,) = shared.RealWorldValueMappingSequence
    assert mapping.RealWorldValueSlope == 1.0
    assert mapping.RealWorldValueIntercept == 0.0
    unit = mapping.MeasurementUnitsCodeSequence[0]
    assert (unit.CodeValue, unit.CodingSchemeDesignator) == ("1", "UCUM")
    assert mapping.LUTLabel == DESCRIPTION.lut_label
    quantity = mapping.QuantityDefinitionSequence[0]
    concept = quantity.ConceptCodeSequence[0]
    assert (concept.CodeValue, concept.CodingSchemeDesignator) == (QUANTITY.value, QUANTITY.scheme_designator)
    name = quantity.ConceptNameCodeSequence[0]
    assert (name.CodeValue, name.CodingSchemeDesignator) == ("246205007", "SCT")  # Quantity
    # the mapped range covers every stored value
    first = mapping.get("DoubleFloatRealWorldValueFirstValueMapped", mapping.get("RealWorldValueFirstValueMapped"))
    last = mapping.get("DoubleFloatRealWorldValueLastValueMapped", mapping.get("RealWorldValueLastValueMapped"))
    assert first <= 0.0 and last >= float(synthetic_map().max())


def test_research_content_with_private_scheme_and_algorithm(pm_path: Path) -> None:
    pm = pydicom.dcmread(pm_path)
    assert pm.ContentQualification == "RESEARCH"
    schemes = {str(item.CodingSchemeDesignator) for item in pm.CodingSchemeIdentificationSequence}
    assert "99PMAP" in schemes
    algorithm = [
        item
        for item in pm.ContributingEquipmentSequence
        if item.get("ManufacturerModelName") == MODEL and item.get("SoftwareVersions") == VERSION
    ]
    assert len(algorithm) == 1
    purpose = algorithm[0].PurposeOfReferenceCodeSequence[0]
    assert (purpose.CodeValue, purpose.CodingSchemeDesignator) == ("109102", "DCM")  # Processing Equipment


def test_empty_specific_character_set_is_accepted(ct_slices: list[Dataset], tmp_path: Path) -> None:
    headers = [copy.deepcopy(ds) for ds in ct_slices]
    for ds in headers:
        ds.SpecificCharacterSet = ""
    path = write(synthetic_map(), headers, tmp_path / "pm.dcm")
    assert dciodvfy_errors(path) == []
    assert_maps_onto(path, synthetic_map(), ct_slices)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v[1:], "shape"),
        (lambda v: v[:, :, :-1], "shape"),
        (lambda v: np.where(v > 1.0, -0.1, v), "non-negative"),
        (lambda v: np.where(v > 1.0, np.nan, v), "finite"),
        (lambda v: np.where(v > 1.0, np.inf, v), "finite"),
        (np.zeros_like, "0 everywhere"),
    ],
    ids=["fewer-slices", "fewer-columns", "negative", "nan", "inf", "all-zero"],
)
def test_bad_maps_are_refused(ct_slices: list[Dataset], tmp_path: Path, change, message: str) -> None:
    values = change(synthetic_map())
    out = tmp_path / "pm.dcm"
    with pytest.raises(ValueError, match=message):
        write(values, ct_slices, out)
    assert not out.exists()


def test_default_anatomy_and_window_are_the_lung_maps(pm_path: Path) -> None:
    shared = pydicom.dcmread(pm_path).SharedFunctionalGroupsSequence[0]
    anatomy = shared.FrameAnatomySequence[0]
    assert anatomy.AnatomicRegionSequence[0].CodeValue == codes.SCT.Chest.value
    assert anatomy.FrameLaterality == "B"
    voi = shared.FrameVOILUTSequence[0]
    assert (float(voi.WindowCenter), float(voi.WindowWidth)) == (0.5, 1.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"window_width": 0.0}, "window_width"), ({"frame_laterality": "X"}, "frame_laterality")],
    ids=["zero-window", "bad-laterality"],
)
def test_bad_descriptions_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(DESCRIPTION, **change)
