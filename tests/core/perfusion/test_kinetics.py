"""Seed 002 Eqs. 3-7: AIFs, residue function, dispersion and the simulated curves.

Tolerances: areas and CBV within 1 % (0.1 s fine grid, trapezoidal areas); times within one fine step.
"""

import numpy as np
import pytest
from scipy.special import gamma as gamma_fn

from core.errors import SimulationParameterError
from core.perfusion.aif import AifShape, gamma_variate_aif, parker_aif, random_aif_shape, scaled_aif
from core.perfusion.datasets import TABLE1, table1_parameters, training_parameters
from core.perfusion.residue import dispersion_kernel, residue_function
from core.perfusion.simulation import KAPPA, CurveParameters, simulate_curves

T_FINE = np.arange(0.0, 200.0, 0.01)


def _one(**overrides):
    values = {
        "aif_kind": "gamma",
        "aif_time_scale": 1.0,
        "aif_value_scale": 1.0,
        "cbf_ml_100g_min": 60.0,
        "mtt_s": 4.0,
        "alpha": 1.0,
        "delay_s": 0.0,
        "ta_s": 0.0,
        "dt_s": 1.0,
        "n_frames": 150,
        "snr_db": 300.0,
    }
    values.update(overrides)
    return CurveParameters(**{k: np.asarray([v]) for k, v in values.items()})


def test_gamma_variate_peaks_where_the_formula_says():
    aif = gamma_variate_aif(T_FINE, t0_s=5.0, b=3.0, tau_s=1.5, peak=6.0)
    assert T_FINE[np.argmax(aif)] == pytest.approx(5.0 + 3.0 * 1.5, abs=0.01)
    assert aif.max() == pytest.approx(6.0, rel=1e-4)
    assert np.all(aif[T_FINE <= 5.0] == 0)
    # integral of a t^b e^{-t/tau} is a tau^{b+1} Gamma(b+1)
    a = 6.0 / ((4.5) ** 3 * np.exp(-3.0))
    assert np.trapezoid(aif, T_FINE) == pytest.approx(a * 1.5**4 * gamma_fn(4.0), rel=1e-4)


def test_parker_first_pass_peak_and_recirculation():
    aif = parker_aif(T_FINE)
    assert T_FINE[np.argmax(aif)] == pytest.approx(0.17046 * 60, abs=0.3)
    assert 5.0 < aif.max() < 7.0  # Parker et al.: first pass ~6 mM
    assert aif[T_FINE == 100.0] == pytest.approx(1.050 * np.exp(-0.1685 * 100 / 60), rel=0.02)


def test_scaling_stretches_time_and_value():
    base = AifShape("gamma")
    scaled = AifShape("gamma", time_scale=1.3, value_scale=0.7)
    area = np.trapezoid(scaled_aif(base, T_FINE), T_FINE)
    assert np.trapezoid(scaled_aif(scaled, T_FINE), T_FINE) == pytest.approx(area * 1.3 * 0.7, rel=1e-4)
    shape = random_aif_shape(np.random.default_rng(0))
    assert 0.7 <= shape.time_scale <= 1.3 and 0.7 <= shape.value_scale <= 1.3
    with pytest.raises(SimulationParameterError, match="kind"):
        AifShape("boxcar")  # type: ignore[arg-type]


@pytest.mark.parametrize("alpha", [0.5, 1.0, 100.0])
def test_residue_starts_at_cbf_and_integrates_to_cbf_times_mtt(alpha):
    r = residue_function(T_FINE, 60.0, 6.0, alpha)
    assert r[0] == pytest.approx(60.0)
    assert np.all(np.diff(r) <= 1e-12)
    assert np.trapezoid(r, T_FINE) == pytest.approx(60.0 * 6.0, rel=0.01)


def test_residue_shapes_exponential_and_boxcar():
    assert residue_function(6.0, 1.0, 6.0, 1.0) == pytest.approx(np.exp(-1.0))
    assert residue_function(4.5, 1.0, 6.0, 100.0) > 0.98  # gamma sd = sqrt(alpha) beta = 0.6 s
    assert residue_function(7.5, 1.0, 6.0, 100.0) < 0.02


