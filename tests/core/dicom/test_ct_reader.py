"""Tests of core.dicom.ct_reader on a real scanner's CT and on our own series.

The real files (GE LightSpeed Ultra, feet first supine, InstanceNumber 1 is the most
superior slice) are read in place from ``../shared/testdata/dcmqi_ct_seg`` and never copied.
"""

from __future__ import annotations

from pathlib import Path

import highdicom
import numpy as np
import pydicom
import pytest

from core.dicom.ct_reader import read_ct_volume
from core.dicom.ct_writer import write_ct_series
from core.errors import InputDataError
from tests.core.dicom.synthetic_study import WrittenStudy
from tests.testdata import REAL_CT_DIR

REAL_CT_FILES = [REAL_CT_DIR / f"0{k}.dcm" for k in (1, 2, 3)]
MM_TOLERANCE = 1e-4


def test_real_ct_test_data_is_present() -> None:
    missing = [str(p) for p in REAL_CT_FILES if not p.is_file()]
    assert not missing, f"third-party test data missing: {missing}; check out ../shared beside the repository"


def test_real_ct_is_read_inferior_first_by_position_not_instance_number() -> None:
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in REAL_CT_FILES]
    assert [int(ds.InstanceNumber) for ds in headers] == [1, 2, 3]
    assert [float(ds.ImagePositionPatient[2]) for ds in headers] == pytest.approx([-126.69, -127.69, -128.69])
    hu, grid = read_ct_volume(REAL_CT_FILES)
    assert grid.shape == (3, 512, 512)
    np.testing.assert_allclose(grid.spacing_mm, (1.0, 0.810547, 0.810547), atol=MM_TOLERANCE)
    np.testing.assert_allclose(grid.origin_lps_mm, (-235.199997, -226.800003, -128.690002), atol=MM_TOLERANCE)
    np.testing.assert_allclose(grid.slice_positions_lps_mm()[:, 2], [-128.69, -127.69, -126.69], atol=MM_TOLERANCE)
    most_inferior = pydicom.dcmread(REAL_CT_FILES[2])
    np.testing.assert_array_equal(hu[0], most_inferior.pixel_array.astype(np.float32) - 1024)


def test_writer_reproduces_the_real_ct_geometry(written_study: WrittenStudy, tmp_path: Path) -> None:
    """Writing the real CT's volume on its grid gives the same ImagePositionPatient/orientation per slice."""
    hu, grid = read_ct_volume(REAL_CT_FILES)
    paths = write_ct_series(hu, grid, written_study.study, tmp_path / "ct", frame_of_reference_uid=highdicom.UID())
    for path in paths:
        ours = pydicom.dcmread(path, stop_before_pixels=True)
        real = next(
            pydicom.dcmread(p, stop_before_pixels=True) for p in REAL_CT_FILES
            if abs(float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2])
                   - float(ours.ImagePositionPatient[2])) < 1e-3
        )  # fmt: skip
        for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
            np.testing.assert_allclose(
                [float(v) for v in ours[keyword].value], [float(v) for v in real[keyword].value], atol=MM_TOLERANCE
            )
    again, again_grid = read_ct_volume(paths)
    np.testing.assert_array_equal(again, hu)
    np.testing.assert_allclose(again_grid.origin_lps_mm, grid.origin_lps_mm, atol=MM_TOLERANCE)


def test_rejects_non_axial_and_mixed_series(written_study: WrittenStudy, tmp_path: Path) -> None:
    ds = pydicom.dcmread(written_study.ct_paths[0])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.save_as(tmp_path / "coronal.dcm")
    with pytest.raises(InputDataError, match="not axial"):
        read_ct_volume([tmp_path / "coronal.dcm"])
    with pytest.raises(InputDataError, match="2 series"):
        read_ct_volume([*written_study.ct_paths[:2], REAL_CT_FILES[0]])
    with pytest.raises(InputDataError, match="not regular"):
        read_ct_volume([written_study.ct_paths[0], written_study.ct_paths[1], written_study.ct_paths[3]])
    with pytest.raises(InputDataError, match="no CT files"):
        read_ct_volume([])
