"""The RT Structure Set writer and rasteriser: validity (dciodvfy), round trip, references, slice mapping.

Masks differ on every slice (radii grow with the slice index, structures start and end on
different slices), so that contours on the wrong CT slice cannot pass the round trip.

Tolerances: Dice >= :data:`DICE_MIN` between a mask and its rasterised contours (the module
docstring promises an exact round trip, which is also tested); contour coordinates are rounded
to 0.01 mm, so positions compare within :data:`MM_TOLERANCE` and areas within the rounding
error of the polygon (:data:`AREA_TOLERANCE_MM2`).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from core.dicom.provenance import FUNCTION_CATEGORY, HIGH_PERFUSION, PRIVATE_SCHEME
from core.dicom.rtstruct_writer import ALGORITHM_NAME, rasterise_rt_structure_set, write_rt_structure_set
from core.dicom.structures import AVOIDANCE, ORGAN, Structure
from core.errors import InputDataError
from tests.core.dicom.synthetic_study import CT_GRID, WrittenStudy
from tests.dciodvfy import dciodvfy_errors, dciodvfy_warnings
from tests.testdata import REAL_CT_DIR

VERSION = "9.8.7"
DICE_MIN = 0.95
MM_TOLERANCE = 0.006
"""Half the 0.01 mm rounding step of ContourData, plus float slack."""
AREA_TOLERANCE_MM2 = 0.5
"""Shoelace area of a ~40-point polygon whose vertices moved by <= 0.005 mm each."""
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
RGB = {"lightskyblue": [135, 206, 250], "palegoldenrod": [238, 232, 170], "red": [255, 0, 0]}


def disc(centre: tuple[float, float], radius: float) -> np.ndarray:
    """Boolean ``(rows, columns)`` disc of one CT slice: voxel centres within ``radius`` voxels of ``centre``."""
    _, ny, nx = CT_GRID.shape
    y, x = np.ogrid[:ny, :nx]
    return (y - centre[0]) ** 2 + (x - centre[1]) ** 2 <= radius**2


def convex_mask() -> np.ndarray:
    """A disc on slices 1..8 whose radius grows with the slice index."""
    mask = np.zeros(CT_GRID.shape, dtype=bool)
    for k in range(1, CT_GRID.shape[0] - 1):
        mask[k] = disc((20, 18), 5 + 0.4 * k)
    return mask


def ring_mask() -> np.ndarray:
    """An annulus on every slice (a hole), with an island in the hole on odd slices (three nested contours)."""
    mask = np.zeros(CT_GRID.shape, dtype=bool)
    for k in range(CT_GRID.shape[0]):
        mask[k] = disc((32, 44), 10 + 0.3 * k) & ~disc((32, 44), 4)
        if k % 2:
            mask[k] |= disc((32, 44), 1.5)
    return mask


def two_blobs_mask() -> np.ndarray:
    """Two separate discs on slices 2..9."""
    mask = np.zeros(CT_GRID.shape, dtype=bool)
    for k in range(2, CT_GRID.shape[0]):
        mask[k] = disc((50, 12), 4) | disc((52, 28), 3 + 0.2 * k)
    return mask


def standard_structures() -> list[Structure]:
    """Two lungs coded with SNOMED CT only."""
    return [
        Structure(
            "Right lung",
            codes.SCT.AnatomicalStructure,
            codes.SCT.Lung,
            codes.SCT.Right,
            "lightskyblue",
            ORGAN,
            convex_mask(),
        ),
        Structure(
            "Left lung",
            codes.SCT.AnatomicalStructure,
            codes.SCT.Lung,
            codes.SCT.Left,
            "palegoldenrod",
            ORGAN,
            ring_mask(),
        ),
    ]


def all_structures() -> list[Structure]:
    """The two lungs and a high-perfusion volume with a private (99PMAP) code."""
    high = Structure(
        HIGH_PERFUSION.meaning, FUNCTION_CATEGORY, HIGH_PERFUSION, None, "red", AVOIDANCE, two_blobs_mask()
    )
    return [*standard_structures(), high]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float(np.sum(a & b)) / float(np.sum(a) + np.sum(b))


@pytest.fixture(scope="module")
def ct_slices(written_study: WrittenStudy) -> list[Dataset]:
    """The synthetic CT's headers in file order (= ascending z)."""
    return [pydicom.dcmread(path, stop_before_pixels=True) for path in written_study.ct_paths]


