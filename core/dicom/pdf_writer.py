"""Write a PDF report as a DICOM Encapsulated PDF object in the study of the CT it was computed from.

highdicom has no class for the Encapsulated PDF IOD (PS3.3 A.45.1), so the dataset is built here
with pydicom, module by module:

* Patient and General Study: copied from the CT header (same patient, same StudyInstanceUID);
* Encapsulated Document Series: Modality DOC, a new series whose description says synthetic /
  research use;
* General Equipment and SC Equipment: this software, ConversionType WSD (workstation);
* Encapsulated Document: BurnedInAnnotation NO (the report never holds patient identifiers,
  see :func:`core.lung.report.render_report_pdf`), the document title, the concept name
  LOINC 18748-4 "Diagnostic Imaging Report" (:data:`DOCUMENT_CONCEPT`, CID 7000), the source
  instances, and the PDF itself, padded with one NUL byte to an even length when needed
  (PS3.5 8.1.1), its unpadded length in EncapsulatedDocumentLength;
* SOP Common, with the application in the ContributingEquipmentSequence (IHE AI Results).

Written as an Explicit VR Little Endian Part 10 file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import highdicom
import pydicom
from highdicom.sr import CodedConcept
from pydicom import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import EncapsulatedPDFStorage

from core.dicom.modules import copy_patient_and_study, dicom_date_time, file_meta
from core.dicom.provenance import (
    DEVICE_SERIAL_NUMBER,
    MANUFACTURER,
    SYNTHETIC_NOTICE,
    contributing_equipment,
)

logger = logging.getLogger(__name__)

APPLICATION_NAME = "perfusion-map lung report"
"""ManufacturerModelName and the contributing equipment's model name."""
DOCUMENT_CONCEPT = Code("18748-4", "LN", "Diagnostic Imaging Report")
SERIES_DESCRIPTION = f"Lung V/Q report ({SYNTHETIC_NOTICE})"
CONTRIBUTION_DESCRIPTION = "PDF report of synthetic lung perfusion/ventilation"
DEFAULT_SERIES_NUMBER = 960
PDF_MIME_TYPE = "application/pdf"
PDF_MAGIC = b"%PDF-"
WORKSTATION = "WSD"
"""ConversionType (CID: SC Equipment module) of a document made by software on a workstation."""


def _check_inputs(pdf: bytes, ct_dataset: Dataset, title: str) -> None:
    if not pdf.startswith(PDF_MAGIC):
        raise ValueError(f"pdf must be a PDF file (starting with {PDF_MAGIC!r}), got {pdf[:8]!r}")
    if not ct_dataset.get("StudyInstanceUID"):
        raise ValueError("ct_dataset has no StudyInstanceUID; the report cannot join its study")
    if not title.strip():
        raise ValueError("title must not be empty")


def _add_series_and_equipment(ds: Dataset, series_number: int, created: datetime, algorithm_version: str) -> None:
    """Encapsulated Document Series, General Equipment and SC Equipment modules."""
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = highdicom.UID()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.SeriesDate, ds.SeriesTime = dicom_date_time(created)
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = APPLICATION_NAME
    ds.DeviceSerialNumber = DEVICE_SERIAL_NUMBER
    ds.SoftwareVersions = algorithm_version
    ds.ConversionType = WORKSTATION


def _source_instance(source: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return item


def _add_encapsulated_document(
    ds: Dataset, pdf: bytes, title: str, created: datetime, sources: Sequence[Dataset]
) -> None:
    """Encapsulated Document module; the PDF is padded to an even length with one NUL byte."""
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = dicom_date_time(created)
    ds.AcquisitionDateTime = created.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "NO"
    ds.RecognizableVisualFeatures = "NO"
    ds.DocumentTitle = title
    ds.ConceptNameCodeSequence = [CodedConcept.from_code(DOCUMENT_CONCEPT)]
    ds.SourceInstanceSequence = [_source_instance(source) for source in sources]
    ds.MIMETypeOfEncapsulatedDocument = PDF_MIME_TYPE
    ds.EncapsulatedDocument = pdf + b"\x00" * (len(pdf) % 2)
    ds.EncapsulatedDocumentLength = len(pdf)


def write_encapsulated_pdf(
    pdf: bytes,
    ct_dataset: Dataset,
    out_path: Path,
    *,
    title: str,
    algorithm_version: str,
    series_number: int = DEFAULT_SERIES_NUMBER,
    source_datasets: Sequence[Dataset] | None = None,
) -> Path:
    """Write ``pdf`` as an Encapsulated PDF Storage object in the study of ``ct_dataset``.

    Parameters
    ----------
    pdf
        The PDF file's bytes (e.g. :func:`core.lung.report.render_report_pdf`); it must not
        show patient identifiers, since BurnedInAnnotation is written as NO.
    ct_dataset
        A slice (header) of the CT series: patient and study are copied from it.
    out_path
        File to write (its folder must exist).
    title
        DocumentTitle.
    algorithm_version
        Version of the application: SoftwareVersions and the contributing equipment's version.
    series_number
        SeriesNumber of the new DOC series.
    source_datasets
        The SOP instances the report was derived from (the CT slices, the measurement SR), written
        as SourceInstanceSequence; ``None`` references ``ct_dataset`` alone.

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    ValueError
        If ``pdf`` is not a PDF, ``title`` is empty, or the CT has no StudyInstanceUID.
    """
    _check_inputs(pdf, ct_dataset, title)
    sources = [ct_dataset] if source_datasets is None else list(source_datasets)
    created = datetime.now()
    sop_instance_uid = highdicom.UID()
    ds = Dataset()
    ds.file_meta = file_meta(EncapsulatedPDFStorage, sop_instance_uid)
    charset = ct_dataset.get("SpecificCharacterSet")
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = EncapsulatedPDFStorage
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = dicom_date_time(created)
    copy_patient_and_study(ds, ct_dataset)
    _add_series_and_equipment(ds, series_number, created, algorithm_version)
    _add_encapsulated_document(ds, pdf, title, created, sources)
    ds.ContributingEquipmentSequence = [
        contributing_equipment(APPLICATION_NAME, algorithm_version, CONTRIBUTION_DESCRIPTION)
    ]
    out_path = Path(out_path)
    pydicom.dcmwrite(out_path, ds, enforce_file_format=True)
    logger.debug("wrote encapsulated PDF (%d bytes) to %s", len(pdf), out_path)
    return out_path
