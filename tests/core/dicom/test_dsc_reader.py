"""Tests of core.dicom.dsc_reader: a DSC-MRI series written by core.dicom.dsc_writer round-trips.

Tolerances: signal exact after rounding to integers; times within 1 microsecond (DICOM TM keeps
microseconds); positions within 1e-4 mm; EchoTime and RepetitionTime exact.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import highdicom
import numpy as np
import pydicom
import pytest

from core.dicom.ctp_writer import write_ctp_series
from core.dicom.dsc_reader import read_dsc
from core.dicom.study import synthetic_patient_study
from core.errors import InputDataError
from tests.core.dicom.dsc_series import (
    ECHO_TIME_MS,
    GRID,
    REPETITION_TIME_MS,
    TIMES_S,
    copy_files,
    write_small_dsc,
)

TIME_TOLERANCE_S = 1e-6
MM_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, list[Path]]:
    return write_small_dsc(tmp_path_factory.mktemp("dsc"), seed=11)


def test_round_trip_gives_the_same_signal_times_grid_and_sequence(written) -> None:
    signal, paths = written
    shuffled = list(paths)
    random.Random(3).shuffle(shuffled)
    series = read_dsc(shuffled)
    assert series.signal.shape == signal.shape and series.signal.dtype == np.float32
    np.testing.assert_array_equal(series.signal, np.rint(signal))
    np.testing.assert_allclose(series.times_s, TIMES_S - TIMES_S[0], atol=TIME_TOLERANCE_S)
    assert series.grid.shape == GRID.shape
    np.testing.assert_allclose(series.grid.spacing_mm, GRID.spacing_mm, atol=MM_TOLERANCE)
    np.testing.assert_allclose(series.grid.origin_lps_mm, GRID.origin_lps_mm, atol=MM_TOLERANCE)
    assert series.echo_time_s == pytest.approx(ECHO_TIME_MS / 1000.0)
    assert series.repetition_time_s == pytest.approx(REPETITION_TIME_MS / 1000.0)
    assert [int(ds.TemporalPositionIdentifier) for ds in series.first_frame] == [1] * GRID.shape[0]
    z = [float(ds.ImagePositionPatient[2]) for ds in series.first_frame]
    assert z == sorted(z)


def test_without_acquisition_times_the_temporal_positions_and_tr_time_the_series(
    written, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, paths = written
    copies = copy_files(paths, tmp_path / "no_times")
    for copy in copies:
        ds = pydicom.dcmread(copy)
        for keyword in ("AcquisitionDateTime", "AcquisitionTime", "ContentTime"):
            delattr(ds, keyword)
        ds.save_as(copy)
    with caplog.at_level(logging.WARNING, logger="core.dicom.dsc_reader"):
        series = read_dsc(copies)
    assert "TemporalPositionIdentifier x RepetitionTime" in caplog.text
    np.testing.assert_allclose(series.times_s, np.arange(len(TIMES_S)) * REPETITION_TIME_MS / 1000.0)


def test_reader_rejects_a_missing_time_point_file(written) -> None:
    _, paths = written
    with pytest.raises(InputDataError, match="missing frame files"):
        read_dsc([p for p in paths if p.name != "DSC_005_002.dcm"])


def test_reader_rejects_inconsistent_positions(written, tmp_path: Path) -> None:
    _, paths = written
    copies = copy_files(paths, tmp_path / "moved")
    ds = pydicom.dcmread(copies[7])
    ds.ImagePositionPatient[0] = float(ds.ImagePositionPatient[0]) + 0.5
    ds.save_as(copies[7])
    with pytest.raises(InputDataError, match="inconsistent slice positions: frame 3"):
        read_dsc(copies)


def test_reader_rejects_ct_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    hu = rng.normal(30.0, 10.0, size=(len(TIMES_S), *GRID.shape))
    paths = write_ctp_series(hu, TIMES_S, GRID, synthetic_patient_study(rng), tmp_path,
                             frame_of_reference_uid=highdicom.UID())  # fmt: skip
    with pytest.raises(InputDataError, match="not MR Image Storage"):
        read_dsc(paths)


def test_reader_rejects_a_missing_echo_time_and_mixed_echoes(written, tmp_path: Path) -> None:
    _, paths = written
    copies = copy_files(paths, tmp_path / "no_te")
    ds = pydicom.dcmread(copies[4])
    del ds.EchoTime
    ds.save_as(copies[4])
    with pytest.raises(InputDataError, match="no EchoTime"):
        read_dsc(copies)
    ds.EchoTime = 2 * ECHO_TIME_MS
    ds.save_as(copies[4])
    with pytest.raises(InputDataError, match="several EchoTimes"):
        read_dsc(copies)


def test_reader_rejects_no_files_and_few_time_points(written) -> None:
    _, paths = written
    with pytest.raises(InputDataError, match="no DSC perfusion files"):
        read_dsc([])
    with pytest.raises(InputDataError, match="at least 10 frames"):
        read_dsc(paths[: 4 * GRID.shape[0]])