@pytest.fixture(scope="module")
def rts_path(ct_slices: list[Dataset], tmp_path_factory: pytest.TempPathFactory) -> Path:
    shuffled = [ct_slices[i] for i in np.random.default_rng(3).permutation(len(ct_slices))]
    out = tmp_path_factory.mktemp("rtstruct") / "structures.dcm"
    return write_rt_structure_set(all_structures(), shuffled, out, algorithm_version=VERSION, series_number=78)


@pytest.fixture(scope="module")
def rts(rts_path: Path) -> Dataset:
    return pydicom.dcmread(rts_path)


def test_structure_set_is_valid_dicom(rts_path: Path) -> None:
    assert dciodvfy_errors(rts_path) == []
    # dciodvfy does not know local coding schemes, even when CodingSchemeIdentificationSequence names them
    assert all(PRIVATE_SCHEME in line for line in dciodvfy_warnings(rts_path))


def test_standard_codes_only_give_no_warnings(ct_slices: list[Dataset], tmp_path: Path) -> None:
    path = write_rt_structure_set(standard_structures(), ct_slices, tmp_path / "rs.dcm", algorithm_version=VERSION)
    assert dciodvfy_errors(path) == []
    assert dciodvfy_warnings(path) == []
    assert "CodingSchemeIdentificationSequence" not in pydicom.dcmread(path)


@pytest.mark.parametrize("structure", all_structures(), ids=lambda s: s.label)
def test_round_trip_dice(structure: Structure, rts_path: Path, ct_slices: list[Dataset]) -> None:
    masks = rasterise_rt_structure_set(rts_path, ct_slices)
    assert dice(masks[structure.label], structure.mask) >= DICE_MIN


def test_round_trip_is_exact(rts_path: Path, ct_slices: list[Dataset]) -> None:
    masks = rasterise_rt_structure_set(rts_path, ct_slices)
    assert set(masks) == {s.label for s in all_structures()}
    for structure in all_structures():
        np.testing.assert_array_equal(masks[structure.label], structure.mask, err_msg=structure.label)


def test_contour_longer_than_an_explicit_vr_element_round_trips(ct_slices: list[Dataset], tmp_path: Path) -> None:
    """A comb one voxel per tooth across 2048 columns: one contour of some 4000 points, ContourData over 64 KB.

    PS3.5 6.2.2: such a value cannot have VR DS with a 16-bit length; it is written as UN and read
    back through the data dictionary.  The contour must survive whole, and the file stay valid.
    """
    wide = [copy.deepcopy(ds) for ds in ct_slices]
    for ds in wide:
        ds.Rows, ds.Columns = 64, 2048
    mask = np.zeros((len(wide), 64, 2048), dtype=bool)
    mask[3, 10:20, 8:2040] = True
    mask[3, 20:40, 8:2040:2] = True  # teeth on every other column
    comb = Structure("Comb", codes.SCT.AnatomicalStructure, codes.SCT.Lung, None, "red", ORGAN, mask)
    path = write_rt_structure_set([comb], wide, tmp_path / "comb.dcm", algorithm_version=VERSION)

    contour = pydicom.dcmread(path).ROIContourSequence[0].ContourSequence[0]
    assert int(contour.NumberOfContourPoints) > 3000
    assert contour["ContourData"].VR == "UN"  # pydicom keeps UN for values this long
    values = bytes(contour["ContourData"].value).decode("ascii").strip().split("\\")
    assert len(values) == 3 * int(contour.NumberOfContourPoints)
    np.testing.assert_array_equal(rasterise_rt_structure_set(path, wide)["Comb"], mask)
    assert dciodvfy_errors(path) == []


def _contours_by_slice(rts: Dataset, roi_number: int) -> dict[str, list[Dataset]]:
    """SOPInstanceUID -> the contours of ROI ``roi_number`` on that slice."""
    item = next(i for i in rts.ROIContourSequence if int(i.ReferencedROINumber) == roi_number)
    by_slice: dict[str, list[Dataset]] = {}
    for contour in item.ContourSequence:
        by_slice.setdefault(str(contour.ContourImageSequence[0].ReferencedSOPInstanceUID), []).append(contour)
    return by_slice


