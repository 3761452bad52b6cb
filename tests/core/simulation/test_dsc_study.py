"""DSC study generator: layout, one study and Frame of Reference, DICOM matching the phantom, atomic output, CLI.

Tolerances: the DICOM signal equals the phantom's rounded to integers; times within 1 microsecond.
"""

import json

import numpy as np
import pydicom
import pytest

from core.dicom.dsc_reader import read_dsc
from core.simulation import dsc_study as dsc_study_module
from core.simulation.__main__ import main
from core.simulation.dsc_params import DSC_PRESETS, DscSpec
from core.simulation.dsc_phantom import TRUTH_NAMES, make_dsc_phantom
from core.simulation.dsc_study import DSC_KIND, STUDY_DESCRIPTION, generate_dsc_study

TINY = DscSpec((2, 64, 64), (5.0, 3.2, 3.2), n_frames=16, aif_kind="gamma")
SEED = 3


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("dsc") / "case"
    record = generate_dsc_study(folder, TINY, SEED)
    return folder, record


def test_layout_and_one_study_and_frame_of_reference(case) -> None:
    folder, record = case
    assert sorted(p.name for p in folder.iterdir()) == ["dicom", "ground_truth"]
    names = sorted(p.name for p in (folder / "dicom").iterdir())
    assert names == [f"DSC_{k:03d}_{j:03d}.dcm" for k in range(1, 17) for j in range(1, 3)]
    headers = [pydicom.dcmread(folder / "dicom" / name, stop_before_pixels=True) for name in names]
    assert {ds.Modality for ds in headers} == {"MR"}
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "StudyDescription"):
        assert len({ds.get(keyword) for ds in headers}) == 1, keyword
    assert headers[0].StudyDescription == STUDY_DESCRIPTION
    assert "HEAD" in str(headers[0].PatientName)
    assert float(headers[0].EchoTime) == TINY.te_ms and float(headers[0].RepetitionTime) == 1000.0 * TINY.dt_s
    weight_kg = float(headers[0].PatientWeight)
    assert float(headers[0].ContrastBolusVolume) == pytest.approx(0.1 * weight_kg, abs=1e-3)  # 0.1 mmol/kg, 1 M
    saved = json.loads((folder / "ground_truth" / "truth.json").read_text())
    assert saved["kind"] == record["kind"] == DSC_KIND and saved["seed"] == SEED
    assert saved["contrast"]["dose"] == 1.0 and saved["mr_grid"]["shape"] == list(TINY.shape)
    assert set(saved["timings"]) == {"phantom_s", "write_dicom_s", "total_s"}


def test_dicom_and_ground_truth_hold_the_phantom(case) -> None:
    folder, _ = case
    phantom = make_dsc_phantom(TINY, SEED)
    series = read_dsc(sorted((folder / "dicom").glob("DSC_*.dcm")))
    np.testing.assert_array_equal(series.signal, np.rint(phantom.signal))
    np.testing.assert_allclose(series.times_s, TINY.times_s, atol=1e-6)
    assert series.grid.shape == phantom.grid.shape
    np.testing.assert_allclose(series.grid.origin_lps_mm, phantom.grid.origin_lps_mm, atol=1e-4)
    truth = np.load(folder / "ground_truth" / "truth.npz")
    for name in (*TRUTH_NAMES, "s0", "tumour_mask", "tissue_mask", "brain_mask", "labels", "tumour_regions"):
        assert truth[name].shape == TINY.shape, name
    for name in TRUTH_NAMES:
        np.testing.assert_array_equal(truth[name], phantom.truth[name])
    np.testing.assert_array_equal(truth["times_s"], TINY.times_s)
    assert truth["arterial_dr2_per_s"].shape == (TINY.n_frames,)


def test_existing_output_is_never_overwritten(tmp_path) -> None:
    (tmp_path / "case").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        generate_dsc_study(tmp_path / "case", TINY, seed=1)


def test_failure_leaves_no_partial_folder(tmp_path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(dsc_study_module, "write_dsc_truth", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_dsc_study(tmp_path / "case", TINY, seed=1)
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_dsc_cases_and_checks_the_preset(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(DSC_PRESETS, "tiny", TINY)
    assert main(["--out", str(tmp_path), "--kind", "dsc", "--first-seed", "5", "--preset", "tiny"]) == 0
    assert len(list((tmp_path / "case_00005" / "dicom").glob("DSC_*.dcm"))) == TINY.n_frames * TINY.shape[0]
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--kind", "dsc", "--preset", "bone_sample"])
    assert "does not apply to --kind dsc" in capsys.readouterr().err
