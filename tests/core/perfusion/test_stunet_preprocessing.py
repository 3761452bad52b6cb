"""Seed 004 preprocessing for the stU-Net: brain crop and paste, time resampling, standardisation, strips.

Tolerances: ``EXACT_ATOL`` for float32 copies and linear interpolation of functions that linear interpolation
reproduces (ramps in space or time; float32 rounding of values up to about 100); ``STAT_ATOL`` for means and SDs of
standardised float32 values.
"""

import numpy as np
import pytest

from core.errors import InputDataError
from core.perfusion.stunet_preprocessing import (
    CLIP,
    BrainCrop,
    assemble_strips,
    extract_strips,
    prepare_dsc,
    prepare_map,
    resample_frames,
    standardise_dsc,
    standardise_map,
    strip_positions,
)

EXACT_ATOL = 1e-4
STAT_ATOL = 1e-4
NZ, NY, NX = 3, 40, 50


def ellipse_mask(cy: float = 22.0, cx: float = 24.0, ry: float = 12.0, rx: float = 9.0) -> np.ndarray:
    y, x = np.mgrid[:NY, :NX]
    return np.broadcast_to(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0, (NZ, NY, NX)).copy()


def ramp() -> np.ndarray:
    z, y, x = np.mgrid[:NZ, :NY, :NX].astype(np.float32)
    return 3.0 * z + 0.5 * y - 0.25 * x + 1.0


def test_crop_is_a_square_around_the_brain_with_its_margin():
    mask = ellipse_mask()
    crop = BrainCrop.around(mask, size=32, margin_voxels=3)
    rows = np.flatnonzero(mask.any(axis=(0, 2)))
    cols = np.flatnonzero(mask.any(axis=(0, 1)))
    assert crop.side == max(np.ptp(rows), np.ptp(cols)) + 1 + 2 * 3
    assert crop.y0 <= rows[0] - 3 and crop.y0 + crop.side >= rows[-1] + 4
    assert crop.x0 <= cols[0] and crop.x0 + crop.side >= cols[-1] + 1
    assert crop.y0 >= 0 and crop.y0 + crop.side <= NY and crop.x0 >= 0 and crop.x0 + crop.side <= NX
    assert crop.apply(mask).shape == (NZ, 32, 32)


def test_crop_and_paste_round_trip_without_resampling():
    mask = ellipse_mask()
    crop = BrainCrop.around(mask, size=31, margin_voxels=3)
    assert crop.side == 31
    image = np.random.default_rng(0).normal(size=(NZ, NY, NX)).astype(np.float32)
    back = crop.paste(crop.apply(image))
    inside = np.zeros((NY, NX), bool)
    inside[crop.y0 : crop.y0 + crop.side, crop.x0 : crop.x0 + crop.side] = True
    np.testing.assert_array_equal(back[:, inside], image[:, inside])
    assert not back[:, ~inside].any()
    np.testing.assert_array_equal(crop.apply_mask(mask), crop.apply(mask) >= 0.5)


@pytest.mark.parametrize("size", [16, 64])
def test_crop_and_paste_round_trip_of_a_ramp_with_resampling(size):
    crop = BrainCrop.around(ellipse_mask(), size=size, margin_voxels=2)
    image = ramp()
    cropped = crop.apply(image)
    assert cropped.shape == (NZ, size, size) and cropped.dtype == np.float32
    back = crop.paste(cropped)
    window = (slice(None), slice(crop.y0, crop.y0 + crop.side), slice(crop.x0, crop.x0 + crop.side))
    np.testing.assert_allclose(back[window], image[window], atol=EXACT_ATOL)


def test_paste_inside_does_not_dilute_the_brain_edge():
    mask = ellipse_mask()
    crop = BrainCrop.around(mask, size=24, margin_voxels=2)
    brain = crop.apply_mask(mask)
    constant = np.where(brain, 3.0, 0.0).astype(np.float32)
    inside = crop.paste_inside(constant, brain)
    covered = crop.paste(brain.astype(np.float32)) > 1e-6
    np.testing.assert_allclose(inside[covered], 3.0, atol=EXACT_ATOL)
    assert mask[covered].mean() > 0.5 and not inside[~covered].any()
    assert crop.paste(constant)[mask].min() < 3.0 - 0.1  # plain paste blends the edge with the zeros outside


def test_square_larger_than_the_image_is_zero_padded_and_pasted_back():
    mask = np.zeros((1, 20, 30), bool)
    mask[0, 1:19, 4:24] = True  # 18 x 20 brain: a side of 20 + 2 * 3 > 20 rows
    crop = BrainCrop.around(mask, size=26, margin_voxels=3)
    assert crop.side == 26 and crop.y0 == -3 and 0 <= crop.x0 <= 4
    image = np.arange(600, dtype=np.float32).reshape(1, 20, 30) + 1.0
    cropped = crop.apply(image)
    assert (cropped[0, :3] == 0).all() and (cropped[0, 23:] == 0).all() and (cropped[0, 3:23] > 0).all()
    columns = slice(crop.x0, crop.x0 + 26)
    np.testing.assert_array_equal(crop.paste(cropped)[0, :, columns], image[0, :, columns])


