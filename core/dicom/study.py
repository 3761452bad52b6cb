"""Patient, study and equipment attributes shared by every series of a synthetic study.

A real SPECT/CT examination has one patient, one study (one StudyInstanceUID, one
accession number) and one hybrid scanner that acquires both the CT and the SPECT.
:class:`PatientStudy` holds exactly those attributes, already formatted as DICOM
values, so that all writers in :mod:`core.dicom` emit consistent headers.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import highdicom
import numpy as np

SYNTHETIC_NOTICE = "SYNTHETIC PHANTOM - RESEARCH USE ONLY - NOT A REAL PATIENT"
"""Text put into free-text attributes of every object written from a phantom."""

_DA = re.compile(r"^\d{8}$")
_TM = re.compile(r"^\d{6}$")
_AS = re.compile(r"^\d{3}[DWMY]$")


@dataclass(frozen=True)
class PatientStudy:
    """Patient, study and equipment attributes, as DICOM-formatted values.

    Attribute names are the DICOM keywords in snake case; units are in the name
    where DICOM has one (PatientWeight in kg, PatientSize in m).

    Parameters
    ----------
    patient_name
        PatientName (PN), e.g. ``"PHANTOM^THORAX^0042"``.
    patient_id
        PatientID (LO).
    patient_birth_date
        PatientBirthDate (DA, ``YYYYMMDD``).
    patient_sex
        PatientSex (CS): ``"M"``, ``"F"`` or ``"O"``.
    patient_age
        PatientAge (AS, e.g. ``"063Y"``), consistent with birth and study dates.
    patient_weight_kg
        PatientWeight (DS) in kg.
    patient_size_m
        PatientSize (DS) in m.
    study_instance_uid
        StudyInstanceUID (UI).
    study_date
        StudyDate (DA, ``YYYYMMDD``).
    study_time
        StudyTime (TM, ``HHMMSS``).
    accession_number
        AccessionNumber (SH).
    study_id
        StudyID (SH).
    referring_physician_name
        ReferringPhysicianName (PN).
    study_description
        StudyDescription (LO); says the study is a synthetic phantom.
    institution_name
        InstitutionName (LO).
    manufacturer
        Manufacturer (LO) of the hybrid SPECT/CT scanner.
    manufacturer_model_name
        ManufacturerModelName (LO).
    device_serial_number
        DeviceSerialNumber (LO).
    software_versions
        SoftwareVersions (LO).
    station_name
        StationName (SH).
    """

    patient_name: str
    patient_id: str
    patient_birth_date: str
    patient_sex: str
    patient_age: str
    patient_weight_kg: float
    patient_size_m: float
    study_instance_uid: str
    study_date: str
    study_time: str
    accession_number: str
    study_id: str
    referring_physician_name: str
    study_description: str
    institution_name: str
    manufacturer: str
    manufacturer_model_name: str
    device_serial_number: str
    software_versions: str
    station_name: str

    def __post_init__(self) -> None:
        for name in ("patient_birth_date", "study_date"):
            if not _DA.match(getattr(self, name)):
                raise ValueError(f"{name} must be a DICOM date YYYYMMDD, got {getattr(self, name)!r}")
        if not _TM.match(self.study_time):
            raise ValueError(f"study_time must be a DICOM time HHMMSS, got {self.study_time!r}")
        if not _AS.match(self.patient_age):
            raise ValueError(f"patient_age must be a DICOM age string like '063Y', got {self.patient_age!r}")
        if self.patient_sex not in ("M", "F", "O"):
            raise ValueError(f"patient_sex must be 'M', 'F' or 'O', got {self.patient_sex!r}")
        if not 0 < self.patient_weight_kg < 400 or not 0 < self.patient_size_m < 2.8:
            raise ValueError(
                f"patient weight/size out of range: {self.patient_weight_kg} kg, {self.patient_size_m} m "
                "(expected 0-400 kg and 0-2.8 m)"
            )
        for name in ("accession_number", "study_id", "station_name"):
            if not 0 < len(getattr(self, name)) <= 16:
                raise ValueError(f"{name} must be 1-16 characters (VR SH), got {getattr(self, name)!r}")

    @property
    def study_datetime(self) -> datetime:
        """StudyDate and StudyTime as a :class:`datetime.datetime`."""
        return datetime.strptime(self.study_date + self.study_time, "%Y%m%d%H%M%S")


def dicom_age(birth: date, on: date) -> str:
    """DICOM Age String (AS) of someone born on ``birth``, on the day ``on``.

    Parameters
    ----------
    birth
        Date of birth.
    on
        Date at which the age is given (e.g. the study date).

    Returns
    -------
    str
        Completed years as ``"nnnY"`` (e.g. ``"063Y"``).
    """
    if on < birth:
        raise ValueError(f"date {on} is before birth date {birth}")
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return f"{years:03d}Y"


def _uid_from_rng(rng: np.random.Generator) -> str:
    """A 2.25 UUID-derived UID whose 122 random bits come from ``rng`` (reproducible per seed)."""
    random_bytes = rng.integers(0, 256, size=16, dtype=np.uint8).tobytes()
    return str(highdicom.UID.from_uuid(str(uuid.UUID(bytes=random_bytes, version=4))))


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, size=n))


def synthetic_patient_study(rng: np.random.Generator) -> PatientStudy:
    """Draw an obviously synthetic but realistic patient and study.

    All values derive from ``rng``, so the same seed gives the same study
    (StudyInstanceUID included) and different seeds give different studies.
    Series and instance UIDs are made by the writers.

    Parameters
    ----------
    rng
        Random generator, e.g. ``np.random.default_rng(0)``.

    Returns
    -------
    PatientStudy
        Adult patient aged 30-85 y, study on a weekday morning or afternoon
        between 2020 and 2025, on a synthetic hybrid SPECT/CT scanner.
    """
    number = int(rng.integers(1, 10_000))
    sex = "M" if rng.random() < 0.5 else "F"
    size_m = float(rng.normal(1.76 if sex == "M" else 1.63, 0.07))
    bmi = float(rng.uniform(19.0, 32.0))
    study_day = date(2020, 1, 6) + timedelta(weeks=int(rng.integers(0, 310)), days=int(rng.integers(0, 5)))
    study_clock = time(int(rng.integers(8, 17)), int(rng.integers(0, 60)), int(rng.integers(0, 60)))
    birth = study_day - timedelta(days=int(rng.integers(30 * 365, 85 * 365)))
    return PatientStudy(
        patient_name=f"PHANTOM^THORAX^{number:04d}",
        patient_id="PH" + _digits(rng, 8),
        patient_birth_date=birth.strftime("%Y%m%d"),
        patient_sex=sex,
        patient_age=dicom_age(birth, study_day),
        patient_weight_kg=round(bmi * size_m**2, 1),
        patient_size_m=round(size_m, 2),
        study_instance_uid=_uid_from_rng(rng),
        study_date=study_day.strftime("%Y%m%d"),
        study_time=study_clock.strftime("%H%M%S"),
        accession_number="SYN" + _digits(rng, 7),
        study_id=str(int(rng.integers(1, 100_000))),
        referring_physician_name="SYNTHETIC^REFERRER",
        study_description="Synthetic phantom lung V/Q SPECT/CT (research use only)",
        institution_name="Synthetic Phantom Imaging Centre",
        manufacturer="SYNTHETIC PHANTOM SIMULATOR",
        manufacturer_model_name="Virtual SPECT-CT",
        device_serial_number="SIM" + _digits(rng, 6),
        software_versions="perfusion-map phantom 1.0",
        station_name="PHANTOM01",
    )
