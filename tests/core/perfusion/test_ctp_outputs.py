"""The CTP outputs: validity (dciodvfy), map and mask round trips, study and series, empty lesions, all-or-nothing.

The result is synthetic, so that the test does not depend on the analysis: a 4 x 48 x 48 head
(5 x 3.2 x 3.2 mm), no brain on the lowest slice, normal tissue (CBF ~50 ml/100 g/min, MTT 4 s,
Tmax 2 s) with an ischaemic region in the patient's left hemisphere (Tmax 9 s, CBF 60 % of normal)
around a core (CBF 5 ml/100 g/min, a few noise-negative CBV values); the lesion masks come from
:func:`core.perfusion.lesions.stroke_lesions`.  It is written as a 3-frame 4D CT series whose first
frame the objects refer to.  Tolerances: float maps exact after float32 storage (negative values
stored as 0); masks exact.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import highdicom
import numpy as np
import pydicom
import pytest
from pydicom import Dataset

from core.dicom.ctp_writer import write_ctp_series
from core.dicom.slice_stack import sorted_along_normal
from core.geometry import Grid
from core.perfusion import ctp_outputs
from core.perfusion.ctp import CtpResult
from core.perfusion.ctp_outputs import MAPS, CtpIdentity, CtpSeriesNumbers, write_ctp_outputs
from core.perfusion.lesions import StrokeLesions, stroke_lesions
from core.simulation.ctp_study import head_study
from tests.dciodvfy import dciodvfy_errors, dciodvfy_warnings

GRID = Grid((4, 48, 48), (5.0, 3.2, 3.2), (-76.8, -76.8, -10.0))
TIMES_S = np.array([0.0, 1.5, 3.0])
SEED = 12
IDENTITY = CtpIdentity.of("osvd", "9.8.7")
KNOWN_WARNINGS = {
    "Warning - Unrecognized defined term <QUANTITY> for value 4 of attribute <Image Type>",
    "Warning - Unrecognized defined term <QUANTITY> for value 4 of attribute <Frame Type>",
}
"""dciodvfy does not know the Parametric Map value QUANTITY (PS3.3 C.8.32.3); as in test_pm_writer."""
UNITS = {"cbf": "ml/(100.g)/min", "cbv": "ml/(100.g)", "mtt": "s", "tmax": "s"}
QUANTITIES = {"cbf": "126390", "cbv": "126391", "mtt": "113052", "tmax": "113084"}
"""PS3.16 CID 4108: Absolute Regional Blood Flow and Volume, Mean Transit Time, Tmax."""
SEGMENT_LABELS = ("Ischaemic core (rCBF < 30 %)", "Hypoperfusion (Tmax > 6 s)")
BRAIN_SLICES = [1, 2, 3]


@dataclasses.dataclass(frozen=True)
class Case:
    result: CtpResult
    first_frame: list[Dataset]
    baseline_hu: np.ndarray
    outputs: dict[str, Path]


def synthetic_result(rng: np.random.Generator) -> tuple[CtpResult, np.ndarray]:
    """A CTP result with a left-hemisphere stroke on slices 1-3, and the baseline CT (HU)."""
    _, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in GRID.shape), indexing="ij")
    r2 = ((y - 23.5) / 18.0) ** 2 + ((x - 23.5) / 15.0) ** 2
    head = r2 < 1.3
    brain = (r2 < 1.0) & (np.arange(GRID.shape[0]) > 0)[:, None, None]
    tissue = brain & ~((np.abs(x - 23.5) < 2.5) & (np.abs(y - 23.5) < 6.0))  # ventricles left out
    baseline = np.select([tissue, brain, head], [30.0, 5.0, 1000.0], -1000.0).astype(np.float32)  # HU
    ischaemic = tissue & (x > 30)  # columns run to the patient's left
    core = ischaemic & (((y - 23.5) / 5.0) ** 2 + ((x - 34.0) / 3.0) ** 2 < 1.0)
    cbf = np.where(tissue, 50.0 * (1.0 + 0.05 * rng.standard_normal(GRID.shape)), 0.0)
    cbf = np.where(ischaemic, 0.6 * cbf, cbf)
    cbf = np.where(core, 5.0, cbf).astype(np.float32)
    mtt = np.where(tissue, 4.0, 0.0).astype(np.float32)
    cbv = (cbf * mtt / 60.0).astype(np.float32)
    cbv[core & (y > 24)] = -0.05  # noise-negative blood volume where the tissue hardly enhances
    tmax = np.where(ischaemic, 9.0, np.where(tissue, 2.0, 0.0)).astype(np.float32)
    result = CtpResult(
        cbf_ml_100g_min=cbf,
        cbv_ml_100g=cbv,
        mtt_s=mtt,
        tmax_s=tmax,
        brain_mask=brain,
        tissue_mask=tissue,
        lesions=stroke_lesions(cbf, tmax, tissue),
        aif_hu=np.zeros(len(TIMES_S)),
        vof_hu=np.zeros(len(TIMES_S)),
        aif_scale=1.0,
        dt_s=1.5,
        baseline_frames=1,
        method="osvd",
    )
    return result, baseline


def _write(case: Case, result: CtpResult, out_dir: Path) -> dict[str, Path]:
    return write_ctp_outputs(result, case.first_frame, out_dir, baseline_hu=case.baseline_hu, identity=IDENTITY)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    rng = np.random.default_rng(SEED)
    result, baseline = synthetic_result(rng)
    assert result.lesions.core.any() and result.lesions.hypoperfusion.any()
    assert (result.cbv_ml_100g < 0).any()
    root = tmp_path_factory.mktemp("ctp_outputs")
    frames = np.stack([baseline + 10.0 * k for k in range(len(TIMES_S))])
    paths = write_ctp_series(
        frames, TIMES_S, GRID, head_study(rng), root / "ctp", frame_of_reference_uid=highdicom.UID()
    )
    headers: list[Dataset] = [pydicom.dcmread(path, stop_before_pixels=True) for path in paths]
    first: list[Dataset] = [ds for ds in headers if int(ds.AcquisitionNumber) == 1][
        ::-1
    ]  # superior first: order must not matter
    partial = Case(result, first, baseline, {})
    return dataclasses.replace(partial, outputs=_write(partial, result, root / "out"))


def _position(ds: Dataset) -> tuple[float, ...]:
    return tuple(round(float(v), 3) for v in ds.ImagePositionPatient)


def test_every_object_is_written_and_passes_dciodvfy(case: Case) -> None:
    summaries = [f"summary_{n:02d}" for n in range(1, len(BRAIN_SLICES) + 1)]
    assert sorted(case.outputs) == sorted([*MAPS, "seg", *summaries])
    for name, path in case.outputs.items():
        assert path.is_file() and path.parent.name == "out", name
        assert dciodvfy_errors(path) == [], name
        assert set(dciodvfy_warnings(path)) <= KNOWN_WARNINGS, name
    assert sorted(p.name for p in case.outputs["cbf"].parent.iterdir()) == sorted(p.name for p in case.outputs.values())


@pytest.mark.parametrize("name", list(MAPS))
def test_parametric_maps_round_trip_with_units_and_quantities(case: Case, name: str) -> None:
    expected = np.clip(getattr(case.result, MAPS[name].attribute), 0.0, None).astype(np.float32)
    ascending = sorted_along_normal(case.first_frame)
    index = {_position(ds): k for k, ds in enumerate(ascending)}
    pm = pydicom.dcmread(case.outputs[name])
    pixels = pm.pixel_array.reshape(-1, int(pm.Rows), int(pm.Columns))
    stored = []
    for item, frame in zip(pm.PerFrameFunctionalGroupsSequence, pixels, strict=True):
        k = index[_position(item.PlanePositionSequence[0])]
        source = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        assert source == ascending[k].SOPInstanceUID
        np.testing.assert_array_equal(frame, expected[k])
        stored.append(k)
    assert sorted(stored) == [k for k in range(len(expected)) if expected[k].any()]
    shared = pm.SharedFunctionalGroupsSequence[0]
    (mapping,) = shared.RealWorldValueMappingSequence
    unit = mapping.MeasurementUnitsCodeSequence[0]
    assert (unit.CodeValue, unit.CodingSchemeDesignator) == (UNITS[name], "UCUM")
    concept = mapping.QuantityDefinitionSequence[0].ConceptCodeSequence[0]
    assert (concept.CodeValue, concept.CodingSchemeDesignator) == (QUANTITIES[name], "DCM")
    anatomy = shared.FrameAnatomySequence[0]
    assert anatomy.AnatomicRegionSequence[0].CodeValue == "12738006" and anatomy.FrameLaterality == "B"  # Brain
    low, high = MAPS[name].window
    voi = shared.FrameVOILUTSequence[0]
    assert (float(voi.WindowCenter), float(voi.WindowWidth)) == ((low + high) / 2, high - low)
    assert "CodingSchemeIdentificationSequence" not in pm or all(
        item.CodingSchemeDesignator != "99PMAP" for item in pm.CodingSchemeIdentificationSequence
    )


def test_seg_round_trips_to_the_lesion_masks_on_the_first_frame(case: Case) -> None:
    seg = highdicom.seg.segread(case.outputs["seg"])
    ascending = sorted_along_normal(case.first_frame)
    uids = [str(ds.SOPInstanceUID) for ds in ascending]
    assert {str(sop) for _, _, sop in seg.get_source_image_uids()} <= set(uids)
    labels = [str(item.SegmentLabel) for item in seg.SegmentSequence]
    assert labels == list(SEGMENT_LABELS)
    types = [item.SegmentedPropertyTypeCodeSequence[0].CodeValue for item in seg.SegmentSequence]
    assert types == ["55641003", "52674009"]  # Infarct, Ischemia
    pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=[1, 2], assert_missing_frames_are_empty=True)
    np.testing.assert_array_equal(pixels[..., 0] > 0, case.result.lesions.core)
    np.testing.assert_array_equal(pixels[..., 1] > 0, case.result.lesions.hypoperfusion)


def test_every_object_joins_the_ctp_study_in_its_own_new_series(case: Case) -> None:
    ct = case.first_frame[0]
    numbers = CtpSeriesNumbers()
    expected_numbers = {**{name: getattr(numbers, name) for name in MAPS}, "seg": numbers.seg}
    series: dict[int, set[str]] = {}
    for name, path in case.outputs.items():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.StudyInstanceUID == ct.StudyInstanceUID, name
        if not name.startswith("summary"):  # the Secondary Capture Image IOD has no Frame of Reference module
            assert ds.FrameOfReferenceUID == ct.FrameOfReferenceUID, name
        assert ds.PatientID == ct.PatientID, name
        assert ds.SeriesInstanceUID != ct.SeriesInstanceUID, name
        assert "research use" in ds.SeriesDescription, name
        assert int(ds.SeriesNumber) == expected_numbers.get(name, numbers.summary), name
        series.setdefault(int(ds.SeriesNumber), set()).add(str(ds.SeriesInstanceUID))
        equipment = [
            item
            for item in ds.ContributingEquipmentSequence
            if item.get("ManufacturerModelName") == IDENTITY.algorithm_name == "CTP oSVD"
            and item.get("SoftwareVersions") == IDENTITY.algorithm_version
        ]
        assert len(equipment) == 1, name
    assert all(len(uids) == 1 for uids in series.values()) and len(series) == 6


def test_summary_pictures_reference_their_slices(case: Case) -> None:
    ascending = sorted_along_normal(case.first_frame)
    for number, k in enumerate(BRAIN_SLICES, 1):
        sc = pydicom.dcmread(case.outputs[f"summary_{number:02d}"])
        assert sc.PhotometricInterpretation == "RGB" and sc.pixel_array.shape[2] == 3
        assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == ascending[k].SOPInstanceUID
        assert f"slice {k + 1}/{GRID.shape[0]}" in sc.DerivationDescription
        assert "research use" in sc.ImageComments


def _without_core(result: CtpResult, keep_hypoperfusion: bool = True) -> CtpResult:
    lesions = result.lesions
    hypo = lesions.hypoperfusion if keep_hypoperfusion else np.zeros_like(lesions.hypoperfusion)
    empty = StrokeLesions(np.zeros_like(lesions.core), hypo, lesions.reference_cbf_ml_100g_min)
    return dataclasses.replace(result, lesions=empty)


def test_an_empty_core_leaves_only_the_hypoperfusion_segment(
    case: Case, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=ctp_outputs.__name__):
        outputs = _write(case, _without_core(case.result), tmp_path / "out")
    assert "Ischaemic core" in caplog.text
    seg = highdicom.seg.segread(outputs["seg"])
    assert [str(item.SegmentLabel) for item in seg.SegmentSequence] == [SEGMENT_LABELS[1]]
    assert dciodvfy_errors(outputs["seg"]) == []


def test_without_any_lesion_no_seg_is_written(case: Case, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=ctp_outputs.__name__):
        outputs = _write(case, _without_core(case.result, keep_hypoperfusion=False), tmp_path / "out")
    assert "seg" not in outputs and not (tmp_path / "out" / ctp_outputs.SEG_NAME).exists()
    assert "no CTP lesion SEG" in caplog.text


@pytest.mark.parametrize("existing", [False, True], ids=["new-folder", "existing-folder"])
def test_a_failing_writer_leaves_nothing_behind(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(ctp_outputs, "render_summary_image", fail)
    out = tmp_path / "out"
    if existing:
        out.mkdir()
        (out / "other.dcm").write_bytes(b"other")
    with pytest.raises(RuntimeError, match="rendering failed"):
        _write(case, case.result, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out"] if existing else [])
    if existing:
        assert [p.name for p in out.iterdir()] == ["other.dcm"]


def test_existing_ctp_objects_are_not_overwritten(case: Case, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "ctp_cbf.dcm").write_bytes(b"earlier run")
    with pytest.raises(FileExistsError, match="already holds"):
        _write(case, case.result, out)
    assert (out / "ctp_cbf.dcm").read_bytes() == b"earlier run"


def test_identity_names_the_method() -> None:
    assert CtpIdentity.of("csvd", "1").algorithm_name == "CTP cSVD"
    network = CtpIdentity.of("network", "1")
    assert network.algorithm_name == "CTP Transformer" and network.family.value == "123110"


def test_run_record_summary_is_json_ready(case: Case) -> None:
    grid = GRID
    summary = ctp_outputs.ctp_summary(_without_core(case.result), grid, IDENTITY)
    json.dumps(summary, allow_nan=False)
    assert summary["core_ml"] == 0.0 and summary["mismatch_ratio"] is None
    expected = case.result.lesions.hypoperfusion.sum() * grid.voxel_volume_ml
    assert summary["hypoperfusion_ml"] == pytest.approx(expected, abs=0.01)


def test_without_a_baseline_ct_the_summary_is_still_written(case: Case, tmp_path: Path) -> None:
    outputs = write_ctp_outputs(case.result, case.first_frame, tmp_path / "out", identity=IDENTITY)
    assert dciodvfy_errors(outputs["summary_01"]) == []
