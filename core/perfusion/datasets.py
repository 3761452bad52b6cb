"""Parameter draws of seed 002: the training distribution and the six test datasets of Table 1.

Training (section 2.3): SNR in [1, 30] dB, CBF in [0, 200] ml/100 g/min, MTT in [3.43, 24] s,
alpha in [0.5, 100], T_A in [1, 4] s, delta in [0, 25] s, time step in [1, 2] s and 45-120
frames, all uniform; AIF family at random.

Test (Table 1): CBV fixed at 4 ml/100 g (grey matter), so CBF = CBV / MTT; alpha = 1; 80 s at
1 s; T_A = 0 (no dispersion); SNR 20 dB; delta uniform in [0, 25] s - except for the one variable
each dataset varies (its "levels", spread evenly over the curves).  Dataset 5 varies the AIF
family, which the others draw at random.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import SimulationParameterError
from core.perfusion.aif import AIF_KINDS, SCALE_RANGE
from core.perfusion.simulation import CurveParameters

TRAINING_RANGES: dict[str, tuple[float, float]] = {
    "snr_db": (1.0, 30.0),
    "cbf_ml_100g_min": (0.0, 200.0),
    "mtt_s": (3.43, 24.0),
    "alpha": (0.5, 100.0),
    "ta_s": (1.0, 4.0),
    "delay_s": (0.0, 25.0),
    "dt_s": (1.0, 2.0),
    "n_frames": (45, 120),
}

TEST_CBV_ML_100G = 4.0
TEST_DURATION_S = 80.0


@dataclass(frozen=True)
class TestDataset:
    """One dataset of Table 1: which variable it varies and at which levels."""

    number: int
    variable: str
    levels: tuple[float | str, ...]
    label: str


TABLE1 = (
    TestDataset(1, "snr_db", (5, 7, 10, 15, 20, 25, 30), "noise (SNR, dB)"),
    TestDataset(2, "delay_s", tuple(float(d) for d in range(11)), "delay (s)"),
    TestDataset(3, "ta_s", (0.0, 1.0, 2.0, 3.0, 4.0, 5.0), "dispersion (T_A, s)"),
    TestDataset(4, "dt_s", (1.0, 1.1, 1.3, 1.6, 2.0), "temporal resolution (s)"),
    TestDataset(5, "aif_kind", AIF_KINDS, "AIF type"),
    TestDataset(6, "alpha", (1.0, 100.0), "residue shape (alpha)"),
)


def _scales(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(*SCALE_RANGE, n), rng.uniform(*SCALE_RANGE, n)


def _kinds(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.asarray(AIF_KINDS)[rng.integers(len(AIF_KINDS), size=n)]


def training_parameters(rng: np.random.Generator, n: int) -> CurveParameters:
    """``n`` curves from seed 002's training distribution."""
    r = TRAINING_RANGES
    time_scale, value_scale = _scales(rng, n)
    return CurveParameters(
        aif_kind=_kinds(rng, n),
        aif_time_scale=time_scale,
        aif_value_scale=value_scale,
        cbf_ml_100g_min=rng.uniform(*r["cbf_ml_100g_min"], n),
        mtt_s=rng.uniform(*r["mtt_s"], n),
        alpha=rng.uniform(*r["alpha"], n),
        delay_s=rng.uniform(*r["delay_s"], n),
        ta_s=rng.uniform(*r["ta_s"], n),
        dt_s=rng.uniform(*r["dt_s"], n),
        n_frames=rng.integers(int(r["n_frames"][0]), int(r["n_frames"][1]) + 1, n),
        snr_db=rng.uniform(*r["snr_db"], n),
    )


def _spread(levels: Sequence[float | str], n: int) -> np.ndarray:
    return np.asarray(levels)[np.arange(n) % len(levels)]


def table1_parameters(dataset: TestDataset, rng: np.random.Generator, n: int = 10_000) -> CurveParameters:
    """``n`` curves of one Table 1 dataset; ``levels`` cycle over the curves in order."""
    if n < len(dataset.levels):
        raise SimulationParameterError(f"dataset #{dataset.number} needs at least {len(dataset.levels)} curves")
    time_scale, value_scale = _scales(rng, n)
    mtt = rng.uniform(*TRAINING_RANGES["mtt_s"], n)
    values: dict[str, np.ndarray] = {
        "aif_kind": _kinds(rng, n),
        "delay_s": rng.uniform(*TRAINING_RANGES["delay_s"], n),
        "ta_s": np.zeros(n),
        "dt_s": np.ones(n),
        "alpha": np.ones(n),
        "snr_db": np.full(n, 20.0),
    }
    values[dataset.variable] = _spread(dataset.levels, n)
    dt = values["dt_s"].astype(np.float64)
    return CurveParameters(
        aif_kind=values["aif_kind"],
        aif_time_scale=time_scale,
        aif_value_scale=value_scale,
        cbf_ml_100g_min=TEST_CBV_ML_100G / mtt * 60.0,
        mtt_s=mtt,
        alpha=values["alpha"].astype(np.float64),
        delay_s=values["delay_s"].astype(np.float64),
        ta_s=values["ta_s"].astype(np.float64),
        dt_s=dt,
        n_frames=np.floor(TEST_DURATION_S / dt + 1e-9).astype(np.int64),
        snr_db=values["snr_db"].astype(np.float64),
    )


def dataset_levels(dataset: TestDataset, params: CurveParameters) -> np.ndarray:
    """The level of the dataset's variable for every curve of ``params``."""
    return np.asarray(getattr(params, dataset.variable))