def test_dispersion_kernel_keeps_area_and_has_mean_ta():
    t = np.arange(0.0, 100.0, 0.1)
    k = dispersion_kernel(t, 3.0)
    assert k.sum() * 0.1 == pytest.approx(1.0)
    assert (t * k).sum() * 0.1 == pytest.approx(3.0, abs=0.1)
    assert dispersion_kernel(t, 0.0)[0] == pytest.approx(10.0)
    with pytest.raises(SimulationParameterError):
        dispersion_kernel(t, -1.0)


def test_noise_free_curve_holds_the_central_volume_theorem():
    params = _one(cbf_ml_100g_min=40.0, mtt_s=6.0, delay_s=3.0, ta_s=2.0)
    curves = simulate_curves(params, np.random.default_rng(0))
    ratio = np.trapezoid(curves.tissue_clean[0]) / np.trapezoid(curves.global_aif[0])
    # CBV = CBF x MTT = 4 ml/100 g; kappa C = C_a (x) R, so area ratio x kappa x 100 = CBV
    assert ratio * KAPPA * 100 == pytest.approx(4.0, rel=0.01)
    assert np.trapezoid(curves.local_aif[0]) == pytest.approx(np.trapezoid(curves.global_aif[0]), rel=0.01)
    assert curves.residue[0, 0] == pytest.approx(40.0)


def test_delay_shifts_the_local_aif():
    curves = simulate_curves(_one(delay_s=7.0), np.random.default_rng(0))
    shift = np.argmax(curves.local_aif[0]) - np.argmax(curves.global_aif[0])
    assert shift == 7


def test_dispersion_lowers_and_delays_the_peak():
    sharp = simulate_curves(_one(ta_s=0.0), np.random.default_rng(0))
    wide = simulate_curves(_one(ta_s=4.0), np.random.default_rng(0))
    assert wide.local_aif[0].max() < 0.7 * sharp.local_aif[0].max()
    assert np.argmax(wide.local_aif[0]) > np.argmax(sharp.local_aif[0])


@pytest.mark.parametrize("snr_db", [10.0, 20.0])
def test_noise_has_the_requested_snr(snr_db):
    n = 400
    params = CurveParameters(**{k: np.repeat(v, n) for k, v in vars(_one(snr_db=snr_db)).items()})
    curves = simulate_curves(params, np.random.default_rng(1))
    noise = curves.tissue - curves.tissue_clean
    measured = 10 * np.log10((curves.tissue_clean**2).mean() / noise.var())
    assert measured == pytest.approx(snr_db, abs=0.2)


def test_variable_lengths_are_padded_with_zeros():
    params = training_parameters(np.random.default_rng(2), 50)
    curves = simulate_curves(params, np.random.default_rng(3))
    assert curves.tissue.shape == (50, params.n_frames.max())
    for row, length in enumerate(curves.lengths):
        assert np.all(curves.tissue[row, length:] == 0)
        assert np.isclose(curves.t_s[row, length - 1], (length - 1) * params.dt_s[row])


def test_training_distribution_respects_the_seed_ranges():
    p = training_parameters(np.random.default_rng(0), 5000)
    assert p.n_frames.min() >= 45 and p.n_frames.max() <= 120
    assert p.dt_s.min() >= 1.0 and p.dt_s.max() <= 2.0
    assert p.alpha.min() >= 0.5 and p.alpha.max() <= 100
    assert set(np.unique(p.aif_kind)) == {"gamma", "parker"}


def test_table1_datasets_vary_one_thing_each():
    rng = np.random.default_rng(0)
    for dataset in TABLE1:
        p = table1_parameters(dataset, rng, 700)
        np.testing.assert_allclose(p.cbv_ml_100g, 4.0)
        assert np.all(p.dt_s * p.n_frames <= 80.0 + 1e-9)
        levels = np.unique(getattr(p, dataset.variable))
        assert len(levels) == len(dataset.levels)
    d2 = table1_parameters(TABLE1[1], rng, 110)
    np.testing.assert_array_equal(np.unique(d2.delay_s), np.arange(11.0))
    assert np.all(d2.snr_db == 20.0)


def test_parameters_out_of_range_are_refused():
    with pytest.raises(SimulationParameterError, match="mtt_s"):
        _one(mtt_s=0.0)
    with pytest.raises(SimulationParameterError, match="length"):
        CurveParameters(**{k: (v if k != "alpha" else np.ones(2)) for k, v in vars(_one()).items()})
