"""End-to-end: every functional lung object the app writes on the sample study (the README's demo).

Checks what a radiologist's PACS and a planning system rely on: each object is valid DICOM
(dciodvfy), lies in the CT's study (and Frame of Reference where it has one) in its own new
series, reads back with highdicom/pydicom, and says that it is synthetic; the SEG and the RT
Structure Set describe the same volumes; the Parametric Maps hold exactly the offline
prediction (one preprocessing path); the SR holds the run record's regional table.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import highdicom
import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    Comprehensive3DSRStorage,
    EncapsulatedPDFStorage,
    ParametricMapStorage,
    RTStructureSetStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
)
from pypdf import PdfReader

from app.__main__ import EXIT_OK
from app.config import DEFAULT_FUNCTION_MODEL_DIR
from core.dicom.ct_reader import read_ct_volume
from core.dicom.rtstruct_writer import rasterise_rt_structure_set
from core.dicom.slice_stack import sorted_along_normal
from core.dicom.sr_writer import read_measurement_report
from core.lung.segmentation import segment_lungs
from core.lung.synthesis import FunctionModel
from core.orientation import grid_affine_lps
from tests.app.conftest import run_app_process
from tests.dciodvfy import dciodvfy_errors

Sample = tuple[subprocess.CompletedProcess[str], Path]

EXPECTED = {
    "lung_seg.dcm": SegmentationStorage,
    "lung_function_seg.dcm": SegmentationStorage,
    "perfusion_map.dcm": ParametricMapStorage,
    "ventilation_map.dcm": ParametricMapStorage,
    "key_images_01.dcm": SecondaryCaptureImageStorage,
    "key_images_02.dcm": SecondaryCaptureImageStorage,
    "key_images_03.dcm": SecondaryCaptureImageStorage,
    "key_images_04.dcm": SecondaryCaptureImageStorage,
    "lung_function_rtstruct.dcm": RTStructureSetStorage,
    "lung_function_sr.dcm": Comprehensive3DSRStorage,
    "lung_function_report.dcm": EncapsulatedPDFStorage,
}
WITH_FRAME_OF_REFERENCE = {SegmentationStorage, ParametricMapStorage, RTStructureSetStorage}
MIN_STRUCTURE_DICE = 0.95
STRUCTURES = {
    "Right lung",
    "Left lung",
    "Right lung upper zone",
    "Right lung middle zone",
    "Right lung lower zone",
    "Left lung upper zone",
    "Left lung middle zone",
    "Left lung lower zone",
    "High-perfusion lung",
    "Low-perfusion lung",
    "High-ventilation lung",
    "Low-ventilation lung",
}
WRITER_STAGES = {
    "functional_synthesis",
    "agreement_with_spect",
    "write_lung_function_seg",
    "write_parametric_maps",
    "render_key_images",
    "write_key_images",
    "write_rt_structure_set",
    "write_structured_report",
    "write_pdf_report",
}


def record_of(output: Path) -> dict:
    return json.loads((output / "run_record.json").read_text(encoding="utf-8"))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float(np.count_nonzero(a & b)) / float(np.count_nonzero(a) + np.count_nonzero(b))


@pytest.fixture(scope="module")
def ct_headers(sample_ct_paths: list[Path]) -> list[pydicom.Dataset]:
    return sorted_along_normal([pydicom.dcmread(p, stop_before_pixels=True) for p in sample_ct_paths])


def test_every_object_is_written_valid_and_listed_in_the_run_record(sample_run: Sample) -> None:
    result, output = sample_run
    assert result.returncode == EXIT_OK, result.stderr
    assert {p.name for p in output.iterdir()} == {*EXPECTED, "run_record.json"}
    record = record_of(output)
    listed = {o["file"]: o for o in record["outputs"]}
    assert set(listed) == set(EXPECTED)
    for name, sop_class in EXPECTED.items():
        assert dciodvfy_errors(output / name) == [], name
        ds = pydicom.dcmread(output / name, stop_before_pixels=True)
        assert ds.SOPClassUID == sop_class, name
        assert listed[name]["series_instance_uid"] == ds.SeriesInstanceUID, name
        assert listed[name]["sop_class_uid"] == sop_class, name
    assert set(record["timings_s"]["operators"]) >= WRITER_STAGES


def test_objects_join_the_ct_study_in_new_series(sample_run: Sample, ct_headers: list[pydicom.Dataset]) -> None:
    _, output = sample_run
    ct = ct_headers[0]
    series: dict[str, set[str]] = {}
    for name, sop_class in EXPECTED.items():
        ds = pydicom.dcmread(output / name, stop_before_pixels=True)
        assert ds.StudyInstanceUID == ct.StudyInstanceUID, name
        assert ds.SeriesInstanceUID != ct.SeriesInstanceUID, name
        if sop_class in WITH_FRAME_OF_REFERENCE:
            assert ds.FrameOfReferenceUID == ct.FrameOfReferenceUID, name
        series.setdefault(ds.SeriesInstanceUID, set()).add(name)
    # one series per object, except the four key images, which share one
    key_images = {n for n in EXPECTED if n.startswith("key_images")}
    assert sorted(map(sorted, series.values())) == sorted(
        [sorted(key_images)] + [[n] for n in EXPECTED if n not in key_images]
    )


def test_every_synthetic_object_says_so(sample_run: Sample) -> None:
    _, output = sample_run
    for name in EXPECTED:
        if name == "lung_seg.dcm":
            continue  # the morphological segmentation is not synthetic
        ds = pydicom.dcmread(output / name, stop_before_pixels=True)
        text = " ".join(
            str(ds.get(k, "")) for k in ("SeriesDescription", "ContentDescription", "DerivationDescription")
        )
        assert "SYNTHETIC" in text.upper() or "synthetic" in text, name
        assert "research" in text.lower() or name.endswith("sr.dcm") or name.endswith("report.dcm"), name
        equipment = [item.get("Manufacturer", "") for item in ds.get("ContributingEquipmentSequence", [])]
        assert any("perfusion-map" in m for m in equipment), name


def test_seg_and_rt_structure_set_hold_the_same_volumes(sample_run: Sample, ct_headers: list[pydicom.Dataset]) -> None:
    _, output = sample_run
    seg = highdicom.seg.segread(output / "lung_function_seg.dcm")
    uids = [str(ds.SOPInstanceUID) for ds in ct_headers]
    from_seg = {
        str(item.SegmentLabel): seg.get_pixels_by_source_instance(uids, segment_numbers=[int(item.SegmentNumber)])[
            ..., 0
        ].astype(bool)
        for item in seg.SegmentSequence
    }
    from_contours = rasterise_rt_structure_set(output / "lung_function_rtstruct.dcm", ct_headers)
    assert set(from_seg) == set(from_contours) == STRUCTURES
    for label, mask in from_seg.items():
        assert dice(mask, from_contours[label]) >= MIN_STRUCTURE_DICE, label
    # the zones tile each lung, the functional volumes split both lungs
    for side in ("Right", "Left"):
        zones = [from_seg[f"{side} lung {zone} zone"] for zone in ("upper", "middle", "lower")]
        np.testing.assert_array_equal(np.sum(zones, axis=0) == 1, from_seg[f"{side} lung"])
    lungs = from_seg["Right lung"] | from_seg["Left lung"]
    for function in ("perfusion", "ventilation"):
        high, low = from_seg[f"High-{function} lung"], from_seg[f"Low-{function} lung"]
        assert not (high & low).any()
        np.testing.assert_array_equal(high | low, lungs)


def test_parametric_maps_hold_the_offline_prediction(sample_run: Sample, sample_ct_paths: list[Path]) -> None:
    """The app's numbers are the trainer/offline path's numbers: segment, Eq. 1, model, paste back."""
    _, output = sample_run
    hu, grid = read_ct_volume(sample_ct_paths)  # canonical; the sample is axial head-first, slice 0 the lowest
    labels = segment_lungs(hu, grid_affine_lps(grid))
    offline = FunctionModel(DEFAULT_FUNCTION_MODEL_DIR).synthesise(hu, labels, grid)
    for name in ("perfusion", "ventilation"):
        ds = pydicom.dcmread(output / f"{name}_map.dcm")
        frames = ds.pixel_array.astype(np.float32)
        z_of_frame = [
            float(f.PlanePositionSequence[0].ImagePositionPatient[2]) for f in ds.PerFrameFunctionalGroupsSequence
        ]
        k_of_frame = np.rint((np.array(z_of_frame) - grid.origin_lps_mm[2]) / grid.spacing_mm[0]).astype(int)
        stored = np.zeros(grid.shape, np.float32)
        stored[k_of_frame] = frames
        np.testing.assert_allclose(stored, offline[name], atol=1e-6, err_msg=name)
        mapping = ds.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
        assert (mapping.RealWorldValueSlope, mapping.RealWorldValueIntercept) == (1.0, 0.0)


def test_structured_report_holds_the_regional_table(sample_run: Sample) -> None:
    _, output = sample_run
    regions = {r["region"]: r for r in record_of(output)["functional"]["regions"]}
    report = read_measurement_report(output / "lung_function_sr.dcm")
    assert set(report) == set(regions)
    for name, values in report.items():
        for key in ("volume_ml", "perfusion_percent", "ventilation_percent", "high_perfusion_ml", "low_ventilation_ml"):
            assert values[key] == pytest.approx(regions[name][key], abs=1e-3), (name, key)
    assert report["right"]["perfusion_percent"] + report["left"]["perfusion_percent"] == pytest.approx(100.0, abs=0.5)


def test_pdf_report_holds_the_table_and_the_notice(sample_run: Sample) -> None:
    _, output = sample_run
    ds = pydicom.dcmread(output / "lung_function_report.dcm")
    pdf = bytes(ds.EncapsulatedDocument)[: int(ds.EncapsulatedDocumentLength)]
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "SYNTHETIC - research use" in text
    regions = {r["region"]: r for r in record_of(output)["functional"]["regions"]}
    assert f"{regions['left']['perfusion_percent']:.1f}" in text
    for identifier in (str(ds.PatientName), str(ds.PatientID)):
        assert identifier and identifier not in text


def test_key_images_are_rgb_with_the_notice_burned_in(sample_run: Sample) -> None:
    _, output = sample_run
    planes = []
    for n in range(1, 5):
        ds = pydicom.dcmread(output / f"key_images_0{n}.dcm")
        rgb = ds.pixel_array
        assert ds.PhotometricInterpretation == "RGB" and rgb.shape == (768, 768, 3)
        band = rgb[-80:].reshape(-1, 3).astype(int)  # the notice is written in yellow at the bottom
        assert np.count_nonzero((band[:, 0] > 200) & (band[:, 1] > 200) & (band[:, 2] < 80)) > 500
        coloured = (np.abs(rgb[..., 0].astype(int) - rgb[..., 2]) > 60).mean()
        assert coloured > 0.05  # the map's colours over the lungs, not a grey CT only
        planes.append(tuple(ds.PatientOrientation))
    assert planes == [("L", "P"), ("L", "F"), ("L", "P"), ("L", "F")]


def test_run_record_compares_the_maps_with_the_study_spect(sample_run: Sample) -> None:
    _, output = sample_run
    agreement = record_of(output)["functional"]["agreement_with_spect"]
    assert "not a clinical validation" in agreement["note"]
    for function in ("perfusion", "ventilation"):
        for side in ("right", "left", "mean"):
            metrics = agreement[function][side]
            assert set(metrics) == {"spearman", "pearson", "ssim", "ssim_lung", "dice_high", "dice_low"}
            assert all(-1.0 <= v <= 1.0 for v in metrics.values())
        # the network beats chance on this held-out case (it is not in the training cohort)
        assert agreement[function]["mean"]["spearman"] > 0.3
        assert agreement[function]["mean"]["dice_high"] > 0.6


def test_ct_only_study_gives_every_lung_output(sample_ct_paths: list[Path], tmp_path: Path) -> None:
    """Synthesis needs only the CT: without SPECT the same objects are written, with no SPECT comparison."""
    study = tmp_path / "ct_only"
    study.mkdir()
    for path in sample_ct_paths:
        (study / path.name).symlink_to(path)
    output = tmp_path / "out"
    result = run_app_process("-i", study, "-o", output)
    assert result.returncode == EXIT_OK, result.stderr
    assert {p.name for p in output.iterdir()} == {*EXPECTED, "run_record.json"}
    record = record_of(output)
    assert list(record["series_chosen"]) == ["ct"]
    assert "agreement_with_spect" not in record["functional"]
    for name in ("perfusion_map.dcm", "lung_function_rtstruct.dcm", "lung_function_sr.dcm"):
        assert dciodvfy_errors(output / name) == [], name


def test_spect_in_another_frame_of_reference_is_not_compared(sample_ct_paths: list[Path], tmp_path: Path) -> None:
    """Two frames of reference do not line up: that SPECT gets no agreement figures, and the record says why."""
    study = tmp_path / "two_frames"
    study.mkdir()
    for path in sample_ct_paths:
        (study / path.name).symlink_to(path)
    (study / "NM_VENTILATION.dcm").symlink_to(sample_ct_paths[0].parent / "NM_VENTILATION.dcm")
    perfusion = pydicom.dcmread(sample_ct_paths[0].parent / "NM_PERFUSION.dcm")
    perfusion.FrameOfReferenceUID = pydicom.uid.generate_uid()
    perfusion.save_as(study / "NM_PERFUSION.dcm")
    output = tmp_path / "out"
    result = run_app_process("-i", study, "-o", output)
    assert result.returncode == EXIT_OK, result.stderr
    functional = record_of(output)["functional"]
    assert set(functional["agreement_with_spect"]) == {"note", "ventilation"}
    assert "perfusion SPECT: another Frame of Reference than the CT" in functional["not_compared"]
    assert "Not compared with the synthetic maps" in result.stderr
