"""Seed 003's loss: SSIM map, lesion-attention loss and deep supervision against independent computations.

The reference SSIM is written here in numpy/scipy from Wang et al. (IEEE TIP 13:600, 2004): Gaussian window
11 wide (sigma 1.5; scipy's radius is ``int(truncate * sigma + 0.5)`` = 5 with ``truncate = 5 / 1.5``),
``k1 = 0.01``, ``k2 = 0.03``, ``L`` = max - min of each target slice.  Borders: the module pads by
whole-sample reflection (``d c b | a b c d``, torch's and numpy's "reflect"), which is scipy's ``mode="mirror"``.
Tolerances: float32 module against float64 reference within ``ATOL`` = 1e-4 (loss) and 1e-5 (SSIM of an
image with itself), float64 module against the reference within 1e-9; the lesion factor ``1 + beta`` within
1e-5 relative.
"""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from trainer.denoise.losses import deep_supervision_loss, lesion_attention_loss, ssim_map

SEED = 3
SIGMA = 1.5
RADIUS = 5  # 11-wide window
K1, K2 = 0.01, 0.03
ATOL = 1e-4
SELF_ATOL = 1e-5
FLOAT64_ATOL = 1e-9


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def reference_ssim(p: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two ``(H, W)`` float64 images, data range from ``s``."""
    data_range = s.max() - s.min()
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return gaussian_filter(x, SIGMA, mode="mirror", truncate=RADIUS / SIGMA)

    mu_p, mu_s = blur(p), blur(s)
    var_p = blur(p * p) - mu_p**2
    var_s = blur(s * s) - mu_s**2
    cov = blur(p * s) - mu_p * mu_s
    return ((2 * mu_p * mu_s + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_s**2 + c1) * (var_p + var_s + c2))


def images(shape: tuple[int, ...] = (2, 1, 40, 48)) -> tuple[np.ndarray, np.ndarray]:
    """A smooth 'standard' image with a hot spot, and a noisy 'prediction' of it (float64)."""
    rng = np.random.default_rng(SEED)
    yy, xx = np.mgrid[: shape[2], : shape[3]]
    target = np.empty(shape)
    for b in range(shape[0]):
        blob = (b + 2.0) * np.exp(-((yy - 15 - 3 * b) ** 2 + (xx - 20) ** 2) / (2 * 4.0**2))
        target[b, 0] = 0.5 + 0.3 * np.sin(xx / 7.0) + blob
    prediction = target + rng.normal(0.0, 0.2, shape)
    return prediction, target


def t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x.astype(np.float32))


def test_ssim_of_an_image_with_itself_is_one():
    _, target = images()
    ssim = ssim_map(t(target), t(target))
    assert ssim.shape == target.shape
    torch.testing.assert_close(ssim, torch.ones_like(ssim), atol=SELF_ATOL, rtol=0)


def test_ssim_of_a_noisy_copy_is_below_one_on_average():
    prediction, target = images()
    ssim = ssim_map(t(prediction), t(target))
    assert ssim.mean() < 0.9
    assert torch.all(ssim <= 1.0 + SELF_ATOL)


def test_ssim_matches_the_reference():
    prediction, target = images()
    ssim = ssim_map(t(prediction), t(target)).numpy()
    for b in range(target.shape[0]):
        np.testing.assert_allclose(ssim[b, 0], reference_ssim(prediction[b, 0], target[b, 0]), atol=ATOL)


@pytest.mark.parametrize("smooth", [False, True])
def test_ssim_matches_the_reference_in_float64(smooth: bool):
    """In float64 the module and the reference agree to rounding, also on a noiseless image (tiny variances,
    where float32's ``E[x^2] - mu^2`` loses a few 1e-4)."""
    prediction, target = images()
    if smooth:
        prediction = 3.0 * target
    ssim = ssim_map(torch.from_numpy(prediction), torch.from_numpy(target)).numpy()
    for b in range(target.shape[0]):
        np.testing.assert_allclose(ssim[b, 0], reference_ssim(prediction[b, 0], target[b, 0]), atol=FLOAT64_ATOL)


def test_ssim_is_symmetric_for_equal_data_ranges():
    prediction, target = images()
    # rescale the prediction to the target's min and max, slice by slice
    lo, hi = target.min(axis=(2, 3), keepdims=True), target.max(axis=(2, 3), keepdims=True)
    p_lo, p_hi = prediction.min(axis=(2, 3), keepdims=True), prediction.max(axis=(2, 3), keepdims=True)
    prediction = lo + (prediction - p_lo) * (hi - lo) / (p_hi - p_lo)
    torch.testing.assert_close(
        ssim_map(t(prediction), t(target)), ssim_map(t(target), t(prediction)), atol=1e-5, rtol=0
    )


def test_ssim_data_range_comes_from_the_target():
    """Swapping arguments with different ranges changes c1, c2 (the map is not symmetric then)."""
    prediction, target = images()
    prediction = 3.0 * prediction
    forward, backward = ssim_map(t(prediction), t(target)), ssim_map(t(target), t(prediction))
    assert not torch.allclose(forward, backward, atol=1e-4)
    np.testing.assert_allclose(forward[0, 0].numpy(), reference_ssim(prediction[0, 0], target[0, 0]), atol=ATOL)
    np.testing.assert_allclose(backward[0, 0].numpy(), reference_ssim(target[0, 0], prediction[0, 0]), atol=ATOL)


@pytest.mark.parametrize("alpha", [0.5, 0.0, 2.0])
def test_loss_without_lesion_term_is_l1_plus_alpha_ssim_loss(alpha: float):
    prediction, target = images()
    ssim = np.stack([reference_ssim(prediction[b, 0], target[b, 0]) for b in range(target.shape[0])])[:, None]
    expected = np.mean(np.abs(prediction - target)) + alpha * np.mean(1.0 - ssim)
    lesions = torch.ones(target.shape)  # ignored with beta 0
    loss = lesion_attention_loss(t(prediction), t(target), lesions, alpha=alpha, beta=0.0)
    assert loss.ndim == 0
    assert float(loss) == pytest.approx(expected, abs=ATOL)


def test_lesion_error_is_weighted_one_plus_beta():
    """An error only inside the mask, alpha 0: mean(L) + beta mean(L M) = (1 + beta) mean(L)."""
    _, target = images()
    lesions = np.zeros_like(target)
    lesions[:, :, 10:16, 18:26] = 1.0
    prediction = target + 0.7 * lesions
    beta = 100.0
    without = lesion_attention_loss(t(prediction), t(target), t(lesions), alpha=0.0, beta=0.0)
    with_attention = lesion_attention_loss(t(prediction), t(target), t(lesions), alpha=0.0, beta=beta)
    # mean |P - S| = 0.7 * 6 * 8 / (40 * 48) for every slice
    assert float(without) == pytest.approx(0.7 * 48 / (40 * 48), rel=1e-5)
    assert float(with_attention) == pytest.approx((1 + beta) * float(without), rel=1e-5)


def test_error_outside_the_lesions_is_not_amplified():
    _, target = images()
    lesions = np.zeros_like(target)
    lesions[:, :, 10:16, 18:26] = 1.0
    prediction = target.copy()
    prediction[:, :, 30:36, 30:40] += 0.7
    without = lesion_attention_loss(t(prediction), t(target), t(lesions), alpha=0.0, beta=0.0)
    with_attention = lesion_attention_loss(t(prediction), t(target), t(lesions), alpha=0.0, beta=100.0)
    assert float(without) > 0
    assert float(with_attention) == pytest.approx(float(without), rel=1e-6)


@pytest.mark.parametrize(("w_final", "w_side"), [(1.0, 1.0), (2.0, 0.5)])
def test_deep_supervision_of_identical_outputs(w_final: float, w_side: float):
    prediction, target = images()
    lesions = np.zeros_like(target)
    lesions[:, :, 12:20, 20:30] = 1.0
    p, s, m = t(prediction), t(target), t(lesions)
    single = lesion_attention_loss(p, s, m)
    total = deep_supervision_loss((p,) * 7, s, m, w_final=w_final, w_side=w_side)
    assert float(single) > 0
    assert float(total) == pytest.approx((w_final + 6 * w_side) * float(single), rel=1e-5)


def test_deep_supervision_weights_the_fused_output_apart():
    """Only the first element is the fused output: a perfect fused output leaves 6 w_side l(side)."""
    prediction, target = images()
    lesions = np.zeros_like(target)
    p, s, m = t(prediction), t(target), t(lesions)
    single = lesion_attention_loss(p, s, m)
    total = deep_supervision_loss((s, *(p,) * 6), s, m, w_final=5.0, w_side=0.5)
    assert float(total) == pytest.approx(6 * 0.5 * float(single), rel=1e-5)
