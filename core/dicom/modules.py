"""DICOM module building blocks shared by the writers.

Each ``add_*`` function fills the attributes of one or more Information Object
Definition (IOD) modules into a :class:`pydicom.Dataset`, using DICOM keywords.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian
from pydicom.valuerep import DSfloat

from core.dicom.study import SYNTHETIC_NOTICE, PatientStudy

SPECIFIC_CHARACTER_SET = "ISO_IR 100"
"""Latin-1; every string written here is plain ASCII."""

SERIES_INTERVAL_MIN = 3.0
"""Minutes between the start of consecutive series (series ``n`` starts ``n`` intervals after the study)."""


def ds_value(value: float) -> DSfloat:
    """A Decimal String value that fits the 16-character limit of VR DS."""
    return DSfloat(float(value), auto_format=True)


def ds_values(values: Iterable[float]) -> list[DSfloat]:
    """Multi-valued Decimal String, see :func:`ds_value`."""
    return [ds_value(v) for v in values]


def dicom_date_time(moment: datetime) -> tuple[str, str]:
    """``(DA, TM)`` strings ``("YYYYMMDD", "HHMMSS")`` of ``moment``."""
    return moment.strftime("%Y%m%d"), moment.strftime("%H%M%S")


def series_datetime(study: PatientStudy, series_number: int) -> datetime:
    """Start of acquisition of series ``series_number``: :data:`SERIES_INTERVAL_MIN` min per series after the study."""
    return study.study_datetime + timedelta(minutes=SERIES_INTERVAL_MIN * max(series_number, 0))


def file_meta(sop_class_uid: str, sop_instance_uid: str) -> FileMetaDataset:
    """File Meta Information for an Explicit VR Little Endian Part 10 file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def add_patient_and_study(ds: Dataset, study: PatientStudy) -> None:
    """Patient, General Study and Patient Study modules."""
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = study.patient_birth_date
    ds.PatientSex = study.patient_sex
    ds.PatientComments = SYNTHETIC_NOTICE
    ds.StudyInstanceUID = study.study_instance_uid
    ds.StudyDate = study.study_date
    ds.StudyTime = study.study_time
    ds.AccessionNumber = study.accession_number
    ds.StudyID = study.study_id
    ds.ReferringPhysicianName = study.referring_physician_name
    ds.StudyDescription = study.study_description
    ds.PatientAge = study.patient_age
    ds.PatientSize = ds_value(study.patient_size_m)
    ds.PatientWeight = ds_value(study.patient_weight_kg)


PATIENT_STUDY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)
"""The Type 1 and 2 attributes of the Patient and General Study modules that a derived object copies."""


def copy_patient_and_study(ds: Dataset, source: Dataset) -> None:
    """Patient and General Study modules of a derived object, copied from an image of the study.

    Type 2 attributes the source lacks are written empty; StudyDescription (Type 3) only when present.
    """
    for keyword in PATIENT_STUDY_KEYWORDS:
        setattr(ds, keyword, source.get(keyword, ""))
    if "StudyDescription" in source:
        ds.StudyDescription = source.StudyDescription


def add_equipment(ds: Dataset, study: PatientStudy) -> None:
    """General Equipment module: the hybrid SPECT/CT scanner of the study."""
    ds.Manufacturer = study.manufacturer
    ds.InstitutionName = study.institution_name
    ds.StationName = study.station_name
    ds.ManufacturerModelName = study.manufacturer_model_name
    ds.DeviceSerialNumber = study.device_serial_number
    ds.SoftwareVersions = study.software_versions


def add_series_and_frame_of_reference(
    ds: Dataset,
    *,
    modality: str,
    series_instance_uid: str,
    series_number: int,
    series_description: str,
    started: datetime,
    frame_of_reference_uid: str,
    patient_position: str | None = "HFS",
) -> None:
    """General Series (chest) and Frame of Reference modules.

    ``patient_position`` is PatientPosition (head first supine by default); pass
    ``None`` for NM and PET, whose PatientOrientationCodeSequence replaces it.
    """
    ds.Modality = modality
    ds.SeriesInstanceUID = series_instance_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description
    ds.SeriesDate, ds.SeriesTime = dicom_date_time(started)
    ds.BodyPartExamined = "CHEST"
    if patient_position is not None:
        ds.PatientPosition = patient_position
    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.PositionReferenceIndicator = ""


def add_sop_common(ds: Dataset, sop_class_uid: str, created: datetime) -> None:
    """SOP Common module, except SOPInstanceUID which the caller sets per instance."""
    ds.SpecificCharacterSet = SPECIFIC_CHARACTER_SET
    ds.SOPClassUID = sop_class_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = dicom_date_time(created)
