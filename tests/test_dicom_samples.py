"""The bundled sample study: valid DICOM (dciodvfy 0 errors), one study and Frame of Reference, small."""

from pathlib import Path

import numpy as np
import pydicom
import pytest

from core.dicom.nm_writer import read_nm_volume
from tests.dciodvfy import dciodvfy_errors

SAMPLES = Path(__file__).resolve().parents[1] / "dicom_samples"
STUDY = SAMPLES / "thorax_small"
BONE = SAMPLES / "bone_small"


def test_every_sample_file_passes_dciodvfy():
    files = sorted(SAMPLES.rglob("*.dcm"))
    assert len(files) >= 3
    failures = {str(f.relative_to(SAMPLES)): errs for f in files if (errs := dciodvfy_errors(f))}
    assert failures == {}


@pytest.mark.parametrize("study", [STUDY, BONE], ids=lambda p: p.name)
def test_sample_is_one_study_one_frame_of_reference_and_small(study: Path):
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted((study / "dicom").glob("*.dcm"))]
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1
    assert len({ds.FrameOfReferenceUID for ds in datasets}) == 1
    assert {ds.Modality for ds in datasets} == {"CT", "NM"}
    total_bytes = sum(f.stat().st_size for f in study.rglob("*") if f.is_file())
    assert total_bytes < 25 * 1024 * 1024


def test_bone_sample_holds_a_fast_and_a_standard_acquisition_of_the_same_activity():
    durations = {}
    for name in ("NM_BONE_FAST.dcm", "NM_BONE_STANDARD.dcm"):
        ds = pydicom.dcmread(BONE / "dicom" / name, stop_before_pixels=True)
        durations[name] = float(ds.RotationInformationSequence[0].ActualFrameDuration) / 1000.0
    assert durations == {"NM_BONE_FAST.dcm": 3.0, "NM_BONE_STANDARD.dcm": 20.0}
    fast, fast_grid = read_nm_volume(BONE / "dicom" / "NM_BONE_FAST.dcm")
    standard, standard_grid = read_nm_volume(BONE / "dicom" / "NM_BONE_STANDARD.dcm")
    assert fast_grid == standard_grid
    # reconstructed in activity units: the same total within Poisson noise, the fast one noisier
    assert abs(fast.sum() / standard.sum() - 1.0) < 0.02
    truth = np.load(BONE / "ground_truth" / "truth.npz")["activity_bone_standard"]
    body = truth > 0.01 * truth.max()
    assert np.std(fast[body] - truth[body] * fast.sum() / truth.sum()) > np.std(
        standard[body] - truth[body] * standard.sum() / truth.sum()
    )


def test_sample_ground_truth_matches_the_images():
    truth = np.load(STUDY / "ground_truth" / "truth.npz")
    ct_files = sorted((STUDY / "dicom").glob("CT_*.dcm"))
    assert truth["lung_mask"].shape[0] == len(ct_files)
    perfusion, _ = read_nm_volume(STUDY / "dicom" / "NM_PERFUSION.dcm")
    assert perfusion.shape == truth["activity_perfusion"].shape
    lungs = truth["activity_perfusion"] > np.percentile(truth["activity_perfusion"], 90)
    assert perfusion[lungs].mean() > 5 * perfusion[~lungs].mean()
