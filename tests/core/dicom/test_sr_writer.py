"""The measurement report SR writer: validity (dciodvfy), round trip of every value, codes, study and series.

The regions come from :func:`core.lung.quantification.quantify_regions` on synthetic maps on the
CT grid, with no perfusion in the top of the left lung so that the "left upper" zone has no V/Q
ratio.  Expected codes are written out here (not imported from the writer), so that a writer
that swaps two codes cannot pass.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import Dataset

from core.dicom.sr_writer import read_measurement_report, write_measurement_report
from core.labels import LungLabel
from core.lung.quantification import RegionStats, quantify_regions
from tests.core.dicom.synthetic_study import CT_GRID, WrittenStudy
from tests.dciodvfy import dciodvfy_errors, dciodvfy_warnings

VERSION = "9.8.7"
MODEL, MODEL_VERSION = "test-ddran", "0.4.2"
SERIES_NUMBER = 78
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
PRIVATE_SCHEME = "99PMAP"
PRIVATE_SCHEME_WARNING = (
    "Warning - Unrecognized defined term <99PMAP> for value 1 of attribute <Coding Scheme Designator>"
)
"""dciodvfy knows no local coding scheme (PS3.16 8.2 allows "99" designators): the only warning expected."""
NAN_REGION = "left upper"

LUNG, RIGHT, LEFT = ("39607008", "SCT"), ("24028007", "SCT"), ("7771000", "SCT")
ZONES = {"upper": ("281392002", "SCT"), "middle": ("281393007", "SCT"), "lower": ("281394001", "SCT")}
MEASUREMENT_CODES = {
    "volume_ml": (("118565006", "SCT"), "mL"),
    "perfusion_percent": (("PM020", PRIVATE_SCHEME), "%"),
    "ventilation_percent": (("PM021", PRIVATE_SCHEME), "%"),
    "vq_ratio": (("PM022", PRIVATE_SCHEME), "1"),
    "high_perfusion_ml": (("PM023", PRIVATE_SCHEME), "mL"),
    "low_perfusion_ml": (("PM024", PRIVATE_SCHEME), "mL"),
    "high_ventilation_ml": (("PM025", PRIVATE_SCHEME), "mL"),
    "low_ventilation_ml": (("PM026", PRIVATE_SCHEME), "mL"),
}
NUMERIC_FIELDS = [field.name for field in dataclasses.fields(RegionStats) if field.name != "region"]


def synthetic_regions() -> list[RegionStats]:
    """Two box lungs on the CT grid (the left one shorter), noisy maps, no perfusion at the top of the left lung."""
    labels = np.zeros(CT_GRID.shape, np.uint8)
    labels[:, 16:48, 8:28] = LungLabel.RIGHT_LUNG
    labels[1:, 16:48, 36:56] = LungLabel.LEFT_LUNG  # slices 1-9: upper zone 7-9
    rng = np.random.default_rng(11)
    perfusion = rng.uniform(0.2, 1.0, CT_GRID.shape)
    perfusion[7:, :, 32:] = 0.0
    ventilation = rng.uniform(0.2, 1.0, CT_GRID.shape)
    return quantify_regions(perfusion, ventilation, labels, CT_GRID)


def _code(item: Dataset) -> tuple[str, str]:
    return str(item.CodeValue), str(item.CodingSchemeDesignator)


def _items(parent: Dataset, code: tuple[str, str]) -> list[Dataset]:
    """The content items of ``parent`` whose concept name is ``code``."""
    return [item for item in parent.ContentSequence if _code(item.ConceptNameCodeSequence[0]) == code]


def _groups(sr: Dataset) -> dict[str, Dataset]:
    """Tracking Identifier -> TID 1501 Measurement Group content item."""
    imaging_measurements = _items(sr, ("126010", "DCM"))
    assert len(imaging_measurements) == 1
    groups = {}
    for group in imaging_measurements[0].ContentSequence:
        (tracking_identifier,) = _items(group, ("112039", "DCM"))
        groups[str(tracking_identifier.TextValue)] = group
    return groups


@pytest.fixture(scope="module")
def regions() -> list[RegionStats]:
    stats = synthetic_regions()
    assert [s.region for s in stats if math.isnan(s.vq_ratio)] == [NAN_REGION]
    return stats


@pytest.fixture(scope="module")
def ct_slices(written_study: WrittenStudy) -> list[Dataset]:
    return [pydicom.dcmread(path, stop_before_pixels=True) for path in written_study.ct_paths]


@pytest.fixture(scope="module")
def sr_path(regions: list[RegionStats], ct_slices: list[Dataset], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sr") / "report.dcm"
    return write_measurement_report(
        regions,
        ct_slices,
        out,
        algorithm_version=VERSION,
        model_name=MODEL,
        model_version=MODEL_VERSION,
        series_number=SERIES_NUMBER,
    )


def test_sr_is_valid_dicom(sr_path: Path) -> None:
    assert dciodvfy_errors(sr_path) == []
    assert set(dciodvfy_warnings(sr_path)) <= {PRIVATE_SCHEME_WARNING}


def test_round_trip_gives_every_value(sr_path: Path, regions: list[RegionStats]) -> None:
    read = read_measurement_report(sr_path)
    assert list(read) == [stats.region for stats in regions]
    for stats in regions:
        expected = {name: float(getattr(stats, name)) for name in NUMERIC_FIELDS}
        if math.isnan(stats.vq_ratio):
            del expected["vq_ratio"]
        assert read[stats.region] == expected, stats.region


def test_undefined_vq_ratio_is_left_out(sr_path: Path) -> None:
    groups = _groups(pydicom.dcmread(sr_path))
    vq_code = MEASUREMENT_CODES["vq_ratio"][0]
    assert _items(groups[NAN_REGION], vq_code) == []
    assert all(len(_items(group, vq_code)) == 1 for region, group in groups.items() if region != NAN_REGION)


def test_measurements_have_their_codes_and_units(sr_path: Path, regions: list[RegionStats]) -> None:
    groups = _groups(pydicom.dcmread(sr_path))
    for stats in regions:
        for field, (code, unit) in MEASUREMENT_CODES.items():
            value = float(getattr(stats, field))
            items = _items(groups[stats.region], code)
            if math.isnan(value):
                continue
            assert len(items) == 1, (stats.region, field)
            measured = items[0].MeasuredValueSequence[0]
            assert float(measured.FloatingPointValue) == value
            assert float(measured.NumericValue) == pytest.approx(value, rel=1e-9, abs=1e-12)
            assert _code(measured.MeasurementUnitsCodeSequence[0]) == (unit, "UCUM")


def _expected_site(region: str) -> tuple[tuple[str, str], tuple[str, str] | None]:
    sides = {"right": RIGHT, "left": LEFT}
    words = region.split()
    if region == "both lungs":
        return LUNG, None
    if len(words) == 1:
        return LUNG, sides[words[0]]
    return ZONES[words[1]], sides[words[0]]


def test_finding_sites_are_lungs_and_zones_with_laterality(sr_path: Path, regions: list[RegionStats]) -> None:
    groups = _groups(pydicom.dcmread(sr_path))
    assert len(groups) == 9
    for stats in regions:
        sites = _items(groups[stats.region], ("363698007", "SCT"))
        assert len(sites) == 1
        site, laterality = _expected_site(stats.region)
        assert _code(sites[0].ConceptCodeSequence[0]) == site
        modifiers = [_code(item.ConceptCodeSequence[0]) for item in sites[0].get("ContentSequence", [])]
        assert modifiers == ([] if laterality is None else [laterality])


def test_groups_identify_the_algorithm_and_a_tracking_uid(sr_path: Path) -> None:
    groups = _groups(pydicom.dcmread(sr_path))
    uids = set()
    for group in groups.values():
        assert [str(item.TextValue) for item in _items(group, ("111001", "DCM"))] == [MODEL]
        assert [str(item.TextValue) for item in _items(group, ("111003", "DCM"))] == [MODEL_VERSION]
        uids.update(str(item.UID) for item in _items(group, ("112040", "DCM")))
    assert len(uids) == len(groups)


def test_report_context_names_the_procedure_and_a_device_observer(sr_path: Path) -> None:
    sr = pydicom.dcmread(sr_path)
    assert _code(sr.ConceptNameCodeSequence[0]) == ("126000", "DCM")
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    by_name = {_code(item.ConceptNameCodeSequence[0]): item for item in sr.ContentSequence}
    assert _code(by_name[("121058", "DCM")].ConceptCodeSequence[0]) == ("24627-2", "LN")
    assert _code(by_name[("121005", "DCM")].ConceptCodeSequence[0]) == ("121007", "DCM")  # observer type: device
    assert str(by_name[("121015", "DCM")].TextValue) == MODEL  # device observer model name


def test_sr_joins_the_ct_study_in_a_new_series(sr_path: Path, ct_slices: list[Dataset]) -> None:
    sr = pydicom.dcmread(sr_path)
    ct = ct_slices[0]
    assert sr.SOPClassUID == COMPREHENSIVE_3D_SR
    assert sr.Modality == "SR"
    assert sr.StudyInstanceUID == ct.StudyInstanceUID
    assert sr.PatientID == ct.PatientID
    assert sr.SeriesInstanceUID not in {s.SeriesInstanceUID for s in ct_slices}
    assert sr.SeriesNumber == SERIES_NUMBER
    assert len(sr.SeriesDescription) <= 64
    assert "synthetic" in sr.SeriesDescription.lower() and "research" in sr.SeriesDescription.lower()
    assert sr.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian


def test_evidence_lists_every_ct_slice(sr_path: Path, ct_slices: list[Dataset]) -> None:
    sr = pydicom.dcmread(sr_path)
    referenced = {
        str(instance.ReferencedSOPInstanceUID)
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for instance in series.ReferencedSOPSequence
    }
    assert referenced == {str(ds.SOPInstanceUID) for ds in ct_slices}


def test_private_scheme_is_declared_and_the_application_contributes(sr_path: Path) -> None:
    sr = pydicom.dcmread(sr_path)
    assert PRIVATE_SCHEME in {str(item.CodingSchemeDesignator) for item in sr.CodingSchemeIdentificationSequence}
    processing = [
        item
        for item in sr.ContributingEquipmentSequence
        if _code(item.PurposeOfReferenceCodeSequence[0]) == ("109102", "DCM") and item.SoftwareVersions == VERSION
    ]
    assert len(processing) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"region": "right apex"}, "not a region name"),
        ({"volume_ml": float("nan")}, "volume_ml must be finite"),
        ({"perfusion_percent": float("inf")}, "perfusion_percent must be finite"),
    ],
)
def test_bad_regions_are_rejected(
    change: dict[str, object], message: str, regions: list[RegionStats], ct_slices: list[Dataset], tmp_path: Path
) -> None:
    bad = [dataclasses.replace(regions[0], **change), *regions[1:]]  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        write_measurement_report(
            bad,
            ct_slices,
            tmp_path / "bad.dcm",
            algorithm_version=VERSION,
            model_name=MODEL,
            model_version=MODEL_VERSION,
        )
    assert not (tmp_path / "bad.dcm").exists()


def test_repeated_regions_and_missing_evidence_are_rejected(
    regions: list[RegionStats], ct_slices: list[Dataset], tmp_path: Path
) -> None:
    kwargs = {"algorithm_version": VERSION, "model_name": MODEL, "model_version": MODEL_VERSION}
    with pytest.raises(ValueError, match="unique"):
        write_measurement_report([regions[0], regions[0]], ct_slices, tmp_path / "a.dcm", **kwargs)
    with pytest.raises(ValueError, match="ct_datasets is empty"):
        write_measurement_report(regions, [], tmp_path / "b.dcm", **kwargs)
    with pytest.raises(ValueError, match="regions is empty"):
        write_measurement_report([], ct_slices, tmp_path / "c.dcm", **kwargs)
