"""The bundled sample study: valid DICOM (dciodvfy 0 errors), one study and Frame of Reference, small."""

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from core.dicom.ctp_reader import is_dynamic_series, read_ctp_series
from core.dicom.dsc_reader import read_dsc
from core.dicom.nm_writer import read_nm_volume
from core.labels import BrainTissue
from tests.dciodvfy import dciodvfy_errors

SAMPLES = Path(__file__).resolve().parents[1] / "dicom_samples"
STUDY = SAMPLES / "thorax_small"
BONE = SAMPLES / "bone_small"
CTP = SAMPLES / "ctp_small"
CTP_MAX_BYTES = 12 * 1024 * 1024
DSC = SAMPLES / "dsc_small"
DSC_MAX_BYTES = 14 * 1024 * 1024


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


def test_ctp_sample_is_one_small_dynamic_ct_series():
    paths = sorted((CTP / "dicom").glob("CTP_*.dcm"))
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    assert {ds.Modality for ds in headers} == {"CT"}
    assert len({ds.SeriesInstanceUID for ds in headers}) == 1
    assert len({ds.FrameOfReferenceUID for ds in headers}) == 1
    assert is_dynamic_series(headers, min_time_points=40)
    assert sum(f.stat().st_size for f in CTP.rglob("*") if f.is_file()) < CTP_MAX_BYTES


def test_ctp_sample_ground_truth_matches_the_images():
    record = json.loads((CTP / "ground_truth" / "truth.json").read_text())
    truth = np.load(CTP / "ground_truth" / "truth.npz")
    hu, times_s, grid = read_ctp_series(sorted((CTP / "dicom").glob("CTP_*.dcm")))
    assert hu.shape == (len(truth["times_s"]), *truth["tmax_s"].shape)
    np.testing.assert_allclose(times_s, truth["times_s"], atol=1e-6)
    volumes = record["volumes_ml"]
    assert volumes["core_ml"] == pytest.approx(truth["core_mask"].sum() * grid.voxel_volume_ml)
    assert volumes["hypoperfusion_ml"] == pytest.approx(truth["hypoperfusion_mask"].sum() * grid.voxel_volume_ml)
    assert 0 < volumes["core_ml"] < volumes["hypoperfusion_ml"]
    # arteries enhance by hundreds of HU, the parenchyma by tens
    enhancement = hu.max(axis=0) - hu[:3].mean(axis=0)
    assert np.median(enhancement[truth["labels"] == BrainTissue.ARTERY]) > 250.0
    assert np.median(enhancement[truth["tissue_mask"]]) < 60.0


def test_dsc_sample_is_one_small_dynamic_mr_series():
    paths = sorted((DSC / "dicom").glob("DSC_*.dcm"))
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    assert {ds.Modality for ds in headers} == {"MR"}
    assert len({ds.SeriesInstanceUID for ds in headers}) == 1
    assert len({ds.FrameOfReferenceUID for ds in headers}) == 1
    assert is_dynamic_series(headers, min_time_points=64)
    assert sum(f.stat().st_size for f in DSC.rglob("*") if f.is_file()) < DSC_MAX_BYTES


def test_dsc_sample_ground_truth_matches_the_images():
    record = json.loads((DSC / "ground_truth" / "truth.json").read_text())
    truth = np.load(DSC / "ground_truth" / "truth.npz")
    series = read_dsc(sorted((DSC / "dicom").glob("DSC_*.dcm")))
    assert series.signal.shape == (len(truth["times_s"]), *truth["cbv_ml_100g"].shape)
    np.testing.assert_allclose(series.times_s, truth["times_s"], atol=1e-6)
    assert series.echo_time_s == pytest.approx(record["acquisition"]["echo_time_ms"] / 1000.0)
    tumour = truth["tumour_mask"]
    assert record["volumes_ml"]["enhancing_tumour_ml"] == pytest.approx(tumour.sum() * series.grid.voxel_volume_ml)
    # the high blood volume of the tumour shows as a deeper signal drop than in normal white matter
    white = (truth["labels"] == BrainTissue.WHITE_MATTER) & (truth["tumour_regions"] == 0)
    baseline = series.signal[:5].mean(axis=0)

    def peak_drop(mask: np.ndarray) -> float:
        return 1.0 - series.signal[:, mask].mean(axis=1).min() / baseline[mask].mean()

    assert truth["cbv_ml_100g"][tumour].mean() > 3.0 * truth["cbv_ml_100g"][white].mean()
    assert peak_drop(tumour) > 2.0 * peak_drop(white) > 0.1
