"""Core (relative CBF < 30 %) and hypoperfusion (Tmax > 6 s) from perfusion maps."""

import numpy as np
import pytest

from core.errors import InputDataError
from core.perfusion.lesions import measured_lesions, stroke_lesions, without_small_islands


def _maps():
    cbf = np.full((4, 10, 10), 50.0)
    tmax = np.full((4, 10, 10), 2.0)
    tissue = np.ones((4, 10, 10), dtype=bool)
    tmax[:, :, 5:] = 8.0  # hypoperfused half: 200 voxels
    cbf[:, :3, 5:] = 10.0  # 60 voxels below 30 % of the normal 50
    cbf[:, :3, :2] = 10.0  # low flow but normal Tmax: not core
    return cbf, tmax, tissue


def test_core_and_hypoperfusion_voxels_and_volumes():
    cbf, tmax, tissue = _maps()
    lesions = stroke_lesions(cbf, tmax, tissue)
    assert lesions.hypoperfusion.sum() == 200
    assert lesions.core.sum() == 60
    # normal tissue: 200 voxels, 24 of them at CBF 10, the rest at 50
    assert lesions.reference_cbf_ml_100g_min == pytest.approx((176 * 50 + 24 * 10) / 200)
    volumes = lesions.volumes_ml(0.5)
    assert volumes == pytest.approx(
        {"core_ml": 30.0, "hypoperfusion_ml": 100.0, "mismatch_ml": 70.0, "mismatch_ratio": 100 / 30}
    )


def test_voxels_outside_the_tissue_mask_are_never_lesions():
    cbf, tmax, tissue = _maps()
    tissue[:, :, 8:] = False
    lesions = stroke_lesions(cbf, tmax, tissue)
    assert not lesions.core[:, :, 8:].any() and not lesions.hypoperfusion[:, :, 8:].any()


def test_no_core_gives_an_infinite_mismatch_ratio():
    cbf, tmax, tissue = _maps()
    lesions = stroke_lesions(np.full_like(cbf, 50.0), tmax, tissue)
    assert lesions.volumes_ml(1.0)["mismatch_ratio"] == float("inf")


def test_no_normal_tissue_and_shape_mismatch_are_refused():
    cbf, tmax, tissue = _maps()
    with pytest.raises(InputDataError, match="no normal CBF"):
        stroke_lesions(cbf, np.full_like(tmax, 9.0), tissue)
    with pytest.raises(InputDataError, match="shape"):
        stroke_lesions(cbf[:2], tmax, tissue)


def test_islands_below_the_volume_are_removed():
    mask = np.zeros((3, 10, 10), dtype=bool)
    mask[:, :4, :4] = True  # 48 voxels
    mask[1, 8, 8] = True  # 1 voxel
    kept = without_small_islands(mask, voxel_volume_ml=0.1, min_ml=0.5)
    assert kept.sum() == 48 and not kept[1, 8, 8]
    assert without_small_islands(mask, 0.1, 0.0).sum() == 49


def test_measured_lesions_drop_islands_and_keep_the_core_inside_the_hypoperfusion():
    cbf, tmax, tissue = _maps()
    tmax[1, 8, 1] = 8.0  # a lone hypoperfused voxel in normal tissue: noise
    cbf[1, 8, 1] = 5.0
    lesions = measured_lesions(cbf, tmax, tissue, voxel_volume_ml=0.1, min_ml=0.5)
    assert not lesions.hypoperfusion[1, 8, 1] and not lesions.core[1, 8, 1]
    assert lesions.hypoperfusion.sum() == 200 and lesions.core.sum() == 60
    # the low-flow voxels with a normal Tmax stay out of the core
    assert not lesions.core[:, :3, :2].any()
    # without the island removal the lone voxel is both hypoperfused and core
    assert measured_lesions(cbf, tmax, tissue, 0.1, 0.0).core[1, 8, 1]


def test_measured_lesions_fill_noise_holes_inside_a_hypoperfused_territory():
    cbf, tmax, tissue = _maps()
    tmax[2, 1, 7] = 3.0  # a core voxel whose noisy Tmax fell below 6 s, enclosed by hypoperfusion
    tmax[2, 6, 7] = 3.0  # a penumbra voxel likewise
    tissue[0, 6, 7] = False  # a vessel inside the territory: not tissue, never a lesion
    tmax[0, 6, 7] = 3.0
    tmax[3, 0, 9] = 3.0  # on the slice's edge: not enclosed, not filled
    raw = stroke_lesions(cbf, tmax, tissue)
    assert not raw.core[2, 1, 7] and not raw.hypoperfusion[2, 6, 7]
    lesions = measured_lesions(cbf, tmax, tissue, voxel_volume_ml=0.1, min_ml=0.5)
    assert lesions.core[2, 1, 7] and lesions.hypoperfusion[2, 6, 7] and not lesions.core[2, 6, 7]
    assert not lesions.hypoperfusion[0, 6, 7] and not lesions.hypoperfusion[3, 0, 9]
    # less the vessel and the unenclosed edge voxel (a core voxel: its CBF is 10)
    assert lesions.hypoperfusion.sum() == 200 - 2 and lesions.core.sum() == 60 - 1
    assert lesions.reference_cbf_ml_100g_min == raw.reference_cbf_ml_100g_min
