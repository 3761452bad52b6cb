"""End-to-end runs of ``python -m app`` in a subprocess: exit codes, output folder, run record, quietness.

The real CT slices are third-party files read in place from ``../shared/testdata``; the synthetic
V/Q study is written to a temporary folder by ``tests.core.dicom.synthetic_study``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pydicom

from app.__main__ import EXIT_MODEL, EXIT_NO_MATCHING_SERIES, EXIT_OK, EXIT_UNREADABLE_SERIES, EXIT_USAGE
from tests.app.conftest import ALL_LUNG_OUTPUTS, DEFAULT_STACK_LIMIT_BYTES, REAL_CT_DIR, REAL_CT_FILES, AppRunner
from tests.core.dicom.synthetic_study import CT_GRID, NM_GRID, WrittenStudy

REAL_CT_SHAPE = [3, 512, 512]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*")}


def _assert_quiet(stderr: str, expected_warnings: tuple[str, ...] = ()) -> None:
    """Every line is one of the app's own INFO log lines, or a WARNING holding one of ``expected_warnings``."""
    noisy = [
        line
        for line in stderr.splitlines()
        if " [INFO] " not in line and not (" [WARNING] " in line and any(w in line for w in expected_warnings))
    ]
    assert not noisy, "unexpected output on a normal run:\n" + "\n".join(noisy)


def test_real_ct_study_gives_a_complete_run_record(real_ct_folder: Path, tmp_path: Path, run_app: AppRunner) -> None:
    before = _snapshot(real_ct_folder)
    output = tmp_path / "out"
    result = run_app("-i", real_ct_folder, "-o", output, stack_limit_bytes=DEFAULT_STACK_LIMIT_BYTES)

    assert result.returncode == EXIT_OK, result.stderr
    _assert_quiet(result.stderr)  # also: no stack-size warning, the app raised the limit itself
    assert result.stdout == ""
    # the three slices hold lung bases: every lung result, or a run record saying why there is none
    assert {p.name for p in output.iterdir()} in ({"run_record.json"}, ALL_LUNG_OUTPUTS)
    assert _snapshot(real_ct_folder) == before
    assert not list(tmp_path.glob(".*partial*"))

    text = (output / "run_record.json").read_text(encoding="utf-8")
    record = json.loads(text)
    assert record["status"] == "completed"
    assert record["app"]["version"] == "0.1.0"
    assert list(record["series_chosen"]) == ["ct"]
    assert [s["modality"] for s in record["series_found"]] == ["CT"]
    assert record["series_found"][0]["number_of_instances"] == 3
    assert record["volumes"]["ct"]["shape"] == REAL_CT_SHAPE
    assert record["timings_s"]["total_wall"] > 0
    assert {"dicom_loader", "series_selection", "ct_volume", "lung_segmentation"} <= set(
        record["timings_s"]["operators"]
    )
    assert all(v != "not installed" for v in record["software"].values())

    header = pydicom.dcmread(REAL_CT_DIR / REAL_CT_FILES[0], stop_before_pixels=True)
    for identifier in (str(header.PatientName), str(header.PatientID), str(header.get("PatientBirthDate", ""))):
        if identifier:
            assert identifier not in text
            assert identifier not in result.stderr


def test_synthetic_vq_study_converts_ct_and_both_spect_series(
    synthetic_vq_study: WrittenStudy, tmp_path: Path, run_app: AppRunner
) -> None:
    study_folder = synthetic_vq_study.ct_paths[0].parents[1]
    result = run_app("-i", study_folder, "-o", tmp_path / "out")

    assert result.returncode == EXIT_OK, result.stderr
    # its CT holds two 5 mL air pockets, not lungs: the app says so and goes on
    _assert_quiet(result.stderr, expected_warnings=("No lung segmentation",))
    record = json.loads((tmp_path / "out" / "run_record.json").read_text(encoding="utf-8"))
    assert record["lung_segmentation"]["status"] == "no_lungs_found"
    assert set(record["series_chosen"]) == {"ct", "perfusion", "ventilation"}
    classified = {s["classification"] for s in record["series_found"] if s["modality"] == "NM"}
    assert classified == {"perfusion", "ventilation"}
    assert record["volumes"]["ct"]["shape"] == list(CT_GRID.shape)
    for tracer in ("perfusion", "ventilation"):
        volume = record["volumes"][tracer]
        assert volume["shape"] == list(NM_GRID.shape)
        assert volume["spacing_mm"] == list(NM_GRID.spacing_mm)
        assert volume["dtype"] == "float32"
    assert synthetic_vq_study.study.patient_name not in json.dumps(record)


