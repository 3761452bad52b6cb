"""Seed 003's loss: L1 + alpha SSIM loss, the lesion-attention term and deep supervision.

Per output image ``P`` against the standard SPECT ``S`` (both divided by their averages), with the
per-pixel loss map ``L(x) = |P(x) - S(x)| + alpha (1 - SSIM(x))`` (alpha = 0.5)::

    l = mean(L) + beta * mean(L * M)          (beta = 100, M the lesion mask)
    L_total = sum_i w_side_i l(side_i) + w_final l(final)

Reading: the paper writes ``L + beta L * M`` with ``L`` the image loss; ``L * M`` only has a
meaning as the loss map restricted to the mask, so both terms use the per-pixel map, averaged
over the whole image (a lesion pixel weighs ``1 + beta`` times a background pixel).  SSIM uses
the usual 11x11 Gaussian window (sigma 1.5), ``k1 = 0.01``, ``k2 = 0.03`` and the dynamic range
``L`` of each target slice.  The weights ``w`` are 1 (U2-Net's training).
"""

from __future__ import annotations

import torch
from torch.nn import functional

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _gaussian_window(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(SSIM_WINDOW, device=device, dtype=dtype) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_map(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM of ``(B, 1, H, W)`` images (reflect-padded, so the map has the input's size)."""
    window = _gaussian_window(target.device, target.dtype)
    pad = SSIM_WINDOW // 2
    flat = target.flatten(1)
    data_range = (flat.max(dim=1).values - flat.min(dim=1).values).clamp_min(1e-6)[:, None, None, None]
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return functional.conv2d(functional.pad(x, (pad, pad, pad, pad), mode="reflect"), window)

    mu_p, mu_t = blur(prediction), blur(target)
    var_p = blur(prediction * prediction) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(prediction * target) - mu_p * mu_t
    return ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))


def lesion_attention_loss(
    prediction: torch.Tensor, target: torch.Tensor, lesions: torch.Tensor, *, alpha: float = 0.5, beta: float = 100.0
) -> torch.Tensor:
    """``mean(L) + beta mean(L * M)`` with ``L = |P - S| + alpha (1 - SSIM)`` per pixel."""
    loss_map = (prediction - target).abs() + alpha * (1.0 - ssim_map(prediction, target))
    return loss_map.mean() + beta * (loss_map * lesions).mean()


def deep_supervision_loss(
    outputs: tuple[torch.Tensor, ...],
    target: torch.Tensor,
    lesions: torch.Tensor,
    *,
    alpha: float = 0.5,
    beta: float = 100.0,
    w_final: float = 1.0,
    w_side: float = 1.0,
) -> torch.Tensor:
    """``w_final l(fused) + w_side sum_i l(side_i)`` over U2-Net's ``(fused, side1, ..., side6)``."""
    fused, *sides = outputs
    total = w_final * lesion_attention_loss(fused, target, lesions, alpha=alpha, beta=beta)
    for side in sides:
        total = total + w_side * lesion_attention_loss(side, target, lesions, alpha=alpha, beta=beta)
    return total
