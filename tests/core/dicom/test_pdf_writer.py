"""The Encapsulated PDF writer: validity (dciodvfy), byte-identical round trip, study and series, no identifiers.

The PDF is the real report of :func:`core.lung.report.render_report_pdf` (with the CT's study
description), once as rendered and once one byte longer, so that both an odd and an even
length are encapsulated.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pypdf
import pytest
from pydicom import Dataset

from core.dicom.pdf_writer import write_encapsulated_pdf
from core.geometry import Grid
from core.labels import LungLabel
from core.lung.quantification import quantify_regions
from core.lung.report import render_report_pdf
from tests.core.dicom.synthetic_study import WrittenStudy
from tests.dciodvfy import dciodvfy_errors, dciodvfy_warnings

VERSION = "9.8.7"
TITLE = "Lung perfusion and ventilation report (synthetic)"
SERIES_NUMBER = 79
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
DIAGNOSTIC_IMAGING_REPORT = ("18748-4", "LN")
COPIED_FROM_CT = (
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
GRID = Grid((9, 8, 12), (3.0, 4.0, 4.0), (0.0, 0.0, 0.0))


@pytest.fixture(scope="module")
def ct(written_study: WrittenStudy) -> Dataset:
    return pydicom.dcmread(written_study.ct_paths[0], stop_before_pixels=True)


@pytest.fixture(scope="module")
def report_pdf(ct: Dataset) -> bytes:
    labels = np.zeros(GRID.shape, np.uint8)
    labels[:, 1:7, 1:5] = LungLabel.RIGHT_LUNG
    labels[:, 1:7, 7:11] = LungLabel.LEFT_LUNG
    rng = np.random.default_rng(5)
    regions = quantify_regions(rng.uniform(0.1, 1.0, GRID.shape), rng.uniform(0.1, 1.0, GRID.shape), labels, GRID)
    figure = rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    return render_report_pdf(
        regions, [("Axial key image", figure)], model_name="m", model_version="1", study_description=ct.StudyDescription
    )


@pytest.fixture(scope="module", params=["as rendered", "one byte longer"])
def pdf(request: pytest.FixtureRequest, report_pdf: bytes) -> bytes:
    return report_pdf if request.param == "as rendered" else report_pdf + b"\n"


@pytest.fixture(scope="module")
def doc_path(pdf: bytes, ct: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pdf") / "report.dcm"
    return write_encapsulated_pdf(pdf, ct, out, title=TITLE, algorithm_version=VERSION, series_number=SERIES_NUMBER)


def test_both_lengths_are_covered(report_pdf: bytes) -> None:
    assert {len(report_pdf) % 2, (len(report_pdf) + 1) % 2} == {0, 1}


def test_encapsulated_pdf_is_valid_dicom(doc_path: Path) -> None:
    assert dciodvfy_errors(doc_path) == []
    assert dciodvfy_warnings(doc_path) == []


def test_round_trip_gives_the_pdf_byte_for_byte(doc_path: Path, pdf: bytes) -> None:
    ds = pydicom.dcmread(doc_path)
    stored = bytes(ds.EncapsulatedDocument)
    assert len(stored) % 2 == 0
    assert int(ds.EncapsulatedDocumentLength) == len(pdf)
    assert stored[: int(ds.EncapsulatedDocumentLength)] == pdf
    assert stored[len(pdf) :] in (b"", b"\x00")


def test_document_joins_the_ct_study_in_a_new_series(doc_path: Path, ct: Dataset) -> None:
    ds = pydicom.dcmread(doc_path)
    for keyword in COPIED_FROM_CT:
        assert ds[keyword].value == ct[keyword].value, keyword
    assert ds.SOPClassUID == ENCAPSULATED_PDF
    assert ds.file_meta.MediaStorageSOPClassUID == ENCAPSULATED_PDF
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.Modality == "DOC"
    assert ds.SeriesInstanceUID != ct.SeriesInstanceUID
    assert ds.SeriesNumber == SERIES_NUMBER
    assert "synthetic" in ds.SeriesDescription.lower() and "research" in ds.SeriesDescription.lower()
    assert len(ds.SeriesDescription) <= 64


def test_document_attributes(doc_path: Path, ct: Dataset) -> None:
    ds = pydicom.dcmread(doc_path)
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert ds.DocumentTitle == TITLE
    assert ds.BurnedInAnnotation == "NO"
    assert ds.ConversionType == "WSD"
    concept = ds.ConceptNameCodeSequence[0]
    assert (concept.CodeValue, concept.CodingSchemeDesignator) == DIAGNOSTIC_IMAGING_REPORT
    assert [item.ReferencedSOPInstanceUID for item in ds.SourceInstanceSequence] == [ct.SOPInstanceUID]
    equipment = ds.ContributingEquipmentSequence[0]
    assert equipment.SoftwareVersions == VERSION
    assert equipment.PurposeOfReferenceCodeSequence[0].CodeValue == "109102"


def test_pdf_shows_no_patient_identifier(doc_path: Path, ct: Dataset) -> None:
    ds = pydicom.dcmread(doc_path)
    document = bytes(ds.EncapsulatedDocument)[: int(ds.EncapsulatedDocumentLength)]
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(document)).pages)
    assert ct.StudyDescription in text  # the text is extracted at all
    identifiers = [str(ct.PatientID), str(ct.PatientBirthDate), str(ct.PatientName)]
    name_parts = [part for part in str(ct.PatientName).split("^") if part]
    for identifier in identifiers:
        assert identifier.encode() not in document  # not even in metadata or uncompressed streams
    for identifier in identifiers + name_parts:
        assert identifier not in text


def test_source_instances_can_be_named(
    report_pdf: bytes, ct: Dataset, written_study: WrittenStudy, tmp_path: Path
) -> None:
    slices = [pydicom.dcmread(path, stop_before_pixels=True) for path in written_study.ct_paths]
    path = write_encapsulated_pdf(
        report_pdf, ct, tmp_path / "doc.dcm", title=TITLE, algorithm_version=VERSION, source_datasets=slices
    )
    ds = pydicom.dcmread(path)
    assert [item.ReferencedSOPInstanceUID for item in ds.SourceInstanceSequence] == [s.SOPInstanceUID for s in slices]


def test_bad_input_is_rejected(report_pdf: bytes, ct: Dataset, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be a PDF"):
        write_encapsulated_pdf(b"<html>", ct, tmp_path / "a.dcm", title=TITLE, algorithm_version=VERSION)
    with pytest.raises(ValueError, match="title"):
        write_encapsulated_pdf(report_pdf, ct, tmp_path / "b.dcm", title=" ", algorithm_version=VERSION)
    no_study = Dataset()
    no_study.PatientID = "X"
    with pytest.raises(ValueError, match="StudyInstanceUID"):
        write_encapsulated_pdf(report_pdf, no_study, tmp_path / "c.dcm", title=TITLE, algorithm_version=VERSION)
    assert list(tmp_path.iterdir()) == []