def test_empty_input_folder_exits_2(tmp_path: Path, run_app: AppRunner) -> None:
    (tmp_path / "empty").mkdir()
    result = run_app("-i", tmp_path / "empty", "-o", tmp_path / "out")
    assert result.returncode == EXIT_USAGE
    assert "is empty" in result.stderr
    assert not (tmp_path / "out").exists()


def test_folder_without_dicom_exits_2(tmp_path: Path, run_app: AppRunner) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no images here\n")
    result = run_app("-i", tmp_path / "notes", "-o", tmp_path / "out")
    assert result.returncode == EXIT_USAGE
    assert "no DICOM file" in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_input_from_the_sdk_environment_variables_exits_2(tmp_path: Path, run_app: AppRunner) -> None:
    env = {"HOLOSCAN_INPUT_PATH": str(tmp_path / "missing"), "HOLOSCAN_OUTPUT_PATH": str(tmp_path / "out")}
    result = run_app(env=env)
    assert result.returncode == EXIT_USAGE
    assert f"input folder {tmp_path / 'missing'} does not exist" in result.stderr


def test_study_without_known_series_exits_3(real_seg_folder: Path, tmp_path: Path, run_app: AppRunner) -> None:
    result = run_app("-i", real_seg_folder, "-o", tmp_path / "out")
    assert result.returncode == EXIT_NO_MATCHING_SERIES
    assert "no chest CT, CT perfusion, DSC perfusion MR or lung/bone SPECT series found" in result.stderr
    assert "modality SEG" in result.stderr
    assert not (tmp_path / "out").exists()


def test_unreadable_spect_exits_4_and_leaves_no_output(
    synthetic_vq_study: WrittenStudy, tmp_path: Path, run_app: AppRunner
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    ds = pydicom.dcmread(synthetic_vq_study.nm_paths["perfusion"])
    del ds.SpacingBetweenSlices, ds.SliceThickness
    ds.save_as(broken / "nm.dcm")
    for path in synthetic_vq_study.ct_paths:  # a CT, so that the SPECT is read at all
        (broken / path.name).symlink_to(path)
    result = run_app("-i", broken, "-o", tmp_path / "out")
    assert result.returncode == EXIT_UNREADABLE_SERIES
    assert "slice spacing unknown" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]


def test_unusable_model_exits_5_and_writes_nothing(real_ct_folder: Path, tmp_path: Path, run_app: AppRunner) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.ts").write_bytes(b"")
    (model / "metadata.json").write_text(json.dumps({"metadata_version": 0}))
    result = run_app("-i", real_ct_folder, "-o", tmp_path / "out", "--model", model)
    assert result.returncode == EXIT_MODEL
    assert "a model cannot be used: metadata_version is 0" in result.stderr
    assert "re-export the model" in result.stderr
    assert not (tmp_path / "out").exists()


def test_non_empty_output_folder_exits_2(real_ct_folder: Path, tmp_path: Path, run_app: AppRunner) -> None:
    output = tmp_path / "out"
    output.mkdir()
    (output / "previous.json").write_text("{}")
    result = run_app("-i", real_ct_folder, "-o", output)
    assert result.returncode == EXIT_USAGE
    assert "not empty" in result.stderr
    assert [p.name for p in output.iterdir()] == ["previous.json"]
