"""Tests of core.dicom.ctp_writer and core.dicom.ctp_reader: a 4D CT perfusion series round-trips.

Tolerances: HU exact after rounding to integers; times within 1 microsecond (DICOM TM keeps
microseconds); positions within 1e-4 mm.
"""

from __future__ import annotations

import random
from pathlib import Path

import highdicom
import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage

from core.dicom.ct_writer import write_ct_series
from core.dicom.ctp_reader import MIN_FRAMES, is_dynamic_series, read_ctp_series, time_points_per_position
from core.dicom.ctp_writer import SERIES_DESCRIPTION, write_ctp_series
from core.dicom.study import synthetic_patient_study
from core.errors import InputDataError
from core.geometry import Grid
from tests.dciodvfy import dciodvfy_errors, dciodvfy_warnings

GRID = Grid(shape=(3, 20, 24), spacing_mm=(5.0, 1.8, 1.6), origin_lps_mm=(-19.2, -17.1, -40.0))
TIMES_S = np.arange(12) * 1.5 + np.array([0.0] + [0.25] * 11)  # irregular first interval
TIME_TOLERANCE_S = 1e-6
MM_TOLERANCE = 1e-4


def _hu(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(30.0, 40.0, size=(len(TIMES_S), *GRID.shape))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, list[Path]]:
    rng = np.random.default_rng(7)
    hu = _hu(rng)
    folder = tmp_path_factory.mktemp("ctp")
    paths = write_ctp_series(
        hu, TIMES_S, GRID, synthetic_patient_study(rng), folder, frame_of_reference_uid=highdicom.UID()
    )
    return hu, paths


def _copy(paths: list[Path], folder: Path) -> list[Path]:
    folder.mkdir()
    copies = []
    for path in paths:
        copy = folder / path.name
        copy.write_bytes(path.read_bytes())
        copies.append(copy)
    return copies


def test_files_pass_dciodvfy_without_errors_or_warnings(written) -> None:
    _, paths = written
    for path in (paths[0], paths[len(paths) // 2], paths[-1]):
        assert dciodvfy_errors(path) == [], path.name
        assert dciodvfy_warnings(path) == [], path.name


def test_headers_describe_one_dynamic_head_series(written) -> None:
    _, paths = written
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    assert len(paths) == len(TIMES_S) * GRID.shape[0]
    assert len({ds.SeriesInstanceUID for ds in headers}) == 1
    assert sorted(int(ds.InstanceNumber) for ds in headers) == list(range(1, len(paths) + 1))
    for ds in headers:
        assert ds.SOPClassUID == CTImageStorage
        assert ds.SeriesDescription == SERIES_DESCRIPTION
        assert ds.BodyPartExamined == "HEAD" and float(ds.KVP) == 80.0
        assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
    by_frame: dict[int, list] = {}
    for ds in headers:
        by_frame.setdefault(int(ds.AcquisitionNumber), []).append(ds)
    assert sorted(by_frame) == list(range(1, len(TIMES_S) + 1))
    first_positions = sorted(tuple(float(v) for v in ds.ImagePositionPatient) for ds in by_frame[1])
    for frame in by_frame.values():
        assert len({ds.AcquisitionTime for ds in frame}) == 1
        assert sorted(tuple(float(v) for v in ds.ImagePositionPatient) for ds in frame) == first_positions
    assert time_points_per_position(headers) == len(TIMES_S)
    assert is_dynamic_series(headers)


def test_round_trip_gives_the_same_hu_times_and_grid(written) -> None:
    hu, paths = written
    shuffled = list(paths)
    random.Random(3).shuffle(shuffled)
    read, times_s, grid = read_ctp_series(shuffled)
    assert read.shape == hu.shape and read.dtype == np.float32
    np.testing.assert_array_equal(read, np.rint(hu))
    np.testing.assert_allclose(times_s, TIMES_S - TIMES_S[0], atol=TIME_TOLERANCE_S)
    assert grid.shape == GRID.shape
    np.testing.assert_allclose(grid.spacing_mm, GRID.spacing_mm, atol=MM_TOLERANCE)
    np.testing.assert_allclose(grid.origin_lps_mm, GRID.origin_lps_mm, atol=MM_TOLERANCE)


def test_a_static_ct_is_not_dynamic(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    paths = write_ct_series(
        _hu(rng)[0], GRID, synthetic_patient_study(rng), tmp_path, frame_of_reference_uid=highdicom.UID()
    )
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    assert time_points_per_position(headers) == 1
    assert not is_dynamic_series(headers)
    with pytest.raises(InputDataError, match=f"at least {MIN_FRAMES} frames"):
        read_ctp_series(paths)


def test_reader_rejects_a_missing_frame_file(written, tmp_path: Path) -> None:
    _, paths = written
    with pytest.raises(InputDataError, match="missing frame files"):
        read_ctp_series([p for p in paths if p.name != "CTP_005_002.dcm"])


def test_reader_rejects_inconsistent_positions(written, tmp_path: Path) -> None:
    _, paths = written
    copies = _copy(paths, tmp_path / "moved_z")
    ds = pydicom.dcmread(copies[7])
    ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 1.0
    ds.save_as(copies[7])
    with pytest.raises(InputDataError, match="inconsistent slice positions"):
        read_ctp_series(copies)
    copies = _copy(paths, tmp_path / "moved_x")
    ds = pydicom.dcmread(copies[7])
    ds.ImagePositionPatient[0] = float(ds.ImagePositionPatient[0]) + 0.5
    ds.save_as(copies[7])
    with pytest.raises(InputDataError, match="inconsistent slice positions: frame 3"):
        read_ctp_series(copies)


def test_reader_rejects_missing_times_duplicates_and_few_frames(written, tmp_path: Path) -> None:
    _, paths = written
    copies = _copy(paths, tmp_path / "no_time")
    ds = pydicom.dcmread(copies[0])
    for keyword in ("AcquisitionDateTime", "AcquisitionTime", "ContentTime"):
        delattr(ds, keyword)
    ds.save_as(copies[0])
    with pytest.raises(InputDataError, match="no AcquisitionDateTime"):
        read_ctp_series(copies)
    n_slices = GRID.shape[0]
    with pytest.raises(InputDataError, match="at least"):
        read_ctp_series(paths[: 4 * n_slices])
    with pytest.raises(InputDataError, match="no CT perfusion files"):
        read_ctp_series([])


def test_writer_validates_its_inputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    hu, study = _hu(rng), synthetic_patient_study(rng)
    with pytest.raises(ValueError, match="strictly increasing"):
        write_ctp_series(hu, TIMES_S[::-1], GRID, study, tmp_path / "a", frame_of_reference_uid=highdicom.UID())
    with pytest.raises(ValueError, match="one time per frame"):
        write_ctp_series(hu, TIMES_S[:-1], GRID, study, tmp_path / "b", frame_of_reference_uid=highdicom.UID())
    write_ctp_series(hu[:, :1], TIMES_S, Grid.centred((1, 20, 24), (5.0, 1.8, 1.6)), study, tmp_path / "c",
                     frame_of_reference_uid=highdicom.UID())  # fmt: skip
    with pytest.raises(FileExistsError):
        write_ctp_series(hu[:, :1], TIMES_S, Grid.centred((1, 20, 24), (5.0, 1.8, 1.6)), study, tmp_path / "c",
                         frame_of_reference_uid=highdicom.UID())  # fmt: skip
