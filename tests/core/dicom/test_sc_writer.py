"""The key-image Secondary Capture writer: validity (dciodvfy), pixel round trip, series, orientation, references.

The pictures are rendered by :func:`core.lung.rendering.render_key_images` from the synthetic study's
CT (``CT_GRID``, written in ascending z): lungs are the voxels between -925 and -775 HU (the
phantom's lungs are -850 HU with 15 HU noise, air -1000 HU), split at the middle column into the
patient's right (low x) and left lung.  Expected slice references come from the CT headers' z.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import Dataset

from core.dicom.sc_writer import KeyImageSeries, write_key_images
from core.labels import LungLabel
from core.lung.rendering import KeyImage, render_key_image, render_key_images
from tests.core.dicom.synthetic_study import CT_GRID, WrittenStudy
from tests.dciodvfy import dciodvfy_errors, dciodvfy_warnings

MODEL, VERSION = "test-ddran", "9.8.7"
SERIES = KeyImageSeries(series_number=83, series_description="Synthetic key images - research use", file_prefix="key")
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
LUNG_HU = (-925.0, -775.0)
SHOWN_SLICE = 7
"""Axial slice of the extra picture; its z is CT_GRID's origin z + 7 * 2.5 mm."""


def lung_labels(hu: np.ndarray) -> np.ndarray:
    lung = (hu > LUNG_HU[0]) & (hu < LUNG_HU[1])
    right = np.arange(hu.shape[2]) < hu.shape[2] // 2
    return np.where(lung, np.where(right, LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG), 0).astype(np.uint8)


def maps_of(labels: np.ndarray) -> dict[str, np.ndarray]:
    z = np.linspace(0.2, 1.0, labels.shape[0], dtype=np.float32)[:, None, None]
    return {
        "perfusion": np.where(labels > 0, z, 0.0).astype(np.float32),
        "ventilation": np.where(labels == LungLabel.RIGHT_LUNG, 0.9, 0.0).astype(np.float32),
    }


def _z(ds: Dataset) -> float:
    return float(ds.ImagePositionPatient[2])


def write(images: list[KeyImage], headers: list[Dataset], out_dir: Path) -> list[Path]:
    return write_key_images(images, headers, out_dir, series=SERIES, algorithm_name=MODEL, algorithm_version=VERSION)


@pytest.fixture(scope="module")
def ct_slices(written_study: WrittenStudy) -> list[Dataset]:
    """The synthetic CT's headers in file order (= ascending z)."""
    return [pydicom.dcmread(path, stop_before_pixels=True) for path in written_study.ct_paths]


@pytest.fixture(scope="module")
def images(written_study: WrittenStudy) -> list[KeyImage]:
    labels = lung_labels(written_study.hu)
    assert (labels == LungLabel.RIGHT_LUNG).any() and (labels == LungLabel.LEFT_LUNG).any()
    return render_key_images(written_study.hu, maps_of(labels), labels, CT_GRID, unit_label="relative")


