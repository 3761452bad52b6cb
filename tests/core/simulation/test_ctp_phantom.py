"""Brain CT-perfusion phantom: determinism, lesion truth, enhancement levels, VOF area, noise, the CLI.

Units and tolerances:
* enhancement in HU: clean arterial peak 300-450 HU; mean enhancement of normal grey matter in the
  (blurred, noisy) frames peaks at 13-25 HU (blur mixes the thin cortex with CSF);
* venous and arterial clean curves have the same area within 1 % (gamma AIF, bolus inside the window);
* true Tmax (s) of the impulse response within 0.2 s of the analytic maximum of ``VTF * R`` for
  alpha = 1, ``delay + T_A MTT / (MTT - T_A) ln(MTT / T_A)``: two steps of the 0.1 s grid, on which the
  discrete convolution (as in the curve simulation) moves the argmax of a flat maximum;
* noise: the standard deviation of the difference of two baseline frames is sqrt(2) x noise_hu within 15 %.
"""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from core.dicom.ctp_reader import read_ctp_series
from core.errors import SimulationParameterError
from core.labels import BrainTissue
from core.perfusion.lesions import CORE_RELATIVE_CBF, HYPOPERFUSION_TMAX_S, NORMAL_TMAX_S
from core.simulation import ctp_params
from core.simulation.__main__ import main
from core.simulation.ctp_params import CtpSpec
from core.simulation.ctp_phantom import PARAMETER_NAMES, CtpPhantom, make_ctp_phantom, true_tmax_s
from core.simulation.head import ISCHAEMIA_CORE, ISCHAEMIA_NONE, ISCHAEMIA_PENUMBRA

SPEC = CtpSpec((6, 96, 96), (5.0, 2.4, 2.4), dt_s=1.5, n_frames=32, aif_kind="gamma", noise_hu=7.0)
SEED = 12
TMAX_TOLERANCE_S = 0.2


@pytest.fixture(scope="module")
def phantom() -> CtpPhantom:
    return make_ctp_phantom(SPEC, SEED)


def test_phantom_is_deterministic_for_a_seed(phantom: CtpPhantom) -> None:
    again = make_ctp_phantom(SPEC, SEED)
    np.testing.assert_array_equal(again.hu, phantom.hu)
    for name in PARAMETER_NAMES:
        np.testing.assert_array_equal(again.truth[name], phantom.truth[name])
    assert not np.array_equal(make_ctp_phantom(SPEC, SEED + 1).hu, phantom.hu)


def test_shapes_and_dtypes(phantom: CtpPhantom) -> None:
    assert phantom.hu.shape == (SPEC.n_frames, *SPEC.shape) and phantom.hu.dtype == np.int16
    np.testing.assert_allclose(phantom.times_s, np.arange(SPEC.n_frames) * SPEC.dt_s)
    for name in PARAMETER_NAMES:
        assert phantom.truth[name].shape == SPEC.shape
        assert np.all(phantom.truth[name][~phantom.anatomy.tissue_mask] == 0.0), name


def test_anatomy_holds_every_tissue_and_wide_arteries(phantom: CtpPhantom) -> None:
    labels = phantom.anatomy.labels
    assert set(np.unique(labels)) == {int(t) for t in BrainTissue}
    assert phantom.anatomy.brain_mask[labels == BrainTissue.GREY_MATTER].all()
    assert not phantom.anatomy.brain_mask[labels == BrainTissue.SKULL].any()


def test_true_maps_follow_the_central_volume_theorem(phantom: CtpPhantom) -> None:
    tissue = phantom.anatomy.tissue_mask
    t = phantom.truth
    np.testing.assert_allclose(
        t["cbv_ml_100g"][tissue], t["cbf_ml_100g_min"][tissue] * t["mtt_s"][tissue] / 60.0, rtol=1e-5
    )


def test_lesions_are_measurable_and_core_lies_inside_hypoperfusion(phantom: CtpPhantom) -> None:
    volumes = phantom.volumes_ml()
    assert volumes["core_ml"] > 3.0
    assert volumes["hypoperfusion_ml"] > volumes["core_ml"] + 10.0
    lesions, ischaemia = phantom.lesions, phantom.anatomy.ischaemia
    assert np.all(lesions.hypoperfusion[lesions.core])
    designed_core = ischaemia == ISCHAEMIA_CORE
    dice = 2 * (lesions.core & designed_core).sum() / (lesions.core.sum() + designed_core.sum())
    assert dice > 0.95
    # all the designed territory is hypoperfused and nothing outside it
    assert np.array_equal(lesions.hypoperfusion, ischaemia != ISCHAEMIA_NONE)


