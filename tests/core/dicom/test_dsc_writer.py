"""Tests of core.dicom.dsc_writer and core.dicom.mr_writer: a DSC-MRI series as an MR scanner writes it.

Tolerances: stored values exact after rounding to integers; times to the microsecond (DICOM TM).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

import highdicom
import numpy as np
import pydicom
import pytest
from pydicom.uid import MRImageStorage

from core.dicom.dsc_writer import IMAGE_TYPE, SERIES_DESCRIPTION, dsc_sequence, write_dsc_series
from core.dicom.dynamic_reader import is_dynamic_series, time_points_per_position
from core.dicom.mr_writer import magnitude_to_stored
from core.dicom.study import synthetic_patient_study
from core.geometry import Grid
from tests.core.dicom.dsc_series import ECHO_TIME_MS, GRID, REPETITION_TIME_MS, TIMES_S, dsc_signal, write_small_dsc
from tests.dciodvfy import dciodvfy_errors, dciodvfy_warnings

TIME_TOLERANCE_S = 1e-6


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, list[Path]]:
    return write_small_dsc(tmp_path_factory.mktemp("dsc"), seed=7)


def test_first_and_last_time_points_pass_dciodvfy_without_errors_or_warnings(written) -> None:
    _, paths = written
    for path in (paths[0], paths[-1]):
        assert dciodvfy_errors(path) == [], path.name
        assert dciodvfy_warnings(path) == [], path.name


def test_files_open_as_mr_images_of_one_dsc_series(written) -> None:
    _, paths = written
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    assert len(paths) == len(TIMES_S) * GRID.shape[0]
    assert len({ds.SeriesInstanceUID for ds in headers}) == 1
    assert sorted(int(ds.InstanceNumber) for ds in headers) == list(range(1, len(paths) + 1))
    for ds in headers:
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID == MRImageStorage
        assert ds.Modality == "MR" and ds.BodyPartExamined == "HEAD"
        assert ds.SeriesDescription == SERIES_DESCRIPTION
        assert tuple(ds.ImageType) == IMAGE_TYPE
        assert ds.ScanningSequence == "EP" and ds.MRAcquisitionType == "2D"
        assert float(ds.EchoTime) == ECHO_TIME_MS and float(ds.RepetitionTime) == REPETITION_TIME_MS
        assert float(ds.FlipAngle) == 60.0 and float(ds.MagneticFieldStrength) == 3.0
        assert int(ds.NumberOfTemporalPositions) == len(TIMES_S)
        assert ds.PixelRepresentation == 0 and ds.BitsAllocated == 16
        assert ds.ContrastBolusIngredient == "GADOLINIUM"
        assert "TriggerTime" not in ds


def test_time_points_share_positions_and_carry_their_times(written) -> None:
    _, paths = written
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    by_time: dict[int, list] = {}
    for ds in headers:
        assert int(ds.AcquisitionNumber) == int(ds.TemporalPositionIdentifier)
        by_time.setdefault(int(ds.TemporalPositionIdentifier), []).append(ds)
    assert sorted(by_time) == list(range(1, len(TIMES_S) + 1))
    first_positions = sorted(tuple(float(v) for v in ds.ImagePositionPatient) for ds in by_time[1])
    for k, frame in by_time.items():
        # every slice of a time point at the series start (SeriesDate/SeriesTime) plus times_s[k]
        assert sorted(tuple(float(v) for v in ds.ImagePositionPatient) for ds in frame) == first_positions
        moments = {datetime.strptime(str(ds.AcquisitionDateTime), "%Y%m%d%H%M%S.%f") for ds in frame}
        assert len(moments) == 1 and {ds.ContentTime for ds in frame} == {frame[0].AcquisitionTime}
        started = datetime.strptime(str(frame[0].SeriesDate) + str(frame[0].SeriesTime), "%Y%m%d%H%M%S")
        assert abs((moments.pop() - started) / timedelta(seconds=1) - TIMES_S[k - 1]) < TIME_TOLERANCE_S
    assert time_points_per_position(headers) == len(TIMES_S)
    assert is_dynamic_series(headers, min_time_points=len(TIMES_S))


def test_pixels_are_the_rounded_signal(written) -> None:
    signal, paths = written
    ds = pydicom.dcmread(paths[-1])
    assert ds.pixel_array.dtype == np.uint16
    np.testing.assert_array_equal(ds.pixel_array, np.rint(signal[-1, -1]))
    assert 0 < float(ds.WindowCenter) < float(ds.WindowWidth)


def test_magnitude_to_stored_rounds_clips_noise_and_rejects_what_cannot_be_stored() -> None:
    stored = magnitude_to_stored(np.array([-2.4, 0.4, 1.6, 65535.2]))
    assert stored.dtype == np.dtype("<u2")
    np.testing.assert_array_equal(stored, [0, 0, 2, 65535])
    with pytest.raises(ValueError, match="above the largest stored value"):
        magnitude_to_stored(np.array([0.0, 70000.0]))
    with pytest.raises(ValueError, match="non-negative"):
        magnitude_to_stored(np.array([-100.0, 1000.0]))
    with pytest.raises(ValueError, match="NaN"):
        magnitude_to_stored(np.array([np.nan, 1.0]))


def test_mr_sequence_validates_its_parameters() -> None:
    valid = dsc_sequence(GRID, echo_time_ms=30.0, repetition_time_ms=1000.0, flip_angle_deg=60.0,
                         magnetic_field_strength_t=3.0)  # fmt: skip
    assert valid.echo_train_length == GRID.shape[1]
    with pytest.raises(ValueError, match="echo_time_ms"):
        dataclasses.replace(valid, repetition_time_ms=20.0)
    with pytest.raises(ValueError, match="scanning_sequence"):
        dataclasses.replace(valid, scanning_sequence=("EPI",))
    with pytest.raises(ValueError, match="sequence_name"):
        dataclasses.replace(valid, sequence_name="a name longer than 16")


def test_writer_validates_its_inputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    signal, study, uid = dsc_signal(rng), synthetic_patient_study(rng), highdicom.UID()
    with pytest.raises(ValueError, match="strictly increasing"):
        write_dsc_series(signal, TIMES_S[::-1], GRID, study, tmp_path / "a", frame_of_reference_uid=uid)
    with pytest.raises(ValueError, match="one time per time point"):
        write_dsc_series(signal, TIMES_S[:-1], GRID, study, tmp_path / "b", frame_of_reference_uid=uid)
    with pytest.raises(ValueError, match="closer than RepetitionTime"):
        write_dsc_series(signal, TIMES_S, GRID, study, tmp_path / "c", frame_of_reference_uid=uid,
                         repetition_time_ms=2000.0)  # fmt: skip
    with pytest.raises(ValueError, match=r"\(T, nz, ny, nx\)"):
        write_dsc_series(signal[0], TIMES_S, GRID, study, tmp_path / "d", frame_of_reference_uid=uid)
    one_slice = Grid.centred((1, 20, 24), (5.0, 1.8, 1.6))
    write_dsc_series(signal[:, :1], TIMES_S, one_slice, study, tmp_path / "e", frame_of_reference_uid=uid)
    with pytest.raises(FileExistsError):
        write_dsc_series(signal[:, :1], TIMES_S, one_slice, study, tmp_path / "e", frame_of_reference_uid=uid)
