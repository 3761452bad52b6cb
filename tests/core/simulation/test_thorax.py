"""Digital thorax phantom: anatomy, CT numbers and the CT-function ties.

Units: volumes in mL, CT numbers in HU.  Reference ranges:
- adult lung volume on inspiration CT 3.0-7.5 L in total (TLC of adults ~4-7 L; CT volumes
  run somewhat lower), the right lung larger than the left;
- healthy lung parenchyma mean -900..-750 HU at full inspiration.
"""

import numpy as np
import pytest

from core.geometry import Grid
from core.labels import LungLabel, Tissue
from core.simulation.pathology import Pathology
from core.simulation.physiology import PhysiologyParams
from core.simulation.thorax import make_thorax_phantom

GRID = Grid.centred((80, 144, 144), (3.6, 2.8, 2.8))


@pytest.fixture(scope="module")
def cohort():
    return [make_thorax_phantom(GRID, seed) for seed in range(4)]


def test_lung_volumes_in_adult_range(cohort):
    for phantom in cohort:
        right = phantom.lung_volume_ml(LungLabel.RIGHT_LUNG)
        left = phantom.lung_volume_ml(LungLabel.LEFT_LUNG)
        assert 3000.0 <= right + left <= 7500.0, (phantom.seed, right, left)
        assert right > left, (phantom.seed, right, left)


def test_lung_hu_statistics_plausible(cohort):
    for phantom in cohort:
        parenchyma = phantom.hu[phantom.labels == Tissue.LUNG]
        assert -900.0 <= np.median(parenchyma) <= -750.0, phantom.seed
        assert np.percentile(parenchyma, 1) >= -1030.0
        body = phantom.hu[phantom.labels == Tissue.MUSCLE]
        assert 20.0 <= np.median(body) <= 70.0


def test_supine_gradient_dependent_lung_denser_and_better_perfused():
    phantom = make_thorax_phantom(GRID, 11, pathologies=[])
    lung = phantom.labels == Tissue.LUNG
    ys = np.nonzero(lung)[1]
    mid = np.median(ys)
    anterior = phantom.hu[lung & (np.arange(GRID.shape[1])[None, :, None] < mid)].mean()
    posterior = phantom.hu[lung & (np.arange(GRID.shape[1])[None, :, None] > mid)].mean()
    assert posterior - anterior > 20.0
    q, inside = phantom.perfusion, phantom.function_lung_mask > 0
    yq = np.nonzero(inside)[1]
    mid_q = np.median(yq)
    rows = np.arange(q.shape[1])[None, :, None]
    assert q[inside & (rows > mid_q)].mean() > 1.2 * q[inside & (rows < mid_q)].mean()


def test_lung_mask_inside_body_and_excludes_central_airways(cohort):
    for phantom in cohort:
        lung = phantom.lung_mask > 0
        assert not np.any(lung & (phantom.labels == Tissue.OUTSIDE_AIR))
        assert not np.any(lung & (phantom.labels == Tissue.AIRWAY))
        assert not np.any(lung & (phantom.labels == Tissue.TABLE))


def test_deterministic_from_seed():
    a = make_thorax_phantom(GRID, 5)
    b = make_thorax_phantom(GRID, 5)
    c = make_thorax_phantom(GRID, 6)
    np.testing.assert_array_equal(a.hu, b.hu)
    np.testing.assert_array_equal(a.perfusion, b.perfusion)
    assert not np.array_equal(a.hu, c.hu)


def _territory_effect(kind: str):
    healthy = make_thorax_phantom(GRID, 21, pathologies=[], ct_noise_hu=0.0)
    tree = healthy.anatomy.trees["artery_right"]
    segment = int(np.flatnonzero(tree.generation == 3)[0])
    lesion = Pathology(kind, "right", 1.0, segment=segment)
    sick = make_thorax_phantom(GRID, 21, pathologies=[lesion], ct_noise_hu=0.0)
    region = sick.pathology_map > 0
    assert region.sum() > 50, "the territory should cover a segment of lung"
    return healthy, sick, region


def test_embolism_removes_perfusion_keeps_ventilation_and_is_subtle_on_ct():
    healthy, sick, region = _territory_effect("embolism")
    assert sick.perfusion[region].mean() / healthy.perfusion[region].mean() < 0.3
    ratio_v = sick.ventilation[region].mean() / healthy.ventilation[region].mean()
    assert 0.9 < ratio_v < 1.1
    # mosaic attenuation: lower density, by tens of HU only
    lung_ct = (sick.labels == Tissue.LUNG) & (healthy.labels == Tissue.LUNG)
    factors = tuple(round(f / c) for f, c in zip(sick.function_grid.spacing_mm, GRID.spacing_mm))
    region_ct = np.repeat(np.repeat(np.repeat(region, factors[0], 0), factors[1], 1), factors[2], 2)[
        : GRID.shape[0], : GRID.shape[1], : GRID.shape[2]
    ]
    delta = sick.hu[lung_ct & region_ct].mean() - healthy.hu[lung_ct & region_ct].mean()
    assert -80.0 < delta < -5.0


