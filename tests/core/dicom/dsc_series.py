"""A small DSC-MRI series for the writer and reader tests: 3 slices of 20 x 24, 12 time points."""

from __future__ import annotations

from pathlib import Path

import highdicom
import numpy as np

from core.dicom.dsc_writer import write_dsc_series
from core.dicom.study import synthetic_patient_study
from core.geometry import Grid

GRID = Grid(shape=(3, 20, 24), spacing_mm=(5.0, 1.8, 1.6), origin_lps_mm=(-19.2, -17.1, -40.0))
TIMES_S = np.arange(12) * 1.5 + np.array([0.0] + [0.25] * 11)  # irregular first interval
ECHO_TIME_MS = 25.0
REPETITION_TIME_MS = 1500.0


def dsc_signal(rng: np.random.Generator) -> np.ndarray:
    """``(T, nz, ny, nx)`` signal around 600 with a 30 % bolus dip at time points 4-6."""
    signal = rng.normal(600.0, 20.0, size=(len(TIMES_S), *GRID.shape))
    signal[4:7] *= 0.7
    return signal


def write_small_dsc(folder: Path, seed: int) -> tuple[np.ndarray, list[Path]]:
    """Write the series of ``seed`` into ``folder``; returns the signal and the files."""
    rng = np.random.default_rng(seed)
    signal = dsc_signal(rng)
    paths = write_dsc_series(
        signal,
        TIMES_S,
        GRID,
        synthetic_patient_study(rng),
        folder,
        frame_of_reference_uid=highdicom.UID(),
        echo_time_ms=ECHO_TIME_MS,
        repetition_time_ms=REPETITION_TIME_MS,
        contrast_bolus_volume_ml=7.5,
        contrast_bolus_start_s=3.0,
    )
    return signal, paths


def copy_files(paths: list[Path], folder: Path) -> list[Path]:
    """Copies of ``paths`` in the new folder ``folder``, to be modified by a test."""
    folder.mkdir()
    copies = []
    for path in paths:
        copy = folder / path.name
        copy.write_bytes(path.read_bytes())
        copies.append(copy)
    return copies
