"""Functional volumes (seed 000 threshold) and regional quantification, with values worked out by hand."""

import numpy as np
import pytest

from core.errors import InputDataError
from core.geometry import Grid
from core.labels import LungLabel
from core.lung.quantification import functional_volumes, lung_box, quantify_regions, zone_labels

GRID = Grid((12, 4, 8), (2.0, 5.0, 10.0), (0.0, 0.0, 0.0))  # voxel 0.1 mL


def _lungs():
    labels = np.zeros(GRID.shape, dtype=np.uint8)
    labels[:, :, :4] = LungLabel.RIGHT_LUNG  # x columns 0-3: 12 x 4 x 4 = 192 voxels
    labels[3:, :, 4:] = LungLabel.LEFT_LUNG  # slices 3-11: 9 x 4 x 4 = 144 voxels
    return labels


def test_functional_volumes_normalise_each_lung_by_its_own_p75():
    labels = _lungs()
    perfusion = np.zeros(GRID.shape, dtype=np.float32)
    right, left = labels == LungLabel.RIGHT_LUNG, labels == LungLabel.LEFT_LUNG
    # right lung: half at 1.0, half at 0.5 -> P75 = 1.0, 0.5 < 0.66 is low
    perfusion[right] = np.where(np.arange(right.sum()) % 2 == 0, 1.0, 0.5)
    # left lung: ten times hotter but the same pattern -> the same split (per-lung normalisation)
    perfusion[left] = np.where(np.arange(left.sum()) % 2 == 0, 10.0, 5.0)
    volumes = functional_volumes(perfusion, labels)
    assert volumes.high.sum() == 96 + 72 and volumes.low.sum() == 96 + 72
    assert not (volumes.high & volumes.low).any() and not volumes.high[labels == 0].any()
    # 0.7 of P75 is high, 0.6 is low
    perfusion[right] = np.where(
        np.arange(right.sum()) % 4 == 0, 0.6, np.where(np.arange(right.sum()) % 4 == 1, 0.7, 1.0)
    )
    volumes = functional_volumes(perfusion, labels)
    assert (volumes.low & right).sum() == 48 and (volumes.high & right).sum() == 144


def test_zones_are_thirds_of_each_lung_cranio_caudal_extent():
    zones = zone_labels(_lungs())
    assert list(zones) == [
        "right upper", "right middle", "right lower", "left upper", "left middle", "left lower"
    ]  # fmt: skip
    # right lung spans slices 0-11 (index grows towards the head): lower 0-3, middle 4-7, upper 8-11
    assert np.flatnonzero(zones["right lower"].any(axis=(1, 2))).tolist() == [0, 1, 2, 3]
    assert np.flatnonzero(zones["right upper"].any(axis=(1, 2))).tolist() == [8, 9, 10, 11]
    # left lung spans slices 3-11: thirds of 3 slices
    assert np.flatnonzero(zones["left lower"].any(axis=(1, 2))).tolist() == [3, 4, 5]
    assert np.flatnonzero(zones["left middle"].any(axis=(1, 2))).tolist() == [6, 7, 8]
    total = sum(z.astype(int) for z in zones.values())
    assert total.max() == 1 and total.sum() == (_lungs() > 0).sum()


def test_regional_shares_volumes_and_vq_by_hand():
    labels = _lungs()
    right, left = labels == LungLabel.RIGHT_LUNG, labels == LungLabel.LEFT_LUNG
    perfusion = np.where(right, 1.0, np.where(left, 2.0, 0.0)).astype(np.float32)  # right 192, left 288
    ventilation = np.where(labels > 0, 1.0, 0.0).astype(np.float32)  # right 192, left 144
    stats = {s.region: s for s in quantify_regions(perfusion, ventilation, labels, GRID)}
    assert list(stats)[:3] == ["both lungs", "right", "left"] and len(stats) == 9
    assert stats["both lungs"].perfusion_percent == pytest.approx(100.0)
    assert stats["right"].perfusion_percent == pytest.approx(100 * 192 / 480)
    assert stats["left"].ventilation_percent == pytest.approx(100 * 144 / 336)
    assert stats["right"].vq_ratio == pytest.approx((192 / 336) / (192 / 480))
    assert stats["right"].volume_ml == pytest.approx(19.2) and stats["left"].volume_ml == pytest.approx(14.4)
    zones = [s for name, s in stats.items() if " " in name and name != "both lungs"]
    assert sum(z.perfusion_percent for z in zones) == pytest.approx(100.0, abs=1e-6)
    assert sum(z.ventilation_percent for z in zones) == pytest.approx(100.0, abs=1e-6)
    # uniform maps: the whole lung is at its own P75, so all of it is high-function
    assert stats["left"].high_perfusion_ml == pytest.approx(14.4) and stats["left"].low_perfusion_ml == 0.0
    assert stats["right upper"].perfusion_percent == pytest.approx(100 * 64 / 480)


def test_bad_inputs_say_what_is_wrong():
    labels = _lungs()
    ones = np.ones(GRID.shape, dtype=np.float32)
    with pytest.raises(InputDataError, match="no lung"):
        quantify_regions(ones, ones, np.zeros_like(labels), GRID)
    with pytest.raises(InputDataError, match="non-negative"):
        quantify_regions(-ones, ones, labels, GRID)
    with pytest.raises(InputDataError, match="shape"):
        quantify_regions(ones[:-1], ones, labels, GRID)


def test_lung_box_is_the_bounding_box_of_the_lung_labels_only() -> None:
    rng = np.random.default_rng(5)
    labels = np.zeros((20, 30, 40), dtype=np.uint8)
    labels[3:9, 5:22, 7:12] = rng.integers(0, 3, size=(6, 17, 5))
    labels[12, 25, 30] = LungLabel.LEFT_LUNG
    labels[0, 0, 0] = 7  # not a lung label: outside the box
    lungs = np.argwhere(np.isin(labels, [LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG]))
    expected = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(lungs.min(axis=0), lungs.max(axis=0)))
    assert lung_box(labels) == expected
    assert lung_box(np.zeros((4, 5, 6), dtype=np.uint8)) is None