def test_holes_islands_and_blobs_are_separate_contours(rts: Dataset, ct_slices: list[Dataset]) -> None:
    uids = [str(ds.SOPInstanceUID) for ds in ct_slices]
    ring = _contours_by_slice(rts, 2)
    assert [len(ring[uid]) for uid in uids] == [2, 3] * 5  # outer + hole, + island on odd slices
    blobs = _contours_by_slice(rts, 3)
    assert [len(blobs.get(uid, [])) for uid in uids] == [0, 0] + [2] * 8


def _points(contour: Dataset) -> np.ndarray:
    return np.asarray([float(v) for v in contour.ContourData]).reshape(-1, 3)


def test_contours_are_closed_planar_on_their_slice(rts: Dataset, ct_slices: list[Dataset]) -> None:
    z_by_uid = {str(ds.SOPInstanceUID): float(ds.ImagePositionPatient[2]) for ds in ct_slices}
    for item in rts.ROIContourSequence:
        for contour in item.ContourSequence:
            points = _points(contour)
            assert contour.ContourGeometricType == "CLOSED_PLANAR"
            assert int(contour.NumberOfContourPoints) == len(points) >= 4
            assert not np.array_equal(points[0], points[-1])  # the closing point is implied
            z = z_by_uid[str(contour.ContourImageSequence[0].ReferencedSOPInstanceUID)]
            np.testing.assert_allclose(points[:, 2], z, atol=MM_TOLERANCE)


def test_contour_area_is_voxel_area_minus_half_a_voxel(rts: Dataset, ct_slices: list[Dataset]) -> None:
    """Level-0.5 tracing cuts a convex polygon's corners by 4 x 1/8 voxel in all (module docstring)."""
    _, dy, dx = CT_GRID.spacing_mm
    mask = convex_mask()
    by_slice = _contours_by_slice(rts, 1)
    for k, ds in enumerate(ct_slices[1:-1], start=1):
        (contour,) = by_slice[str(ds.SOPInstanceUID)]
        x, y = _points(contour)[:, 0], _points(contour)[:, 1]
        area_mm2 = 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
        assert area_mm2 == pytest.approx((mask[k].sum() - 0.5) * dy * dx, abs=AREA_TOLERANCE_MM2)


