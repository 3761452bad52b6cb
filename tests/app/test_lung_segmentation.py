"""End-to-end: the app segments the lungs of the sample study and writes them as a valid DICOM SEG.

Dice is checked against the phantom's ground truth (``truth.npz["lung_mask"]``: canonical ``(z, y, x)``
on the CT grid, slice 0 the most inferior, as the CT slices sorted by z).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import highdicom
import numpy as np
import pydicom
import pytest

from app.__main__ import EXIT_NO_MATCHING_SERIES, EXIT_OK
from app.config import DEFAULT_FUNCTION_MODEL_DIR
from core.dicom.ct_reader import read_ct_volume
from core.dicom.seg_writer import ALGORITHM_NAME
from core.dicom.slice_stack import sorted_along_normal
from core.labels import LungLabel
from core.lung.quantification import quantify_regions
from core.lung.segmentation import segment_lungs
from core.lung.synthesis import FunctionModel
from core.orientation import grid_affine_lps
from tests.app.conftest import SAMPLE_STUDY, run_app_process
from tests.core.dicom.synthetic_study import WrittenStudy
from tests.dciodvfy import dciodvfy_errors

SAMPLE = SAMPLE_STUDY
SEG_NAME = "lung_seg.dcm"
MIN_DICE = 0.95
LABEL_OF = {"Right lung": LungLabel.RIGHT_LUNG, "Left lung": LungLabel.LEFT_LUNG}


def seg_labels(seg_path: Path, ct_paths: list[Path]) -> np.ndarray:
    """The SEG as a LungLabel volume on the CT slices sorted along the slice normal (ascending z here)."""
    slices = sorted_along_normal([pydicom.dcmread(path, stop_before_pixels=True) for path in ct_paths])
    seg = highdicom.seg.segread(seg_path)
    uids = [str(ds.SOPInstanceUID) for ds in slices]
    labels = np.zeros((len(slices), int(slices[0].Rows), int(slices[0].Columns)), np.uint8)
    for item in seg.SegmentSequence:
        pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=[int(item.SegmentNumber)])[..., 0]
        labels[pixels > 0] = LABEL_OF[str(item.SegmentLabel)]
    return labels


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float(np.count_nonzero(a & b)) / float(np.count_nonzero(a) + np.count_nonzero(b))


def test_sample_run_writes_a_valid_lung_seg(sample_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    result, output = sample_run
    assert result.returncode == EXIT_OK, result.stderr
    assert SEG_NAME in {p.name for p in output.iterdir()}
    assert dciodvfy_errors(output / SEG_NAME) == []
    assert " [WARNING] " not in result.stderr


def test_sample_seg_is_the_segmentation_and_matches_the_truth(
    sample_run: tuple[subprocess.CompletedProcess[str], Path], sample_ct_paths: list[Path]
) -> None:
    _, output = sample_run
    labels = seg_labels(output / SEG_NAME, sample_ct_paths)
    hu, grid = read_ct_volume(sample_ct_paths)
    np.testing.assert_array_equal(labels, segment_lungs(hu, grid_affine_lps(grid)))
    truth = np.load(SAMPLE / "ground_truth" / "truth.npz")["lung_mask"]
    assert truth.shape == labels.shape
    for label in (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG):
        assert dice(labels == label, truth == label) >= MIN_DICE, label.name


def test_sample_seg_header(
    sample_run: tuple[subprocess.CompletedProcess[str], Path], sample_ct_paths: list[Path]
) -> None:
    _, output = sample_run
    seg = pydicom.dcmread(output / SEG_NAME, stop_before_pixels=True)
    ct = pydicom.dcmread(sample_ct_paths[0], stop_before_pixels=True)
    assert (seg.StudyInstanceUID, seg.FrameOfReferenceUID) == (ct.StudyInstanceUID, ct.FrameOfReferenceUID)
    assert "research use" in seg.SeriesDescription
    assert any(item.ManufacturerModelName == ALGORITHM_NAME for item in seg.ContributingEquipmentSequence)


def test_sample_run_record_holds_the_lungs_and_the_seg(
    sample_run: tuple[subprocess.CompletedProcess[str], Path], sample_ct_paths: list[Path]
) -> None:
    _, output = sample_run
    record = json.loads((output / "run_record.json").read_text(encoding="utf-8"))
    lungs = record["lung_segmentation"]
    assert (lungs["status"], lungs["reason"]) == ("segmented", None)
    labels = seg_labels(output / SEG_NAME, sample_ct_paths)
    voxel_ml = float(np.prod(record["volumes"]["ct"]["spacing_mm"])) / 1000.0
    for name, label in (("right_lung", LungLabel.RIGHT_LUNG), ("left_lung", LungLabel.LEFT_LUNG)):
        assert lungs["lung_volumes_ml"][name] == pytest.approx(np.count_nonzero(labels == label) * voxel_ml, abs=0.1)
        assert record["lung_crops"][name]["shape"] == [128, 64, 64]
    seg = pydicom.dcmread(output / SEG_NAME, stop_before_pixels=True)
    assert record["outputs"][0] == {
        "file": SEG_NAME,
        "sop_class_uid": seg.SOPClassUID,
        "series_instance_uid": seg.SeriesInstanceUID,
        "series_number": 900,
        "series_description": seg.SeriesDescription,
    }
    assert {"lung_segmentation", "lung_seg_writer", "ct_enhancement"} <= set(record["timings_s"]["operators"])


def test_sample_run_record_holds_the_regional_quantification_of_the_synthetic_maps(
    sample_run: tuple[subprocess.CompletedProcess[str], Path], sample_ct_paths: list[Path]
) -> None:
    _, output = sample_run
    record = json.loads((output / "run_record.json").read_text(encoding="utf-8"))
    functional = record["functional"]
    assert functional["model"]["name"] == "ddran_lung" and "research use" in functional["maps"]
    assert "do not use the split for decisions" in functional["limitations"]
    regions = {r["region"]: r for r in functional["regions"]}
    assert len(regions) == 9
    for key in ("perfusion_percent", "ventilation_percent"):
        assert regions["right"][key] + regions["left"][key] == pytest.approx(100.0, abs=0.5)
        zones = [r[key] for name, r in regions.items() if name.endswith(("upper", "middle", "lower"))]
        assert len(zones) == 6 and sum(zones) == pytest.approx(100.0, abs=0.5)
    lungs = record["lung_segmentation"]["lung_volumes_ml"]
    assert regions["right"]["volume_ml"] == pytest.approx(lungs["right_lung"], abs=0.1)
    assert "functional_synthesis" in record["timings_s"]["operators"]
    # the same numbers as the offline path (segment, Eq. 1, model, paste) run here without the app
    hu, grid = read_ct_volume(sample_ct_paths)
    labels = segment_lungs(hu, grid_affine_lps(grid))
    maps = FunctionModel(DEFAULT_FUNCTION_MODEL_DIR).synthesise(hu, labels, grid)
    offline = {r.region: r for r in quantify_regions(maps["perfusion"], maps["ventilation"], labels, grid)}
    for name, region in regions.items():
        assert region["perfusion_percent"] == pytest.approx(offline[name].perfusion_percent, abs=1e-3), name
        assert region["high_ventilation_ml"] == pytest.approx(offline[name].high_ventilation_ml, abs=1e-3), name


def test_real_ct_slices_give_a_seg_or_say_why_not(real_ct_folder: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    result = run_app_process("-i", real_ct_folder, "-o", output)
    assert result.returncode == EXIT_OK, result.stderr
    record = json.loads((output / "run_record.json").read_text(encoding="utf-8"))
    if (output / SEG_NAME).exists():
        assert record["lung_segmentation"]["status"] == "segmented"
        assert record["outputs"][0]["file"] == SEG_NAME
        # every object written on a real scanner's CT headers is valid DICOM
        for written in record["outputs"]:
            assert dciodvfy_errors(output / written["file"]) == [], written["file"]
    else:
        assert record["lung_segmentation"]["status"] == "no_lungs_found"
        assert record["lung_segmentation"]["reason"] in result.stderr
        assert record["outputs"] == []


def test_ct_without_lungs_completes_without_seg(synthetic_vq_study: WrittenStudy, tmp_path: Path) -> None:
    """The synthetic V/Q study's CT holds two 5 mL air pockets, too small for lungs."""
    output = tmp_path / "out"
    result = run_app_process("-i", synthetic_vq_study.ct_paths[0].parents[1], "-o", output)
    assert result.returncode == EXIT_OK, result.stderr
    assert sorted(p.name for p in output.iterdir()) == ["run_record.json"]
    record = json.loads((output / "run_record.json").read_text(encoding="utf-8"))
    lungs = record["lung_segmentation"]
    assert lungs["status"] == "no_lungs_found"
    assert "no lung found" in lungs["reason"]
    assert f"No lung segmentation, so no lung results for this CT: {lungs['reason']}" in result.stderr
    assert any(lungs["reason"] in warning for warning in record["warnings"])
    assert record["outputs"] == [] and record["lung_crops"] == {} and record["functional"] is None


def test_study_without_ct_exits_3_and_writes_nothing(tmp_path: Path) -> None:
    """Both SPECT series of the sample, no CT: nothing can be computed, so the run stops and says why."""
    study = tmp_path / "nm_only"
    study.mkdir()
    for name in ("NM_PERFUSION.dcm", "NM_VENTILATION.dcm"):
        (study / name).symlink_to(SAMPLE / "dicom" / name)
    result = run_app_process("-i", study, "-o", tmp_path / "out")
    assert result.returncode == EXIT_NO_MATCHING_SERIES, result.stderr
    assert "no chest CT series found" in result.stderr
    assert "add the study's CT series to the input folder" in result.stderr
    assert "Lung perfusion SPECT" in result.stderr  # what was found is listed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nm_only"]  # no output folder, no partial one