def test_penumbra_keeps_relative_cbf_and_normal_tissue_a_short_tmax(phantom: CtpPhantom) -> None:
    tissue, ischaemia, t = phantom.anatomy.tissue_mask, phantom.anatomy.ischaemia, phantom.truth
    reference = phantom.lesions.reference_cbf_ml_100g_min
    penumbra = ischaemia == ISCHAEMIA_PENUMBRA
    assert t["cbf_ml_100g_min"][penumbra].min() > CORE_RELATIVE_CBF * reference
    assert t["tmax_s"][penumbra].min() > HYPOPERFUSION_TMAX_S
    normal = tissue & (ischaemia == ISCHAEMIA_NONE)
    assert t["tmax_s"][normal].max() < NORMAL_TMAX_S
    assert t["delay_s"][normal].max() <= 1.5
    assert 50.0 < t["cbf_ml_100g_min"][normal & (phantom.anatomy.labels == BrainTissue.GREY_MATTER)].mean() < 70.0


def test_true_tmax_matches_the_analytic_maximum_of_the_impulse_response() -> None:
    mtt = np.array([4.0, 6.0, 15.0, 10.0])
    delay = np.array([0.5, 6.0, 9.0, 2.0])
    ta = np.array([0.7, 2.5, 3.0, 0.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = delay + np.where(ta > 0, ta * mtt / (mtt - ta) * np.log(mtt / ta), 0.0)
    np.testing.assert_allclose(true_tmax_s(mtt, delay, ta, alpha=1.0), expected, atol=TMAX_TOLERANCE_S)


def test_arterial_and_grey_matter_enhancement_are_clinical(phantom: CtpPhantom) -> None:
    assert 300.0 <= phantom.arterial_hu.max() <= 450.0
    hu = phantom.hu.astype(np.float64)
    enhancement = hu - hu[:3].mean(axis=0)
    labels, ischaemia = phantom.anatomy.labels, phantom.anatomy.ischaemia
    grey = (labels == BrainTissue.GREY_MATTER) & (ischaemia == ISCHAEMIA_NONE)
    assert 13.0 <= enhancement[:, grey].mean(axis=1).max() <= 25.0
    artery_peak = enhancement[:, labels == BrainTissue.ARTERY].max(axis=0)
    assert 250.0 < np.percentile(artery_peak, 90) < 480.0
    csf = labels == BrainTissue.CSF
    assert enhancement[:, csf].mean(axis=1).max() < 10.0


def test_venous_curve_has_the_area_of_the_aif(phantom: CtpPhantom) -> None:
    arterial, venous = phantom.arterial_hu, phantom.venous_hu
    assert np.argmax(venous) > np.argmax(arterial)
    assert venous.max() < arterial.max()
    assert np.trapezoid(venous) == pytest.approx(np.trapezoid(arterial), rel=0.01)


def test_noise_has_the_requested_standard_deviation(phantom: CtpPhantom) -> None:
    white = phantom.anatomy.labels == BrainTissue.WHITE_MATTER
    difference = phantom.hu[1].astype(np.float64) - phantom.hu[0]
    assert np.std(difference[white]) == pytest.approx(np.sqrt(2.0) * SPEC.noise_hu, rel=0.15)


def test_spec_rejects_unphysical_acquisitions() -> None:
    with pytest.raises(SimulationParameterError, match="n_frames"):
        CtpSpec((4, 32, 32), (5.0, 2.0, 2.0), n_frames=5)
    with pytest.raises(SimulationParameterError, match="noise_hu"):
        CtpSpec((4, 32, 32), (5.0, 2.0, 2.0), noise_hu=-1.0)


def test_cli_writes_a_ctp_case_that_reads_back(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(ctp_params.CTP_PRESETS, "tiny", SPEC)
    assert main(["--out", str(tmp_path), "--first-seed", str(SEED), "--kind", "ctp", "--preset", "tiny"]) == 0
    case = tmp_path / f"case_{SEED:05d}"
    paths = sorted((case / "dicom").glob("CTP_*.dcm"))
    assert len(paths) == SPEC.n_frames * SPEC.shape[0]
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    assert len({ds.SeriesInstanceUID for ds in headers}) == 1
    assert headers[0].PatientName.family_name == "PHANTOM"
    hu, times_s, grid = read_ctp_series(paths)
    phantom = make_ctp_phantom(SPEC, SEED)
    np.testing.assert_array_equal(hu, phantom.hu)
    np.testing.assert_allclose(times_s, phantom.times_s, atol=1e-6)
    assert grid == phantom.grid
    record = json.loads((case / "ground_truth" / "truth.json").read_text())
    truth = np.load(case / "ground_truth" / "truth.npz")
    assert record["kind"] == "ctp" and record["seed"] == SEED
    voxel_ml = grid.voxel_volume_ml
    assert record["volumes_ml"]["core_ml"] == pytest.approx(truth["core_mask"].sum() * voxel_ml)
    assert record["volumes_ml"]["hypoperfusion_ml"] == pytest.approx(truth["hypoperfusion_mask"].sum() * voxel_ml)
    np.testing.assert_array_equal(truth["tmax_s"], phantom.truth["tmax_s"])


def test_cli_rejects_a_thorax_preset_for_ctp(tmp_path) -> None:
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--kind", "ctp", "--preset", "training"])
