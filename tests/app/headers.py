"""DICOM headers (no pixel data) built in the tests, for the series selection unit tests.

Every dataset carries a fake patient name and ID, so that tests can check they never leak.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, MRImageStorage, NuclearMedicineImageStorage, generate_uid

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
PATIENT_NAME = "TESTPATIENT^SECRET"
PATIENT_ID = "PID-0123456789"
STUDY_UID = generate_uid(entropy_srcs=["tests.app study"])


def _common(modality: str, sop_class_uid: str, series_uid: str, series_number: int, description: str) -> Dataset:
    ds = Dataset()
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19500101"
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID = sop_class_uid
    ds.Modality = modality
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    return ds


def ct_series(
    n_slices: int,
    *,
    series_number: int = 1,
    description: str = "Chest",
    orientation: Sequence[float] = AXIAL,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    thickness_mm: float = 1.0,
    study_uid: str = STUDY_UID,
) -> list[Dataset]:
    """Headers of a single-frame CT series, slices 1 mm apart along the slice normal."""
    series_uid = generate_uid()
    slices = []
    for k in range(n_slices):
        ds = _common("CT", CTImageStorage, series_uid, series_number, description)
        ds.StudyInstanceUID = study_uid
        ds.ImageType = list(image_type)
        ds.ImageOrientationPatient = list(orientation)
        ds.ImagePositionPatient = [0.0, 0.0, float(k)] if orientation == AXIAL else [0.0, float(k), 0.0]
        ds.SliceThickness = thickness_mm
        ds.Rows, ds.Columns = 512, 512
        slices.append(ds)
    return slices


def nm_tomo(
    *,
    radiopharmaceutical: str = "",
    code_meaning: str = "",
    description: str = "SPECT",
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"),
    n_frames: int = 64,
    series_number: int = 10,
    attenuation_corrected: bool = True,
    time_per_view_s: float | None = None,
) -> list[Dataset]:
    """Headers of a one-instance multi-frame NM series, geometry in the Detector Information Sequence."""
    ds = _common("NM", NuclearMedicineImageStorage, generate_uid(), series_number, description)
    ds.ImageType = list(image_type)
    ds.NumberOfFrames = n_frames
    ds.Rows, ds.Columns = 128, 128
    ds.CorrectedImage = ["UNIF", "COR", "ATTN"] if attenuation_corrected else ["UNIF", "COR"]
    detector = Dataset()
    detector.ImageOrientationPatient = list(AXIAL)
    detector.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.DetectorInformationSequence = [detector]
    if radiopharmaceutical or code_meaning:
        item = Dataset()
        if radiopharmaceutical:
            item.Radiopharmaceutical = radiopharmaceutical
        if code_meaning:
            code = Dataset()
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "0", "99TEST", code_meaning
            item.RadiopharmaceuticalCodeSequence = [code]
        ds.RadiopharmaceuticalInformationSequence = [item]
    if time_per_view_s is not None:
        rotation = Dataset()
        rotation.ActualFrameDuration = round(time_per_view_s * 1000)
        rotation.NumberOfFramesInRotation = 60
        ds.RotationInformationSequence = [rotation]
    return [ds]


def mr_dynamic_series(
    n_slices: int, n_times: int, *, series_number: int = 20, orientation: Sequence[float] = AXIAL
) -> list[Dataset]:
    """Headers of a single-frame MR series: ``n_slices`` positions at ``n_times`` TemporalPositionIdentifiers."""
    series_uid = generate_uid()
    images = []
    for t in range(n_times):
        for k in range(n_slices):
            ds = _common("MR", MRImageStorage, series_uid, series_number, "DSC perfusion")
            ds.ImageType = ["ORIGINAL", "PRIMARY", "PERFUSION"]
            ds.ImageOrientationPatient = list(orientation)
            ds.ImagePositionPatient = [0.0, 0.0, 5.0 * k] if orientation == AXIAL else [0.0, 5.0 * k, 0.0]
            ds.SliceThickness = 5.0
            ds.Rows, ds.Columns = 128, 128
            ds.TemporalPositionIdentifier = t + 1
            images.append(ds)
    return images
