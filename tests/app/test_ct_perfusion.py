"""End-to-end: the app on the bundled CT perfusion sample (brain phantom, seed 1200; seed 002).

What a stroke team relies on: the maps and the lesion SEG land in the CTP's study and Frame of
Reference, open in a viewer (dciodvfy, highdicom), the SEG's masks are the volumes the run record
reports, and every one of the 320 frame images was used (the SDK's loader alone keeps one image per
slice position).  Accuracy against the phantom's truth is measured in the closing note and the
CHANGELOG; this test checks only that the reported volumes are the written masks.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom

from app.__main__ import EXIT_OK
from tests.app.conftest import CTP_STUDY, run_app_process
from tests.dciodvfy import dciodvfy_errors

Run = tuple[subprocess.CompletedProcess[str], Path]
MAPS = ("ctp_cbf.dcm", "ctp_cbv.dcm", "ctp_mtt.dcm", "ctp_tmax.dcm")
SEG = "ctp_lesions_seg.dcm"


def _source_headers() -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((CTP_STUDY / "dicom").glob("*.dcm"))]


def test_the_ctp_series_is_chosen_whole(ctp_run: Run) -> None:
    process, output = ctp_run
    assert process.returncode == EXIT_OK, process.stderr[-3000:]
    record = json.loads((output / "run_record.json").read_text())
    chosen = [s for s in record["series_found"] if s["decision"] == "chosen"]
    assert [s["classification"] for s in chosen] == ["ctp"]
    assert "40 time points" in chosen[0]["reason"]
    assert chosen[0]["number_of_instances"] == 320
    summary = record["ct_perfusion"]
    assert summary["method"] == "osvd"
    assert summary["hypoperfusion_ml"] > summary["core_ml"] > 0


def test_maps_and_seg_are_in_the_source_study_and_frame(ctp_run: Run) -> None:
    _, output = ctp_run
    source = _source_headers()[0]
    for name in (*MAPS, SEG):
        ds = pydicom.dcmread(output / name, stop_before_pixels=True)
        assert ds.StudyInstanceUID == source.StudyInstanceUID, name
        assert ds.FrameOfReferenceUID == source.FrameOfReferenceUID, name
        assert ds.SeriesInstanceUID != source.SeriesInstanceUID, name
    cbf = hd.pm.ParametricMap.from_dataset(pydicom.dcmread(output / "ctp_cbf.dcm"))
    assert cbf.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30"


def test_seg_masks_are_the_reported_volumes(ctp_run: Run) -> None:
    _, output = ctp_run
    record = json.loads((output / "run_record.json").read_text())["ct_perfusion"]
    seg = hd.seg.segread(output / SEG)
    spacing = [float(v) for v in seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing]
    thickness = float(seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SliceThickness)
    voxel_ml = spacing[0] * spacing[1] * thickness / 1000.0
    labels = {s.SegmentLabel.lower(): s.SegmentNumber for s in seg.SegmentSequence}
    core_number = next(n for label, n in labels.items() if "core" in label)
    hypo_number = next(n for label, n in labels.items() if "hypoperfusion" in label)
    sources = {ds.SOPInstanceUID for ds in _source_headers()}
    referenced = {
        item.ReferencedSOPInstanceUID
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert referenced <= sources
    core = seg.get_volume(segment_numbers=[core_number], combine_segments=False).array
    hypo = seg.get_volume(segment_numbers=[hypo_number], combine_segments=False).array
    assert (
        np.count_nonzero(core) * voxel_ml == np.float64(record["core_ml"]).round(2)
        or abs(np.count_nonzero(core) * voxel_ml - record["core_ml"]) < 0.01
    )
    assert abs(np.count_nonzero(hypo) * voxel_ml - record["hypoperfusion_ml"]) < 0.01


def test_ctp_outputs_pass_dciodvfy(ctp_run: Run) -> None:
    _, output = ctp_run
    for path in sorted(output.glob("ctp_*.dcm")):
        assert dciodvfy_errors(path) == [], path.name


def test_the_method_is_a_command_line_choice(tmp_path: Path) -> None:
    process = run_app_process("-i", CTP_STUDY / "dicom", "-o", tmp_path / "out", "--ctp-method", "ssvd")
    assert process.returncode == EXIT_OK, process.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "run_record.json").read_text())["ct_perfusion"]
    assert record["method"] == "ssvd" and record["algorithm"] == "CTP sSVD"
    assert "CTP sSVD" in pydicom.dcmread(tmp_path / "out" / "ctp_cbf.dcm").SeriesDescription