def test_obstruction_matched_ventilation_and_perfusion_reduction():
    healthy, sick, region = _territory_effect("obstruction")
    rv = sick.ventilation[region].mean() / healthy.ventilation[region].mean()
    rq = sick.perfusion[region].mean() / healthy.perfusion[region].mean()
    assert rv < 0.4
    assert rq < 0.8


def _left_share(phantom) -> float:
    """Share of the true perfusion in the left lung (function grid), in percent."""
    lungs = phantom.function_lung_mask
    return 100.0 * phantom.perfusion[lungs == LungLabel.LEFT_LUNG].sum() / phantom.perfusion[lungs > 0].sum()


def test_large_embolism_option_adds_one_lobar_defect_and_leaves_other_draws_alone():
    """Training cohorts add a lobar embolus to some seeds; the seed's own draws must not change."""
    plain = make_thorax_phantom(GRID, 3)
    never = make_thorax_phantom(GRID, 3, large_embolism_probability=0.0)
    always = make_thorax_phantom(GRID, 3, large_embolism_probability=1.0)
    np.testing.assert_array_equal(plain.hu, never.hu)
    assert always.pathologies[: len(plain.pathologies)] == plain.pathologies
    (extra,) = always.pathologies[len(plain.pathologies) :]
    assert extra.kind == "embolism" and extra.severity >= 0.8
    tree = always.anatomy.trees[f"artery_{extra.side}"]
    assert tree.generation[extra.segment] <= 2  # a lobar-size branch, not a segmental one
    # a lobar branch takes at least a tenth of that lung's share of the perfusion away
    before, after = _left_share(plain), _left_share(always)
    change = after - before if extra.side == "left" else before - after
    assert change < -0.1 * (before if extra.side == "left" else 100.0 - before)


def test_large_embolism_probability_is_checked():
    with pytest.raises(ValueError, match="large_embolism_probability"):
        make_thorax_phantom(GRID, 3, large_embolism_probability=1.5)


def _physiology(**changes):
    return PhysiologyParams(**changes)


def test_ct_visible_fields_are_the_truth_when_the_ct_shows_all_heterogeneity():
    """Density texture = the shared field (coupling 1) and perfusion made of it alone (V/Q coupling 1):
    the expectation given the CT is the field itself."""
    phantom = make_thorax_phantom(GRID, 7, physiology=_physiology(density_ventilation_coupling=1.0, vq_coupling=1.0))
    np.testing.assert_allclose(phantom.ventilation_given_ct, phantom.ventilation, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(phantom.perfusion_given_ct, phantom.perfusion, rtol=1e-5, atol=1e-6)


def test_ct_visible_fields_ignore_what_the_ct_cannot_show():
    """Coupling 0: the density texture shares nothing with the function heterogeneity.  Changing its
    strength then changes the true perfusion, but neither the CT nor the CT-visible perfusion, which
    keeps the gravity gradient (rising from anterior to posterior)."""
    weak = make_thorax_phantom(
        GRID, 7, physiology=_physiology(density_ventilation_coupling=0.0, heterogeneity_sigma_q=0.2)
    )
    strong = make_thorax_phantom(
        GRID, 7, physiology=_physiology(density_ventilation_coupling=0.0, heterogeneity_sigma_q=0.4)
    )
    inside = weak.function_lung_mask > 0
    assert np.abs(strong.perfusion - weak.perfusion)[inside].mean() > 0.05
    np.testing.assert_array_equal(strong.hu, weak.hu)
    np.testing.assert_allclose(strong.perfusion_given_ct, weak.perfusion_given_ct, rtol=1e-6)
    rows = np.nonzero(inside)[1]
    means = [weak.perfusion_given_ct[:, y, :][inside[:, y, :]].mean() for y in (rows.min() + 3, rows.max() - 3)]
    assert means[1] > 1.3 * means[0]


def test_ct_visible_fields_are_normalised_and_correlate_partially_with_the_truth(cohort):
    for phantom in cohort:
        inside = phantom.function_lung_mask > 0
        for seen, truth in (
            (phantom.perfusion_given_ct, phantom.perfusion),
            (phantom.ventilation_given_ct, phantom.ventilation),
        ):
            assert seen[inside].mean() == pytest.approx(1.0, abs=1e-4)
            assert np.all(seen[~inside] == 0.0)
            r = np.corrcoef(seen[inside], truth[inside])[0, 1]
            assert 0.3 < r < 0.99, (phantom.seed, r)
