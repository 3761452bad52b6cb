"""Run record pieces (core.run_record): timings, versions, and what the record may hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from core.geometry import Grid
from core.labels import LungLabel
from core.lung.enhancement import LungCrop
from core.run_record import (
    SEGMENTED,
    LungCropSummary,
    LungSegmentationSummary,
    OutputFile,
    RunContext,
    RunFacts,
    StageTimings,
    VolumeSummary,
    build_run_record,
    process_peak_rss_bytes,
    software_versions,
    write_run_record,
)
from core.series_selection import SelectionRules, select_series, summarize_series
from tests.app.headers import PATIENT_ID, PATIENT_NAME, ct_series, nm_tomo


class FakeClock:
    """A clock that advances by ``step_s`` every time it is read."""

    def __init__(self, step_s: float) -> None:
        self.now_s = 100.0
        self.step_s = step_s

    def __call__(self) -> float:
        self.now_s += self.step_s
        return self.now_s


def test_stage_timings_add_up_and_keep_order() -> None:
    timings = StageTimings(clock=FakeClock(step_s=0.5))
    for stage in ("load", "select", "load"):
        with timings.measure(stage):
            pass
    assert timings.seconds() == {"load": 1.0, "select": 0.5}
    assert timings.first_start_s == pytest.approx(100.5)


def test_stage_timings_keep_the_memory_peak_when_each_stage_last_ended() -> None:
    readings = iter([10, 30, 30, 50])
    timings = StageTimings(clock=FakeClock(step_s=1.0), peak_rss_bytes=lambda: next(readings))
    for stage in ("load", "select", "write", "load"):
        with timings.measure(stage):
            pass
    assert timings.peak_rss_after() == {"load": 50, "select": 30, "write": 30}


def test_the_process_peak_is_at_least_the_resident_memory_now() -> None:
    block = np.ones(64 * 1024**2, dtype=np.uint8)  # 64 MiB, touched, so resident
    status = Path("/proc/self/status").read_text()
    resident_kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    # the kernel updates ru_maxrss lazily: allow a few MiB behind the resident size read just now
    assert process_peak_rss_bytes() >= resident_kib * 1024 - 16 * 1024**2
    assert resident_kib * 1024 >= block.nbytes


def test_stage_timings_count_a_failing_stage() -> None:
    timings = StageTimings(clock=FakeClock(step_s=2.0))
    with pytest.raises(RuntimeError), timings.measure("broken"):
        raise RuntimeError("boom")
    assert timings.seconds() == {"broken": 2.0}


def test_software_versions_name_every_package() -> None:
    versions = software_versions()
    assert set(versions) == {
        "python", "monai-deploy-app-sdk", "holoscan", "torch", "numpy", "pydicom", "highdicom", "SimpleITK",
    }  # fmt: skip
    assert versions["numpy"] == np.__version__


def test_volume_summary_refuses_a_shape_that_is_not_the_grids() -> None:
    grid = Grid((2, 3, 4), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="differs"):
        VolumeSummary.from_grid("ct", "1.2", np.zeros((2, 3, 5)), grid)


def test_record_is_json_and_free_of_patient_identifiers(rules: SelectionRules, tmp_path: Path) -> None:
    selection = select_series(
        [summarize_series(ct_series(5)), summarize_series(nm_tomo(radiopharmaceutical="Tc-99m MAA"))], rules
    )
    grid = Grid((5, 512, 512), (1.0, 0.7, 0.7), (-179.0, -179.0, -2.0))
    ct_uid = selection.chosen["ct"].summary.series_instance_uid
    timings = StageTimings()
    with timings.measure("dicom_loader"):
        pass
    context = RunContext("perfusion-map", "0.1.0", Path("/in"), Path("/out"), datetime.now(UTC), 0.0)
    facts = RunFacts(
        context=context,
        selection=selection,
        volumes=[VolumeSummary.from_grid("ct", ct_uid, np.zeros(grid.shape, np.int16), grid)],
        timings=timings,
        ended_at=datetime.now(UTC),
        ended_perf_s=1.5,
        status="completed",
    )
    path = write_run_record(build_run_record(facts), tmp_path / "run_record.json")
    text = path.read_text(encoding="utf-8")
    record = json.loads(text)
    assert record["series_chosen"].keys() == {"ct", "perfusion"}
    assert record["volumes"]["ct"]["shape"] == [5, 512, 512]
    assert record["timings_s"]["total_wall"] == 1.5
    assert PATIENT_NAME.split("^")[0] not in text and PATIENT_ID not in text and "19500101" not in text


def test_lung_volumes_use_the_affine_voxel_volume() -> None:
    mask = np.zeros((4, 5, 6), np.uint8)
    mask[0, :2, :3] = LungLabel.RIGHT_LUNG  # 6 voxels
    mask[1:3, 0, 0] = LungLabel.LEFT_LUNG  # 2 voxels
    affine = np.eye(4)
    affine[:3, :3] = [[0.0, 0.0, 0.7], [0.0, -0.8, 0.0], [2.5, 0.0, 0.0]]  # 1.4 mm^3 per voxel, any axis order
    summary = LungSegmentationSummary.from_mask(mask, affine)
    assert summary.status == SEGMENTED
    assert summary.lung_volumes_ml == pytest.approx({"right_lung": 6 * 1.4e-3, "left_lung": 2 * 1.4e-3})
    assert summary.as_dict() == {
        "status": "segmented",
        "reason": None,
        "lung_volumes_ml": {"right_lung": 0.0, "left_lung": 0.0},
    }


def test_lung_crop_summary_gives_the_box_and_crop_voxels() -> None:
    grid = Grid((40, 50, 60), (2.0, 1.0, 1.5), (0.0, 0.0, 0.0))
    crop = LungCrop((slice(4, 36), slice(10, 42), slice(0, 32)), grid, (16, 8, 8))
    summary = LungCropSummary.from_crop(LungLabel.LEFT_LUNG, crop)
    assert summary.lung == "left_lung"
    assert summary.as_dict() == {
        "box_zyx": [[4, 36], [10, 42], [0, 32]],
        "shape": [16, 8, 8],
        "spacing_mm": [4.0, 4.0, 6.0],
    }


def test_output_file_is_described_from_its_header(tmp_path: Path) -> None:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.66.4", "1.2.3.4"
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = "1.2.3", 900, "Lungs"
    (tmp_path / "seg").mkdir()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(tmp_path / "seg" / "lungs.dcm", enforce_file_format=True)
    output = OutputFile.from_dicom(tmp_path / "seg" / "lungs.dcm", tmp_path)
    assert output.as_dict() == {
        "file": "seg/lungs.dcm",
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.66.4",
        "series_instance_uid": "1.2.3",
        "series_number": 900,
        "series_description": "Lungs",
    }