@pytest.fixture(scope="module")
def written(images: list[KeyImage], ct_slices: list[Dataset], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write(images, ct_slices, tmp_path_factory.mktemp("sc"))


def test_every_image_is_valid_dicom(written: list[Path]) -> None:
    assert len(written) == 4
    for path in written:
        assert dciodvfy_errors(path) == [], path.name
        assert dciodvfy_warnings(path) == [], path.name


def test_pixels_round_trip_exactly(written: list[Path], images: list[KeyImage]) -> None:
    for path, image in zip(written, images, strict=True):
        sc = pydicom.dcmread(path)
        assert sc.SOPClassUID == SECONDARY_CAPTURE
        assert (sc.PhotometricInterpretation, sc.SamplesPerPixel, sc.BitsAllocated) == ("RGB", 3, 8)
        assert (sc.Rows, sc.Columns) == image.rgb.shape[:2]
        np.testing.assert_array_equal(sc.pixel_array, image.rgb)


def test_one_new_series_in_the_ct_study(written: list[Path], ct_slices: list[Dataset], tmp_path: Path) -> None:
    scs = [pydicom.dcmread(path) for path in written]
    ct = ct_slices[0]
    assert len({sc.SeriesInstanceUID for sc in scs}) == 1
    assert scs[0].SeriesInstanceUID != ct.SeriesInstanceUID
    assert len({sc.SOPInstanceUID for sc in scs}) == len(scs)
    assert [int(sc.InstanceNumber) for sc in scs] == list(range(1, len(scs) + 1))
    for sc in scs:
        assert sc.StudyInstanceUID == ct.StudyInstanceUID
        assert sc.PatientID == ct.PatientID
        assert sc.SeriesNumber == SERIES.series_number
        assert sc.SeriesDescription == SERIES.series_description
    assert all(path.parent == written[0].parent and path.name.startswith(SERIES.file_prefix) for path in written)
    # a second call makes a second series
    again = pydicom.dcmread(write([_image_at(SHOWN_SLICE)], ct_slices, tmp_path)[0])
    assert again.SeriesInstanceUID != scs[0].SeriesInstanceUID


def test_orientation_laterality_and_annotation(written: list[Path], images: list[KeyImage]) -> None:
    expected_orientation = {"axial": ["L", "P"], "coronal": ["L", "F"]}
    for path, image in zip(written, images, strict=True):
        sc = pydicom.dcmread(path)
        assert list(sc.PatientOrientation) == expected_orientation[image.plane]
        assert sc.BurnedInAnnotation == "NO"
        assert sc.ImageLaterality == "B"
        assert "SYNTHETIC" in sc.DerivationDescription
        equipment = [item for item in sc.ContributingEquipmentSequence if item.get("SoftwareVersions") == VERSION]
        assert [item.ManufacturerModelName for item in equipment] == [MODEL]


def test_axial_image_references_the_nearest_ct_slice(
    written: list[Path], images: list[KeyImage], ct_slices: list[Dataset]
) -> None:
    dz = CT_GRID.spacing_mm[0]
    axial = [(path, image) for path, image in zip(written, images, strict=True) if image.plane == "axial"]
    assert len(axial) == 2
    for path, image in axial:
        nearest = min(ct_slices, key=lambda ds: abs(_z(ds) - image.position_mm))
        assert abs(_z(nearest) - image.position_mm) < dz / 2
        (source,) = pydicom.dcmread(path).SourceImageSequence
        assert source.ReferencedSOPInstanceUID == nearest.SOPInstanceUID
        assert source.ReferencedSOPClassUID == nearest.SOPClassUID


def _image_at(index: int) -> KeyImage:
    """An axial picture of slice ``index`` (small CT and map, enough for the header)."""
    shape = CT_GRID.shape
    labels = np.zeros(shape, dtype=np.uint8)
    labels[:, 20:40, 10:30] = LungLabel.RIGHT_LUNG
    return render_key_image(
        np.full(shape, -850.0),
        np.full(shape, 0.5, dtype=np.float32),
        labels,
        CT_GRID,
        plane="axial",
        index=index,
        map_title="Synthetic perfusion",
        unit_label="relative",
    )


def test_shuffled_headers_still_reference_the_shown_slice(ct_slices: list[Dataset], tmp_path: Path) -> None:
    image = _image_at(SHOWN_SLICE)
    expected_z = CT_GRID.origin_lps_mm[2] + SHOWN_SLICE * CT_GRID.spacing_mm[0]  # -95.0 mm
    shuffled = [ct_slices[i] for i in np.random.default_rng(7).permutation(len(ct_slices))]
    (path,) = write([image], shuffled, tmp_path)
    referenced = pydicom.dcmread(path).SourceImageSequence[0].ReferencedSOPInstanceUID
    (shown,) = [ds for ds in ct_slices if ds.SOPInstanceUID == referenced]
    assert _z(shown) == pytest.approx(expected_z)


def test_empty_specific_character_set_does_not_break_writing(
    images: list[KeyImage], ct_slices: list[Dataset], tmp_path: Path
) -> None:
    headers = [copy.deepcopy(ds) for ds in ct_slices]
    for ds in headers:
        ds.SpecificCharacterSet = ""
    paths = write(images, headers, tmp_path)
    assert ct_slices[0].SpecificCharacterSet != ""  # the deep copies only
    for path, image in zip(paths, images, strict=True):
        assert dciodvfy_errors(path) == []
        sc = pydicom.dcmread(path)
        assert not sc.get("SpecificCharacterSet")  # the default repertoire
        np.testing.assert_array_equal(sc.pixel_array, image.rgb)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rgb: rgb.astype(np.float32), "uint8"),
        (lambda rgb: rgb[..., 0], "uint8"),
        (lambda rgb: np.concatenate([rgb, rgb[..., :1]], axis=-1), "uint8"),
    ],
    ids=["float", "grey", "rgba"],
)
def test_bad_pictures_are_refused(
    images: list[KeyImage], ct_slices: list[Dataset], tmp_path: Path, change, message: str
) -> None:
    bad = dataclasses.replace(images[1], rgb=change(images[1].rgb))
    with pytest.raises(ValueError, match=message):
        write([images[0], bad], ct_slices, tmp_path)
    assert not list(tmp_path.iterdir())


def test_no_picture_is_refused(ct_slices: list[Dataset], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no key image"):
        write([], ct_slices, tmp_path)
    assert not list(tmp_path.iterdir())
