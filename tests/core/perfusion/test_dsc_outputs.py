"""DSC Parametric Maps: in the source study and frame, valid for dciodvfy, values round-trip, all or nothing."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from core.dicom.dsc_reader import read_dsc
from core.dicom.dsc_writer import write_dsc_series
from core.dicom.study import synthetic_patient_study
from core.perfusion.dsc import analyse_dsc
from core.perfusion.dsc_outputs import dsc_maps, dsc_summary, write_dsc_outputs
from core.simulation.dsc_params import DscSpec
from core.simulation.dsc_phantom import make_dsc_phantom
from tests.dciodvfy import dciodvfy_errors

SPEC = DscSpec((3, 96, 96), (5.0, 2.2, 2.2), n_frames=45, aif_kind="gamma")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory):
    phantom = make_dsc_phantom(SPEC, 21)
    folder = tmp_path_factory.mktemp("dsc")
    paths = write_dsc_series(
        phantom.signal,
        phantom.times_s,
        phantom.grid,
        synthetic_patient_study(np.random.default_rng(0)),
        folder / "mr",
        frame_of_reference_uid=generate_uid(),
        echo_time_ms=SPEC.te_ms,
    )
    series = read_dsc(paths)
    result = analyse_dsc(series.signal, series.times_s, series.grid, series.echo_time_s)
    stunet = np.where(result.brain_mask, 1.5, 0.0).astype(np.float32)
    files = write_dsc_outputs(
        dsc_maps(result, stunet),
        series.first_frame,
        folder / "out",
        algorithm_name="DSC oSVD + stU-Net",
        algorithm_version="test",
    )
    return series, result, files


def test_every_map_is_written_in_the_source_study(written) -> None:
    series, _, files = written
    assert sorted(files) == ["cbf", "cbv", "cbv_stunet", "mtt"]
    source = series.first_frame[0]
    for path in files.values():
        ds = pydicom.dcmread(path)
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        assert ds.FrameOfReferenceUID == source.FrameOfReferenceUID
        assert ds.SeriesInstanceUID != source.SeriesInstanceUID
        assert "research use" in ds.SeriesDescription


def test_maps_round_trip_through_highdicom(written) -> None:
    series, result, files = written
    z_of = {round(float(ds.ImagePositionPatient[2]), 3): k for k, ds in enumerate(series.first_frame)}
    pm = hd.pm.ParametricMap.from_dataset(pydicom.dcmread(files["cbv"]))
    pixels = pm.pixel_array.reshape(-1, int(pm.Rows), int(pm.Columns))
    seen = []
    for item, frame in zip(pm.PerFrameFunctionalGroupsSequence, pixels, strict=True):
        k = z_of[round(float(item.PlanePositionSequence[0].ImagePositionPatient[2]), 3)]
        np.testing.assert_array_equal(frame, result.cbv_ml_100g[k])
        seen.append(k)
    assert sorted(seen) == list(range(len(series.first_frame)))
    unit = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0].MeasurementUnitsCodeSequence[0]
    assert unit.CodeValue == "ml/(100.g)"
    stunet = pydicom.dcmread(files["cbv_stunet"])
    assert "standardised" in stunet.SeriesDescription
    mapping = stunet.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "{z-score}"


def test_maps_pass_dciodvfy(written) -> None:
    _, _, files = written
    for path in files.values():
        assert dciodvfy_errors(path) == [], path.name


def test_summary_names_the_algorithm(written) -> None:
    series, result, _ = written
    summary = dsc_summary(result, series.grid.voxel_volume_ml, "DSC oSVD")
    assert summary["algorithm"] == "DSC oSVD"
    assert 100.0 < float(summary["brain_ml"]) < 1000.0  # type: ignore[arg-type]
    assert summary["aif_peak_delta_r2_per_s"] > 5.0  # type: ignore[operator]


def test_existing_outputs_are_not_overwritten(written, tmp_path: Path) -> None:
    series, result, files = written
    out = files["cbv"].parent
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(FileExistsError):
        write_dsc_outputs(dsc_maps(result), series.first_frame, out, algorithm_name="x", algorithm_version="y")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_a_wrong_shape_writes_nothing(written, tmp_path: Path) -> None:
    series, result, _ = written
    maps = dsc_maps(result)
    maps["cbv"] = maps["cbv"][:-1]
    with pytest.raises(ValueError, match="shape"):
        write_dsc_outputs(maps, series.first_frame, tmp_path / "out", algorithm_name="x", algorithm_version="y")
    assert not (tmp_path / "out").exists()
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())
