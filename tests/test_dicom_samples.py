"""The bundled sample study: valid DICOM (dciodvfy 0 errors), one study and Frame of Reference, small."""

from pathlib import Path

import numpy as np
import pydicom

from core.dicom.nm_writer import read_nm_volume
from tests.dciodvfy import dciodvfy_errors

SAMPLES = Path(__file__).resolve().parents[1] / "dicom_samples"
STUDY = SAMPLES / "thorax_small"


def test_every_sample_file_passes_dciodvfy():
    files = sorted(SAMPLES.rglob("*.dcm"))
    assert len(files) >= 3
    failures = {str(f.relative_to(SAMPLES)): errs for f in files if (errs := dciodvfy_errors(f))}
    assert failures == {}


def test_sample_is_one_study_one_frame_of_reference_and_small():
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted((STUDY / "dicom").glob("*.dcm"))]
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1
    assert len({ds.FrameOfReferenceUID for ds in datasets}) == 1
    assert {ds.Modality for ds in datasets} == {"CT", "NM"}
    total_bytes = sum(f.stat().st_size for f in SAMPLES.rglob("*") if f.is_file())
    assert total_bytes < 25 * 1024 * 1024


def test_sample_ground_truth_matches_the_images():
    truth = np.load(STUDY / "ground_truth" / "truth.npz")
    ct_files = sorted((STUDY / "dicom").glob("CT_*.dcm"))
    assert truth["lung_mask"].shape[0] == len(ct_files)
    perfusion, _ = read_nm_volume(STUDY / "dicom" / "NM_PERFUSION.dcm")
    assert perfusion.shape == truth["activity_perfusion"].shape
    lungs = truth["activity_perfusion"] > np.percentile(truth["activity_perfusion"], 90)
    assert perfusion[lungs].mean() > 5 * perfusion[~lungs].mean()
