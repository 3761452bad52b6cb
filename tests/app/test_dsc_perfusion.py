"""End-to-end: the app on the bundled DSC perfusion MR sample (brain-tumour phantom, seed 1300; seed 004).

The maps land in the DSC series' study and Frame of Reference, pass dciodvfy, and every image of
the series was used.  The CBV map is checked against the phantom's true CBV saved beside the sample
(correlation in the brain tissue, and the tumour standing out), the way a reader uses a DSC map.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pydicom

from app.__main__ import EXIT_OK
from tests.app.conftest import DSC_STUDY, run_app_process
from tests.dciodvfy import dciodvfy_errors

Run = tuple[subprocess.CompletedProcess[str], Path]
MAPS = ("dsc_cbv.dcm", "dsc_cbf.dcm", "dsc_mtt.dcm")


def _first_source() -> pydicom.Dataset:
    return pydicom.dcmread(next(iter(sorted((DSC_STUDY / "dicom").glob("*.dcm")))), stop_before_pixels=True)


def _volume(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """The Parametric Map's frames placed on the DSC grid by their z position (slice 0 most inferior)."""
    pm = pydicom.dcmread(path)
    pixels = pm.pixel_array.reshape(-1, int(pm.Rows), int(pm.Columns))
    positions = [
        float(item.PlanePositionSequence[0].ImagePositionPatient[2]) for item in pm.PerFrameFunctionalGroupsSequence
    ]
    volume = np.zeros(shape, dtype=np.float32)
    ranks = np.argsort(np.argsort(positions))
    for rank, frame in zip(ranks, pixels, strict=True):
        volume[rank] = frame
    return volume


def test_the_dsc_series_is_chosen_whole(dsc_run: Run) -> None:
    process, output = dsc_run
    assert process.returncode == EXIT_OK, process.stderr[-3000:]
    record = json.loads((output / "run_record.json").read_text())
    chosen = [s for s in record["series_found"] if s["decision"] == "chosen"]
    assert [s["classification"] for s in chosen] == ["dsc"]
    assert "64 time points" in chosen[0]["reason"]
    assert chosen[0]["number_of_instances"] == 6 * 64
    summary = record["dsc_perfusion"]
    assert summary["method"] == "osvd"
    assert summary["aif_peak_delta_r2_per_s"] > 10.0
    written = {f["file"] for f in record["outputs"]}
    assert set(MAPS) <= written


def test_maps_are_in_the_source_study_and_pass_dciodvfy(dsc_run: Run) -> None:
    _, output = dsc_run
    source = _first_source()
    for name in MAPS:
        ds = pydicom.dcmread(output / name, stop_before_pixels=True)
        assert ds.StudyInstanceUID == source.StudyInstanceUID, name
        assert ds.FrameOfReferenceUID == source.FrameOfReferenceUID, name
        assert ds.SeriesInstanceUID != source.SeriesInstanceUID, name
        assert dciodvfy_errors(output / name) == [], name


def test_cbv_map_follows_the_phantom_truth(dsc_run: Run) -> None:
    _, output = dsc_run
    truth = np.load(DSC_STUDY / "ground_truth" / "truth.npz")
    true_cbv, tissue, tumour = truth["cbv_ml_100g"], truth["tissue_mask"], truth["tumour_mask"]
    cbv = _volume(output / "dsc_cbv.dcm", true_cbv.shape)
    assert np.corrcoef(cbv[tissue], true_cbv[tissue])[0, 1] > 0.8
    normal = tissue & ~tumour
    assert cbv[tumour].mean() > 2.0 * np.median(cbv[normal])


def test_stunet_adds_its_cbv_map(tmp_path: Path) -> None:
    """Run as ``python <repository>/app ...`` from elsewhere, which must find the package, not app/app.py."""
    process = run_app_process(
        "-i", DSC_STUDY / "dicom", "-o", tmp_path / "out", "--dsc-stunet", folder_form_from=tmp_path
    )
    assert process.returncode == EXIT_OK, process.stderr[-3000:]
    output = tmp_path / "out"
    path = output / "dsc_cbv_stunet.dcm"
    assert dciodvfy_errors(path) == []
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert ds.StudyInstanceUID == _first_source().StudyInstanceUID
    record = json.loads((output / "run_record.json").read_text())["dsc_perfusion"]
    assert record["stunet_model"].startswith("stunet_dsc ")
    truth = np.load(DSC_STUDY / "ground_truth" / "truth.npz")
    tissue = truth["tissue_mask"]
    cbv = _volume(path, truth["cbv_ml_100g"].shape)
    assert np.corrcoef(cbv[tissue], truth["cbv_ml_100g"][tissue])[0, 1] > 0.7