def test_empty_mask_raises():
    with pytest.raises(InputDataError, match="empty"):
        BrainCrop.around(np.zeros((2, 8, 8), bool), size=8)


def test_resample_frames_identity_interpolation_and_last_frame_padding():
    times = np.arange(10) * 1.5
    signal = (2.0 * times[:, None] + np.arange(4)[None]).astype(np.float32)
    np.testing.assert_array_equal(resample_frames(signal, times, 10, 1.5), signal)
    fine = resample_frames(signal, times, 19, 0.75)
    np.testing.assert_allclose(fine, 2.0 * (np.arange(19) * 0.75)[:, None] + np.arange(4)[None], atol=EXACT_ATOL)
    padded = resample_frames(signal, times, 16, 1.5)
    np.testing.assert_array_equal(padded[:10], signal)
    np.testing.assert_array_equal(padded[10:], np.repeat(signal[-1:], 6, axis=0))
    with pytest.raises(InputDataError, match="increasing"):
        resample_frames(signal, times[::-1], 10, 1.5)


def test_dsc_standardised_by_the_brain_baseline_and_clipped():
    rng = np.random.default_rng(1)
    mask = ellipse_mask()[0]
    dsc = rng.normal(500.0, 20.0, size=(12, NY, NX)).astype(np.float32)
    dsc[6:] -= 50.0  # the bolus after the baseline
    dsc[:, ~mask] = 0.0  # dark background
    out = standardise_dsc(dsc, mask)
    baseline = out[:5][:, mask]
    assert abs(baseline.mean()) < STAT_ATOL and abs(baseline.std() - 1.0) < STAT_ATOL
    assert out.min() == -CLIP and out.max() <= CLIP and out.dtype == np.float32
    np.testing.assert_allclose(out[6:][:, mask].mean(), -50.0 / dsc[:5][:, mask].std(), rtol=0.05)


def test_map_standardised_by_its_brain_voxels():
    mask = ellipse_mask()
    cbv = np.where(mask, ramp(), 1e4).astype(np.float32)
    out = standardise_map(cbv, mask)
    assert abs(out[mask].mean()) < STAT_ATOL and abs(out[mask].std() - 1.0) < STAT_ATOL
    assert (out[~mask] == CLIP).all()


def test_prepare_dsc_and_map_shapes():
    mask = ellipse_mask()
    signal = np.random.default_rng(2).normal(300.0, 10.0, size=(20, NZ, NY, NX)).astype(np.float32)
    prepared = prepare_dsc(signal, np.arange(20) * 2.0, mask, size=16, frames=8, frame_step_s=1.0, margin_voxels=2)
    assert prepared.dsc.shape == (8, NZ, 16, 16) and prepared.brain.shape == (NZ, 16, 16)
    assert prepared.brain.any() and np.abs(prepared.dsc).max() <= CLIP
    assert prepare_map(ramp(), prepared.crop, prepared.brain).shape == (NZ, 16, 16)


@pytest.mark.parametrize(("strip_shape", "stride"), [((8, 32), 1), ((8, 32), 8), ((8, 32), 5), ((12, 20), 3)])
def test_strips_cover_the_image_and_assemble_to_identity(strip_shape, stride):
    image = np.random.default_rng(3).normal(size=(32, 32)).astype(np.float32)
    positions = strip_positions(32, 32, strip_shape, stride)
    assert positions[:, 0].max() == 32 - strip_shape[0] and positions[:, 1].max() == 32 - strip_shape[1]
    strips = extract_strips(image, positions, strip_shape)
    assert strips.shape == (len(positions), *strip_shape)
    np.testing.assert_allclose(assemble_strips(strips, positions, (32, 32)), image, atol=1e-6)


def test_strips_of_a_sequence_and_averaging_of_overlaps():
    sequence = np.arange(2 * 16 * 16, dtype=np.float32).reshape(2, 16, 16)
    positions = strip_positions(16, 16, (8, 16), 4)
    assert positions.tolist() == [[0, 0], [4, 0], [8, 0]]
    assert extract_strips(sequence, positions, (8, 16)).shape == (3, 2, 8, 16)
    ones = np.stack([np.full((8, 16), v, np.float32) for v in (1.0, 2.0, 3.0)])
    assembled = assemble_strips(ones, positions, (16, 16))
    assert assembled[0, 0] == 1.0 and assembled[5, 0] == 1.5 and assembled[9, 0] == 2.5 and assembled[15, 0] == 3.0
    with pytest.raises(ValueError, match="do not fit"):
        strip_positions(16, 16, (32, 16), 1)
