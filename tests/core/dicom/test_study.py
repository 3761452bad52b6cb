"""Tests of core.dicom.study: synthetic, consistent, reproducible patient and study attributes."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime

import numpy as np
import pytest
from pydicom.uid import UID

from core.dicom.study import PatientStudy, dicom_age, synthetic_patient_study


def test_same_seed_gives_the_same_study() -> None:
    assert synthetic_patient_study(np.random.default_rng(3)) == synthetic_patient_study(np.random.default_rng(3))


def test_other_seed_gives_another_patient_and_study() -> None:
    first = synthetic_patient_study(np.random.default_rng(1))
    second = synthetic_patient_study(np.random.default_rng(2))
    for name in ("patient_name", "patient_id", "study_instance_uid", "accession_number", "device_serial_number"):
        assert getattr(first, name) != getattr(second, name), name


@pytest.mark.parametrize("seed", range(20))
def test_values_are_synthetic_realistic_and_consistent(seed: int) -> None:
    study = synthetic_patient_study(np.random.default_rng(seed))
    assert re.fullmatch(r"PHANTOM\^THORAX\^\d{4}", study.patient_name)
    assert re.fullmatch(r"PH\d{8}", study.patient_id)
    assert "synthetic" in study.study_description.lower()
    assert UID(study.study_instance_uid).is_valid
    birth = datetime.strptime(study.patient_birth_date, "%Y%m%d").date()
    assert study.patient_age == dicom_age(birth, study.study_datetime.date())
    assert 30 <= int(study.patient_age[:3]) <= 85
    assert 8 <= study.study_datetime.hour <= 16
    assert study.study_datetime.weekday() < 5
    bmi = study.patient_weight_kg / study.patient_size_m**2
    assert 17.0 < bmi < 35.0


def test_dicom_age_counts_completed_years() -> None:
    assert dicom_age(date(1960, 6, 15), date(2023, 6, 14)) == "062Y"
    assert dicom_age(date(1960, 6, 15), date(2023, 6, 15)) == "063Y"
    with pytest.raises(ValueError, match="before birth"):
        dicom_age(date(2000, 1, 1), date(1999, 1, 1))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("patient_sex", "X", "patient_sex"),
        ("study_date", "2023-01-01", "study_date"),
        ("study_time", "25:00", "study_time"),
        ("patient_age", "63", "patient_age"),
        ("accession_number", "A" * 17, "accession_number"),
        ("patient_weight_kg", -1.0, "weight"),
    ],
)
def test_invalid_values_are_rejected(field: str, value: object, message: str) -> None:
    study = synthetic_patient_study(np.random.default_rng(0))
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(study, **{field: value})


def test_study_is_frozen() -> None:
    study = synthetic_patient_study(np.random.default_rng(0))
    assert isinstance(study, PatientStudy)
    with pytest.raises(dataclasses.FrozenInstanceError):
        study.patient_name = "DOE^JOHN"  # type: ignore[misc]
