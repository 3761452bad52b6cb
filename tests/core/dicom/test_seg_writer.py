"""The lung SEG writer: validity (dciodvfy), round trip through highdicom, codes, provenance, slice mapping.

Masks are built so that every slice differs (the right lung ends lower than the left), so that a
SEG whose frames point to the wrong CT slices cannot pass the round trip.
"""

from __future__ import annotations

from pathlib import Path

import highdicom
import numpy as np
import pydicom
import pytest
from pydicom import Dataset

from core.dicom.seg_writer import ALGORITHM_NAME, write_lung_seg
from core.dicom.slice_stack import slice_stack_affine_lps, sorted_along_normal
from core.errors import InputDataError
from core.labels import LungLabel
from tests.core.dicom.synthetic_study import CT_GRID, WrittenStudy
from tests.dciodvfy import dciodvfy_errors, dciodvfy_warnings
from tests.testdata import REAL_CT_DIR

VERSION = "9.8.7"
ANATOMICAL_STRUCTURE = ("91723000", "SCT")
LUNG = ("39607008", "SCT")
RIGHT, LEFT = ("24028007", "SCT"), ("7771000", "SCT")


def lung_mask(shape: tuple[int, int, int]) -> np.ndarray:
    """Two round lungs: right (low x) in slices 0..n-3, left in 2..n-1; every slice differs."""
    nz, ny, nx = shape
    z, y, x = np.meshgrid(np.arange(nz), np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    radius = 0.2 + 0.02 * z  # grows with z: each slice's area differs
    mask = np.zeros(shape, np.uint8)
    mask[((x + 0.45) ** 2 + y**2 < radius**2) & (z <= nz - 3)] = LungLabel.RIGHT_LUNG
    mask[((x - 0.45) ** 2 + y**2 < radius**2) & (z >= 2)] = LungLabel.LEFT_LUNG
    return mask


def read_back(seg_path: Path, slices: list[Dataset]) -> dict[str, np.ndarray]:
    """Per segment label: the SEG's mask on ``slices`` (in that order)."""
    seg = highdicom.seg.segread(seg_path)
    uids = [str(ds.SOPInstanceUID) for ds in slices]
    return {
        str(item.SegmentLabel): seg.get_pixels_by_source_instance(uids, segment_numbers=[int(item.SegmentNumber)])[
            ..., 0
        ]
        for item in seg.SegmentSequence
    }


@pytest.fixture(scope="module")
def ct_slices(written_study: WrittenStudy) -> list[Dataset]:
    """The synthetic CT's headers in file order (= ascending z)."""
    return [pydicom.dcmread(path, stop_before_pixels=True) for path in written_study.ct_paths]


@pytest.fixture(scope="module")
def seg_path(ct_slices: list[Dataset], tmp_path_factory: pytest.TempPathFactory) -> Path:
    shuffled = [ct_slices[i] for i in np.random.default_rng(3).permutation(len(ct_slices))]
    out = tmp_path_factory.mktemp("seg") / "lungs.dcm"
    return write_lung_seg(lung_mask(CT_GRID.shape), shuffled, out, algorithm_version=VERSION, series_number=77)


def test_seg_is_valid_dicom(seg_path: Path) -> None:
    assert dciodvfy_errors(seg_path) == []
    assert dciodvfy_warnings(seg_path) == []


def test_round_trip_gives_the_mask_in_ct_slice_order(seg_path: Path, ct_slices: list[Dataset]) -> None:
    mask = lung_mask(CT_GRID.shape)
    masks = read_back(seg_path, ct_slices)
    assert set(masks) == {"Right lung", "Left lung"}
    np.testing.assert_array_equal(masks["Right lung"], mask == LungLabel.RIGHT_LUNG)
    np.testing.assert_array_equal(masks["Left lung"], mask == LungLabel.LEFT_LUNG)


def test_empty_frames_are_omitted(seg_path: Path) -> None:
    mask = lung_mask(CT_GRID.shape)
    non_empty = sum(int((mask[k] == label).any()) for k in range(mask.shape[0]) for label in (1, 2))
    assert int(pydicom.dcmread(seg_path).NumberOfFrames) == non_empty < 2 * mask.shape[0]


def test_seg_joins_the_ct_study_in_a_new_series(seg_path: Path, ct_slices: list[Dataset]) -> None:
    seg = pydicom.dcmread(seg_path)
    ct = ct_slices[0]
    assert seg.Modality == "SEG"
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == ct.StudyInstanceUID
    assert seg.FrameOfReferenceUID == ct.FrameOfReferenceUID
    assert seg.SeriesInstanceUID != ct.SeriesInstanceUID
    assert seg.SeriesNumber == 77
    assert "research use" in seg.SeriesDescription.lower()
    assert "automatic" in seg.SeriesDescription.lower()
    assert seg.PatientID == ct.PatientID


def _code(item: Dataset) -> tuple[str, str]:
    return str(item.CodeValue), str(item.CodingSchemeDesignator)


def test_segments_are_coded_lungs_with_laterality_and_algorithm(seg_path: Path) -> None:
    seg = pydicom.dcmread(seg_path)
    by_label = {str(item.SegmentLabel): item for item in seg.SegmentSequence}
    for label, laterality in (("Right lung", RIGHT), ("Left lung", LEFT)):
        item = by_label[label]
        assert _code(item.SegmentedPropertyCategoryCodeSequence[0]) == ANATOMICAL_STRUCTURE
        prop = item.SegmentedPropertyTypeCodeSequence[0]
        assert _code(prop) == LUNG
        assert _code(prop.SegmentedPropertyTypeModifierCodeSequence[0]) == laterality
        assert item.SegmentAlgorithmType == "AUTOMATIC"
        algorithm = item.SegmentationAlgorithmIdentificationSequence[0]
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == (ALGORITHM_NAME, VERSION)
        assert _code(algorithm.AlgorithmFamilyCodeSequence[0]) == ("123104", "DCM")


def test_contributing_equipment_names_the_algorithm_and_version(seg_path: Path) -> None:
    seg = pydicom.dcmread(seg_path)
    items = [
        item
        for item in seg.ContributingEquipmentSequence
        if item.get("ManufacturerModelName") == ALGORITHM_NAME and item.get("SoftwareVersions") == VERSION
    ]
    assert len(items) == 1
    assert _code(items[0].PurposeOfReferenceCodeSequence[0]) == ("109102", "DCM")  # Processing Equipment


def _feet_first(slices: list[Dataset]) -> list[Dataset]:
    """The same slices numbered as a feet-first scanner would: file 1 is the most superior slice."""
    reordered = [pydicom.Dataset(ds) for ds in reversed(slices)]
    for number, ds in enumerate(reordered, start=1):
        ds.InstanceNumber = number
    return reordered


def test_feet_first_series_maps_mask_slices_by_position(ct_slices: list[Dataset], tmp_path: Path) -> None:
    feet_first = _feet_first(ct_slices)  # file order descending z
    mask = lung_mask(CT_GRID.shape)  # volume layout: ascending z
    path = write_lung_seg(mask, feet_first, tmp_path / "seg.dcm", algorithm_version=VERSION)
    masks = read_back(path, ct_slices)
    np.testing.assert_array_equal(masks["Right lung"], mask == LungLabel.RIGHT_LUNG)
    seg = pydicom.dcmread(path)
    z_by_uid = {ds.SOPInstanceUID: float(ds.ImagePositionPatient[2]) for ds in ct_slices}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        source = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        z = float(frame.PlanePositionSequence[0].ImagePositionPatient[2])
        assert z == pytest.approx(z_by_uid[source])


def test_real_feet_first_ct_slices(tmp_path: Path) -> None:
    """Three real GE slices, numbered from the top (z descending with InstanceNumber)."""
    files = sorted(REAL_CT_DIR.glob("0?.dcm"))
    slices = [pydicom.dcmread(path, stop_before_pixels=True) for path in files]
    ordered = sorted_along_normal(slices)
    assert [int(ds.InstanceNumber) for ds in ordered] == [3, 2, 1]
    mask = np.zeros((3, int(slices[0].Rows), int(slices[0].Columns)), np.uint8)
    for k in range(3):
        mask[k, 100 : 150 + 40 * k, 100:200] = LungLabel.RIGHT_LUNG  # more rows at higher z
    path = write_lung_seg(mask, slices, tmp_path / "seg.dcm", algorithm_version=VERSION)
    assert dciodvfy_errors(path) == []
    masks = read_back(path, ordered)
    assert set(masks) == {"Right lung"}
    np.testing.assert_array_equal(masks["Right lung"], mask == LungLabel.RIGHT_LUNG)


def test_affine_places_every_voxel_where_the_headers_say(ct_slices: list[Dataset]) -> None:
    shuffled = [ct_slices[i] for i in (4, 0, 9, 2, 7, 1, 8, 3, 6, 5)]
    ordered = sorted_along_normal(shuffled)
    affine = slice_stack_affine_lps(ordered)
    dz, dy, dx = CT_GRID.spacing_mm  # non-square pixels: dy 0.8, dx 0.75
    np.testing.assert_allclose(affine[:3, :3], [[0, 0, dx], [0, dy, 0], [dz, 0, 0]], atol=1e-9)
    for k, ds in enumerate(ordered):
        np.testing.assert_allclose(affine @ [k, 0, 0, 1], [*map(float, ds.ImagePositionPatient), 1.0], atol=1e-6)


def test_geometry_problems_are_input_data_errors(ct_slices: list[Dataset]) -> None:
    with pytest.raises(InputDataError, match="share one position"):
        sorted_along_normal([*ct_slices, ct_slices[3]])
    with pytest.raises(InputDataError, match="regular grid"):
        slice_stack_affine_lps(sorted_along_normal([ds for k, ds in enumerate(ct_slices) if k != 4]))


def test_bad_masks_are_refused(ct_slices: list[Dataset], tmp_path: Path) -> None:
    mask = lung_mask(CT_GRID.shape)
    with pytest.raises(ValueError, match="shape"):
        write_lung_seg(mask[1:], ct_slices, tmp_path / "a.dcm", algorithm_version=VERSION)
    with pytest.raises(ValueError, match="not LungLabel"):
        write_lung_seg(mask * 2, ct_slices, tmp_path / "b.dcm", algorithm_version=VERSION)
    with pytest.raises(ValueError, match="no lung voxel"):
        write_lung_seg(np.zeros_like(mask), ct_slices, tmp_path / "c.dcm", algorithm_version=VERSION)
    assert not list(tmp_path.iterdir())


def test_one_lung_gives_one_segment(ct_slices: list[Dataset], tmp_path: Path) -> None:
    mask = lung_mask(CT_GRID.shape)
    mask[mask == LungLabel.RIGHT_LUNG] = 0
    path = write_lung_seg(mask, ct_slices, tmp_path / "left.dcm", algorithm_version=VERSION)
    assert dciodvfy_errors(path) == []
    masks = read_back(path, ct_slices)
    assert set(masks) == {"Left lung"}
    np.testing.assert_array_equal(masks["Left lung"], mask == LungLabel.LEFT_LUNG)
