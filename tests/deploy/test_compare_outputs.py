"""The comparison of two output folders (a run inside the MAP container against one outside it).

Small synthetic folders: an integer image, a float Parametric-Map-like object, a run record and a
text file.  Two runs differ in their UIDs, dates, times and timings, which must not count; a single
changed pixel, attribute, run-record result or missing file must be reported.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from deploy.map.compare_outputs import compare_output_folders, main

SEED = 20261122
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30"


def _dataset(sop_class: str, run: int) -> Dataset:
    """A small object with new UIDs, date and time for each ``run``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.ContentDate = f"2026112{run}"
    ds.ContentTime = f"10{run}000"
    ds.SeriesDescription = "Perfusion (SYNTHETIC, research use)"
    ds.SeriesNumber = 902
    ds.Rows, ds.Columns = 4, 5
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    derivation = Dataset()
    derivation.CodeValue, derivation.CodingSchemeDesignator, derivation.CodeMeaning = "113087", "DCM", "Smoothing"
    ds.DerivationCodeSequence = [derivation]
    return ds


def _write_run(folder: Path, run: int, image: np.ndarray, float_map: np.ndarray, seconds: float) -> Path:
    folder.mkdir(parents=True)
    integer = _dataset(SECONDARY_CAPTURE, run)
    integer.BitsAllocated, integer.BitsStored, integer.HighBit, integer.PixelRepresentation = 16, 16, 15, 0
    integer.PixelData = image.astype(np.uint16).tobytes()
    integer.save_as(folder / "image.dcm", enforce_file_format=True)
    floats = _dataset(PARAMETRIC_MAP, run)
    floats.BitsAllocated = 32
    floats.FloatPixelData = float_map.astype(np.float32).tobytes()
    (folder / "maps").mkdir()
    floats.save_as(folder / "maps" / "perfusion_map.dcm", enforce_file_format=True)
    record = {
        "status": "completed",
        "started_at": f"2026-11-2{run}T10:00:00+00:00",
        "timings_s": {"total_wall": seconds},
        "host": {"cpu_count": run},
        "outputs": [{"file": "image.dcm", "series_instance_uid": str(integer.SeriesInstanceUID), "series_number": 902}],
        "functional": {"regions": [{"share_percent": 51.2}], "seconds": seconds},
    }
    (folder / "run_record.json").write_text(json.dumps(record))
    (folder / "notes.txt").write_text("synthetic\n")
    return folder


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(SEED)
    image = rng.integers(0, 4000, size=(4, 5))
    float_map = rng.random((4, 5))
    return (
        _write_run(tmp_path / "host", 1, image, float_map, seconds=20.5),
        _write_run(tmp_path / "container", 2, image, float_map, seconds=31.0),
    )


def test_identical_results_with_new_uids_dates_and_timings_are_equal(two_runs: tuple[Path, Path]) -> None:
    host, container = two_runs
    comparison = compare_output_folders(host, container)
    assert comparison.equal, comparison.differences
    assert (comparison.dicom_objects, comparison.pixel_objects) == (2, 2)
    assert main([str(host), str(container)]) == 0


def test_one_changed_pixel_is_reported(two_runs: tuple[Path, Path]) -> None:
    host, container = two_runs
    ds = pydicom.dcmread(container / "image.dcm")
    pixels = ds.pixel_array.copy()
    pixels[2, 3] += 1
    ds.PixelData = pixels.tobytes()
    ds.save_as(container / "image.dcm")
    comparison = compare_output_folders(host, container)
    assert comparison.differences == ["image.dcm: PixelData differs (1 of 20 values, max |difference| 1)"]
    assert main([str(host), str(container)]) == 1


def test_one_changed_float_value_is_reported(two_runs: tuple[Path, Path]) -> None:
    host, container = two_runs
    path = container / "maps" / "perfusion_map.dcm"
    ds = pydicom.dcmread(path)
    values = np.frombuffer(ds.FloatPixelData, dtype=np.float32).copy()
    values[7] = np.nextafter(values[7], np.float32(2.0))
    ds.FloatPixelData = values.tobytes()
    ds.save_as(path)
    (difference,) = compare_output_folders(host, container).differences
    assert difference.startswith("maps/perfusion_map.dcm: FloatPixelData differs")


def test_changed_attributes_missing_files_and_results_are_reported(two_runs: tuple[Path, Path]) -> None:
    host, container = two_runs
    ds = pydicom.dcmread(container / "image.dcm")
    ds.SeriesDescription = "Perfusion"
    ds.DerivationCodeSequence[0].CodeValue = "113076"
    ds.save_as(container / "image.dcm")
    (container / "notes.txt").write_text("changed\n")
    (container / "extra.dcm").write_bytes(b"not dicom")
    record = json.loads((container / "run_record.json").read_text())
    record["functional"]["regions"][0]["share_percent"] = 48.8
    (container / "run_record.json").write_text(json.dumps(record))
    shutil.rmtree(container / "maps")
    differences = compare_output_folders(host, container).differences
    assert f"maps/perfusion_map.dcm: only in {host}" in differences
    assert f"extra.dcm: only in {container}" in differences
    assert "notes.txt: contents differ" in differences
    assert "run_record.json: /functional/regions[0]/share_percent: 51.2 != 48.8" in differences
    assert any(d.startswith("image.dcm: SeriesDescription:") for d in differences)
    assert any(d.startswith("image.dcm: DerivationCodeSequence[0].CodeValue:") for d in differences)
    assert len(differences) == 6


def test_a_missing_folder_exits_2(tmp_path: Path) -> None:
    assert main([str(tmp_path), str(tmp_path / "absent")]) == 2
