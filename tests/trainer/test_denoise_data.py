"""Slices the denoising network trains on: item shapes, crops around the activity, determinism, body slices, cache.

Synthetic cases: 6 x 128 x 128 volumes holding one Gaussian blob (sigma 8 px) whose amplitude varies by slice.
The CT encodes each pixel's position (``HU = 128 y + x - 500``), so an item's CT channel tells where its window
lies and whether it was mirrored, without repeating the dataset's arithmetic.  Tolerances: normalised values
within float32 rounding (1e-5 relative); centroid within half a pixel of the window centre when jitter is 0.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import center_of_mass

from core.geometry import Grid
from core.nm.denoising import target_of
from trainer.denoise.data import BoneCase, SliceDataset, body_slices, load_case, save_case

SEED = 7
SHAPE = (6, 128, 128)
SPACING_MM = (4.42, 4.42, 4.42)
# slice amplitudes relative to the largest: 0.5 % and 0 are below the 1 % body threshold, 1.5 % is above
AMPLITUDES = (0.005, 0.015, 0.6, 1.0, 0.8, 0.0)
BODY = [1, 2, 3, 4]
CROP = 64
RTOL = 1e-5
HU_OFFSET = -500.0


def make_case(name: str = "case_000", centre: tuple[float, float] = (40.0, 90.0), seed: int = SEED) -> BoneCase:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: SHAPE[1], : SHAPE[2]]
    blob = np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * 8.0**2))
    standard = np.stack([100.0 * a * blob for a in AMPLITUDES]).astype(np.float32)
    fast = rng.poisson(standard / 7.0).astype(np.float32)
    ct_hu = np.broadcast_to(128.0 * yy + xx + HU_OFFSET, SHAPE).astype(np.float32)
    lesions = np.zeros(SHAPE, dtype=bool)
    lesions[:, int(centre[0]) - 2 : int(centre[0]) + 3, int(centre[1]) - 2 : int(centre[1]) + 3] = True
    return BoneCase(name, fast, standard, ct_hu, lesions, Grid.centred(SHAPE, SPACING_MM))


def window_of(inputs: torch.Tensor, case: BoneCase) -> tuple[int, int, bool]:
    """Top-left row and column of the item's window and whether it was mirrored, from the CT channel."""
    attenuation = np.clip(case.ct_hu.astype(np.float64) + 1000.0, 0.0, None)  # the CT channel before its mean
    hu = inputs[1].double().numpy() * attenuation.mean() - 1000.0
    position = np.rint(hu - HU_OFFSET).astype(int)
    y0, x_first = divmod(int(position[0, 0]), SHAPE[2])
    _, x_second = divmod(int(position[0, 1]), SHAPE[2])
    flipped = x_second < x_first
    x0 = x_first - inputs.shape[-1] + 1 if flipped else x_first
    return y0, x0, flipped


@pytest.fixture(scope="module")
def case() -> BoneCase:
    return make_case()


def test_body_slices_drop_slices_below_one_percent(case: BoneCase):
    np.testing.assert_array_equal(body_slices(case), BODY)


@pytest.mark.parametrize(("use_ct", "channels"), [(True, 2), (False, 1)])
def test_item_shapes(case: BoneCase, use_ct: bool, channels: int):
    dataset = SliceDataset([case, make_case("case_001", seed=SEED + 1)], use_ct=use_ct, crop=CROP)
    assert len(dataset) == 2 * len(BODY)
    for i in range(len(dataset)):
        x, y, m = dataset[i]
        assert x.shape == (channels, CROP, CROP)
        assert y.shape == (1, CROP, CROP) and m.shape == (1, CROP, CROP)
        assert x.dtype == y.dtype == m.dtype == torch.float32
        assert set(torch.unique(m).tolist()) <= {0.0, 1.0}


