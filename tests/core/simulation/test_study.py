"""Study generator: layout, one Frame of Reference, ground truth, atomic output, the CLI."""

import json

import numpy as np
import pydicom
import pytest

from core.labels import Tissue
from core.simulation import study as study_module
from core.simulation.__main__ import main
from core.simulation.spect import ReconParams
from core.simulation.study import StudySpec, generate_study

TINY = StudySpec((48, 96, 96), (6.0, 4.2, 4.2), recon=ReconParams(iterations=2, subsets=6, matrix=64, n_slices=48))


@pytest.mark.parametrize(
    "kind, series",
    [
        ("lung", {"PERFUSION", "VENTILATION"}),
        ("bone", {"BONE_STANDARD", "BONE_FAST"}),
        ("lung_bone", {"PERFUSION", "VENTILATION", "BONE_FAST"}),
    ],
)
def test_study_layout_and_shared_frame_of_reference(tmp_path, kind, series):
    record = generate_study(tmp_path / "case", TINY, seed=4, kind=kind)
    dicom = tmp_path / "case" / "dicom"
    assert {p.stem[3:] for p in dicom.glob("NM_*.dcm")} == series
    assert len(list(dicom.glob("CT_*.dcm"))) == (96 if kind == "bone" else 48)
    datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in dicom.iterdir()]
    assert len({d.FrameOfReferenceUID for d in datasets}) == 1
    assert len({d.StudyInstanceUID for d in datasets}) == 1
    truth = json.loads((tmp_path / "case" / "ground_truth" / "truth.json").read_text())
    assert truth["kind"] == kind and truth["seed"] == record["seed"] == 4
    assert set(truth["spect"]) == {name.lower() for name in series}
    arrays = np.load(tmp_path / "case" / "ground_truth" / "truth.npz")
    assert arrays["lung_mask"].shape[1:] == (96, 96)
    if kind == "bone":
        assert arrays["bone_lesion_mask"].max() >= 1
        labels = arrays["labels"]
        assert labels.shape == (96, 96, 96)
        assert (labels == Tissue.KIDNEY).any() and (labels == Tissue.BLADDER).any()
        fast, standard = truth["spect"]["bone_fast"], truth["spect"]["bone_standard"]
        assert fast["total_counts"] / standard["total_counts"] == pytest.approx(3.0 / 20.0, rel=0.05)


def test_existing_output_is_never_overwritten(tmp_path):
    (tmp_path / "case").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        generate_study(tmp_path / "case", TINY, seed=1)


def test_failure_leaves_no_partial_folder(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(study_module, "write_nm_series", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_study(tmp_path / "case", TINY, seed=1)
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_cases_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(study_module.PRESETS, "tiny", TINY)
    monkeypatch.setattr("core.simulation.__main__.PRESETS", study_module.PRESETS)
    assert main(["--out", str(tmp_path), "--cases", "1", "--first-seed", "3", "--preset", "tiny"]) == 0
    first = (tmp_path / "case_00003" / "ground_truth" / "truth.json").stat().st_mtime_ns
    assert main(["--out", str(tmp_path), "--cases", "1", "--first-seed", "3", "--preset", "tiny"]) == 0
    assert (tmp_path / "case_00003" / "ground_truth" / "truth.json").stat().st_mtime_ns == first