def test_contour_points_lie_midway_between_inside_and_outside_voxels(rts: Dataset, ct_slices: list[Dataset]) -> None:
    """Every contour point is the midpoint of an inside and an outside voxel centre, a row or a column apart."""
    _, dy, dx = CT_GRID.spacing_mm
    origin = [float(v) for v in ct_slices[0].ImagePositionPatient]
    mask = convex_mask()
    for k, ds in enumerate(ct_slices[1:-1], start=1):
        (contour,) = _contours_by_slice(rts, 1)[str(ds.SOPInstanceUID)]
        points = _points(contour)
        half_rows, half_cols = 2 * (points[:, 1] - origin[1]) / dy, 2 * (points[:, 0] - origin[0]) / dx
        np.testing.assert_allclose(half_rows, np.round(half_rows), atol=0.02)
        np.testing.assert_allclose(half_cols, np.round(half_cols), atol=0.02)
        rows, cols = np.round(half_rows).astype(int), np.round(half_cols).astype(int)
        assert np.all((rows + cols) % 2 == 1)  # half-integer along exactly one axis
        low, high = mask[k][rows // 2, cols // 2], mask[k][(rows + 1) // 2, (cols + 1) // 2]
        assert np.all(low != high)


def test_structure_set_joins_the_ct_study_in_a_new_series(rts: Dataset, ct_slices: list[Dataset]) -> None:
    ct = ct_slices[0]
    assert rts.Modality == "RTSTRUCT"
    assert rts.SOPClassUID == RTSTRUCT_SOP_CLASS == rts.file_meta.MediaStorageSOPClassUID
    for keyword in ("StudyInstanceUID", "PatientID", "PatientName", "PatientBirthDate", "AccessionNumber", "StudyID"):
        assert rts[keyword].value == ct[keyword].value, keyword
    assert rts.FrameOfReferenceUID == ct.FrameOfReferenceUID
    assert rts.SeriesInstanceUID != ct.SeriesInstanceUID
    assert rts.SeriesNumber == 78
    assert "research use" in rts.SeriesDescription.lower() and len(rts.SeriesDescription) <= 64
    assert "research use" in rts.StructureSetDescription.lower()
    equipment = rts.ContributingEquipmentSequence[0]
    assert (equipment.ManufacturerModelName, equipment.SoftwareVersions) == (ALGORITHM_NAME, VERSION)


def test_all_ct_slices_are_referenced(rts: Dataset, ct_slices: list[Dataset]) -> None:
    (frame,) = rts.ReferencedFrameOfReferenceSequence
    assert frame.FrameOfReferenceUID == ct_slices[0].FrameOfReferenceUID
    (study,) = frame.RTReferencedStudySequence
    assert study.ReferencedSOPInstanceUID == ct_slices[0].StudyInstanceUID
    (series,) = study.RTReferencedSeriesSequence
    assert series.SeriesInstanceUID == ct_slices[0].SeriesInstanceUID
    referenced = [str(item.ReferencedSOPInstanceUID) for item in series.ContourImageSequence]
    assert sorted(referenced) == sorted(str(ds.SOPInstanceUID) for ds in ct_slices)
    assert {str(item.ReferencedSOPClassUID) for item in series.ContourImageSequence} == {str(ct_slices[0].SOPClassUID)}


def _code(item: Dataset | Code) -> tuple[str, str]:
    """(CodeValue, CodingSchemeDesignator) of a code sequence item or a pydicom Code."""
    if isinstance(item, Code):
        return item.value, item.scheme_designator
    return str(item.CodeValue), str(item.CodingSchemeDesignator)


def test_rois_carry_names_types_colours_and_codes(rts: Dataset) -> None:
    structures = all_structures()
    rois = {int(item.ROINumber): item for item in rts.StructureSetROISequence}
    assert [str(rois[n].ROIName) for n in sorted(rois)] == [s.label for s in structures]
    assert {str(item.ROIGenerationAlgorithm) for item in rois.values()} == {"AUTOMATIC"}
    colours = {int(item.ReferencedROINumber): list(item.ROIDisplayColor) for item in rts.ROIContourSequence}
    observations = {int(item.ReferencedROINumber): item for item in rts.RTROIObservationsSequence}
    for number, structure in enumerate(structures, start=1):
        assert colours[number] == RGB[structure.colour]
        observation = observations[number]
        assert observation.RTROIInterpretedType == structure.interpreted_type
        assert _code(observation.SegmentedPropertyCategoryCodeSequence[0]) == _code(structure.category)
        identification = observation.RTROIIdentificationCodeSequence[0]
        assert _code(identification) == _code(structure.property_type)
        modifiers = identification.get("SegmentedPropertyTypeModifierCodeSequence", [])
        assert [_code(m) for m in modifiers] == ([_code(structure.modifier)] if structure.modifier else [])
    assert [str(item.CodingSchemeDesignator) for item in rts.CodingSchemeIdentificationSequence] == [PRIVATE_SCHEME]


def _feet_first(slices: list[Dataset]) -> list[Dataset]:
    """Copies of the slices numbered as a feet-first scanner would: file 1 is the most superior slice."""
    reordered = [copy.deepcopy(ds) for ds in reversed(slices)]
    for number, ds in enumerate(reordered, start=1):
        ds.InstanceNumber = number
    return reordered


def test_feet_first_series_maps_mask_slices_by_position(ct_slices: list[Dataset], tmp_path: Path) -> None:
    structures = standard_structures()
    path = write_rt_structure_set(structures, _feet_first(ct_slices), tmp_path / "rs.dcm", algorithm_version=VERSION)
    masks = rasterise_rt_structure_set(path, ct_slices)
    for structure in structures:
        np.testing.assert_array_equal(masks[structure.label], structure.mask, err_msg=structure.label)
    first_contour = pydicom.dcmread(path).ROIContourSequence[0].ContourSequence[0]  # convex disc, slice 1
    assert first_contour.ContourImageSequence[0].ReferencedSOPInstanceUID == ct_slices[1].SOPInstanceUID
    np.testing.assert_allclose(_points(first_contour)[:, 2], float(ct_slices[1].ImagePositionPatient[2]))


def test_empty_structures_are_left_out(ct_slices: list[Dataset], tmp_path: Path) -> None:
    right, left = standard_structures()
    empty = Structure("Nothing", right.category, right.property_type, None, "red", ORGAN, np.zeros_like(right.mask))
    path = write_rt_structure_set([right, empty, left], ct_slices, tmp_path / "rs.dcm", algorithm_version=VERSION)
    assert [str(item.ROIName) for item in pydicom.dcmread(path).StructureSetROISequence] == ["Right lung", "Left lung"]


def test_bad_structures_are_refused(ct_slices: list[Dataset], tmp_path: Path) -> None:
    right, left = standard_structures()
    cases = {
        "shape": Structure("Small", right.category, right.property_type, None, "red", ORGAN, right.mask[1:]),
        "unique": Structure(right.label, left.category, left.property_type, None, "red", ORGAN, left.mask),
        "not a CSS colour": Structure("Odd", right.category, right.property_type, None, "reddish", ORGAN, left.mask),
    }
    for message, bad in cases.items():
        with pytest.raises(ValueError, match=message):
            write_rt_structure_set([right, bad], ct_slices, tmp_path / "a.dcm", algorithm_version=VERSION)
    nothing = Structure("Nothing", right.category, right.property_type, None, "red", ORGAN, np.zeros_like(right.mask))
    with pytest.raises(ValueError, match="empty"):
        write_rt_structure_set([nothing], ct_slices, tmp_path / "b.dcm", algorithm_version=VERSION)
    integer = copy.copy(right)
    object.__setattr__(integer, "mask", right.mask.astype(np.uint8))  # swapped after the Structure checked it
    with pytest.raises(ValueError, match="boolean"):
        write_rt_structure_set([integer], ct_slices, tmp_path / "c.dcm", algorithm_version=VERSION)
    assert not list(tmp_path.iterdir())


def test_rasteriser_refuses_other_objects_and_slices(
    rts_path: Path, ct_slices: list[Dataset], written_study: WrittenStudy, tmp_path: Path
) -> None:
    with pytest.raises(InputDataError, match="not an RT Structure Set"):
        rasterise_rt_structure_set(written_study.ct_paths[0], ct_slices)
    with pytest.raises(InputDataError, match="not one of the CT slices"):
        rasterise_rt_structure_set(rts_path, ct_slices[:-1])
    moved = pydicom.dcmread(rts_path)
    contour = moved.ROIContourSequence[0].ContourSequence[0]
    points = _points(contour)
    points[:, 2] += CT_GRID.spacing_mm[0]  # onto the next slice, still referencing this one
    contour.ContourData = points.ravel().tolist()
    moved.save_as(tmp_path / "moved.dcm")
    with pytest.raises(InputDataError, match="off the plane"):
        rasterise_rt_structure_set(tmp_path / "moved.dcm", ct_slices)


def test_real_feet_first_ct_slices(tmp_path: Path) -> None:
    """Three real GE slices, numbered from the top (z descending with InstanceNumber), 512 x 512."""
    slices = [pydicom.dcmread(path, stop_before_pixels=True) for path in sorted(REAL_CT_DIR.glob("0?.dcm"))]
    mask = np.zeros((3, int(slices[0].Rows), int(slices[0].Columns)), dtype=bool)
    for k in range(3):
        mask[k, 100 : 150 + 40 * k, 100:200] = True  # more rows at higher z
    right = standard_structures()[0]
    box = Structure("Box", right.category, right.property_type, None, "red", ORGAN, mask)
    path = write_rt_structure_set([box], slices, tmp_path / "rs.dcm", algorithm_version=VERSION)
    assert dciodvfy_errors(path) == []
    np.testing.assert_array_equal(rasterise_rt_structure_set(path, slices)["Box"], mask)