def test_items_are_aligned_crops_of_the_normalised_case(case: BoneCase):
    dataset = SliceDataset([case], crop=CROP, jitter=8, flip=True)
    target = target_of(case.standard)
    fast = case.fast / case.fast.mean(dtype=np.float64)
    flips = set()
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for i, z in enumerate(BODY):
            x, y, m = dataset[i]
            y0, x0, flipped = window_of(x, case)
            flips.add(flipped)
            window = (slice(y0, y0 + CROP), slice(x0, x0 + CROP))
            step = -1 if flipped else 1
            np.testing.assert_allclose(y[0].numpy(), target[z][window][:, ::step], rtol=RTOL)
            np.testing.assert_allclose(x[0].numpy(), fast[z][window][:, ::step], rtol=RTOL, atol=1e-7)
            np.testing.assert_array_equal(m[0].numpy(), case.lesions[z][window][:, ::step].astype(np.float32))
            assert m.sum() == 25  # the 5 x 5 lesion lies inside every window around the blob
    assert flips == {True, False}  # both mirrored and plain items were checked


@pytest.mark.parametrize("centre", [(40.0, 90.0), (64.0, 64.0), (10.0, 120.0)])
def test_window_is_centred_on_the_activity_without_jitter(centre: tuple[float, float]):
    case = make_case(centre=centre)
    dataset = SliceDataset([case], crop=CROP, jitter=0, flip=False)
    half = CROP // 2
    for i, z in enumerate(BODY):
        cy, cx = center_of_mass(case.standard[z].astype(np.float64))
        y0, x0, flipped = window_of(dataset[i][0], case)
        assert not flipped
        assert 0 <= y0 <= SHAPE[1] - CROP and 0 <= x0 <= SHAPE[2] - CROP
        assert y0 <= cy < y0 + CROP and x0 <= cx < x0 + CROP
        # centred where the image allows it, otherwise pushed against the border
        for start, c, n in ((y0, cy, SHAPE[1]), (x0, cx, SHAPE[2])):
            if half <= c <= n - half:
                assert abs(start + half - c) <= 0.5
            else:
                assert start == (0 if c < half else n - CROP)


def test_jitter_keeps_the_centroid_inside_and_moves_the_window():
    case = make_case(centre=(64.0, 64.0))
    jitter = 8
    dataset = SliceDataset([case], crop=CROP, jitter=jitter, flip=False)
    offsets = set()
    for epoch in range(4):
        dataset.set_epoch(epoch)
        for i in range(len(dataset)):
            y0, x0, _ = window_of(dataset[i][0], case)
            dy, dx = y0 + CROP // 2 - 64, x0 + CROP // 2 - 64
            assert abs(dy) <= jitter and abs(dx) <= jitter
            offsets.add((dy, dx))
    assert len(offsets) > 1


def test_same_index_and_epoch_give_the_same_item(case: BoneCase):
    first = SliceDataset([case], crop=CROP, seed=3)
    second = SliceDataset([case], crop=CROP, seed=3)
    first.set_epoch(2)
    second.set_epoch(2)
    for i in range(len(first)):
        for a, b, c in zip(first[i], first[i], second[i], strict=True):
            assert torch.equal(a, b) and torch.equal(a, c)


def test_another_epoch_draws_another_crop_or_flip(case: BoneCase):
    dataset = SliceDataset([case], crop=CROP, seed=3)
    before = [window_of(dataset[i][0], case) for i in range(len(dataset))]
    dataset.set_epoch(1)
    after = [window_of(dataset[i][0], case) for i in range(len(dataset))]
    assert before != after


def test_crop_larger_than_the_image_gives_the_whole_slice(case: BoneCase):
    """Documented behaviour: the window is clipped at 0 and numpy slicing stops at the border, so items are the
    whole 128 x 128 slice, not crop x crop (the dataset does not pad)."""
    dataset = SliceDataset([case], crop=160, jitter=8, flip=False)
    x, y, m = dataset[0]
    assert x.shape == (2, *SHAPE[1:]) and y.shape == (1, *SHAPE[1:]) and m.shape == (1, *SHAPE[1:])
    np.testing.assert_allclose(y[0].numpy(), target_of(case.standard)[BODY[0]], rtol=RTOL)


def test_save_and_load_round_trip(tmp_path: Path, case: BoneCase):
    path = tmp_path / "case_003.npz"
    save_case(path, case)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case_003.npz"]  # the partial file was renamed
    loaded = load_case(path)
    assert loaded.name == "case_003"
    assert loaded.grid == case.grid
    for field in ("fast", "standard", "ct_hu", "lesions"):
        original, restored = getattr(case, field), getattr(loaded, field)
        assert restored.dtype == original.dtype
        np.testing.assert_array_equal(restored, original)
