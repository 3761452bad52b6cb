"""The brain-tumour DSC phantom: determinism, dose, signal physics and truth."""

import numpy as np
import pytest

from core.errors import SimulationParameterError
from core.labels import BrainTissue
from core.simulation.dsc_params import DscSpec, TumourParams
from core.simulation.dsc_phantom import TUMOUR_ENHANCING, make_dsc_phantom

SPEC = DscSpec((4, 96, 96), (5.0, 2.2, 2.2), n_frames=40, aif_kind="gamma")
TUMOUR = TumourParams(centre_mm=(0.0, 0.0, 30.0), semi_axes_mm=(12.0, 14.0, 12.0), necrotic_fraction=0.3)


@pytest.fixture(scope="module")
def full():
    return make_dsc_phantom(SPEC, 7, tumour=TUMOUR)


def test_same_seed_same_phantom(full):
    again = make_dsc_phantom(SPEC, 7, tumour=TUMOUR)
    np.testing.assert_array_equal(again.signal, full.signal)


def test_half_dose_shares_patient_and_noise(full):
    half = make_dsc_phantom(SPEC, 7, dose=0.5, tumour=TUMOUR)
    np.testing.assert_array_equal(half.s0, full.s0)
    for name in full.truth:
        np.testing.assert_array_equal(half.truth[name], full.truth[name])
    # before the bolus nothing depends on the dose: same signal, same noise
    np.testing.assert_array_equal(half.signal[:5], full.signal[:5])
    drop_full = full.s0[full.tissue_mask].mean() - full.signal[:, full.tissue_mask].mean(axis=1).min()
    drop_half = half.s0[half.tissue_mask].mean() - half.signal[:, half.tissue_mask].mean(axis=1).min()
    assert 0.4 < drop_half / drop_full < 0.6  # exp(-x/2) vs exp(-x): a little more than half the drop


def test_signal_drop_is_realistic(full):
    """Grey matter loses 15-40 % of its signal at the bolus peak at TE 30 ms; arteries lose most of theirs."""
    grey = full.anatomy.labels == BrainTissue.GREY_MATTER
    curve = full.signal[:, grey].mean(axis=1)
    drop = 1.0 - curve.min() / curve[:5].mean()
    assert 0.15 < drop < 0.40
    artery = full.anatomy.labels == BrainTissue.ARTERY
    assert full.signal[:, artery].mean(axis=1).min() < 0.4 * full.s0[artery].mean()


def test_tumour_has_high_blood_volume(full):
    cbv = full.truth["cbv_ml_100g"]
    enhancing = full.tumour_regions == TUMOUR_ENHANCING
    assert enhancing.sum() > 50
    white = (full.anatomy.labels == BrainTissue.WHITE_MATTER) & (full.tumour_regions == 0)
    assert cbv[enhancing].mean() > 3.0 * cbv[white].mean()
    assert np.all(cbv[~full.tissue_mask] == 0)
    mtt = full.truth["mtt_s"][full.tissue_mask]
    cbf = full.truth["cbf_ml_100g_min"][full.tissue_mask]
    np.testing.assert_allclose(cbv[full.tissue_mask], cbf * mtt / 60.0, rtol=1e-4)


def test_dose_out_of_range():
    with pytest.raises(SimulationParameterError, match="dose"):
        make_dsc_phantom(SPEC, 1, dose=0.0)
