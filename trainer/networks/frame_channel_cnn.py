"""A 2D U-Net that reads every DSC frame as an input channel: the 2D CNN baseline of seed 004's Table 1.

Seed 004 (Veron Vialard et al. 2021, section 1) compares the stU-Net with Hess et al. [8] ("Synthetic
perfusion maps: imaging perfusion deficits in DSC-MRI with deep learning", MICCAI BrainLes 2018) and
contrasts two ways earlier CNNs handled time: [8] uses a "sequence encoder" of 1D convolutions along
time followed by a "spatial correlation" module of 2D convolutions, while Ulas et al. [9] (Frontiers in
Neurology 2019) "treat each frame of the perfusion sequence as an independent color channel" of a 2D CNN.

What this network is: the per-frame-channel 2D approach (the one the seed attributes to [9]), which is
how the issue asks for the baseline ("a per-frame-channel 2D CNN in the manner of Hess et al.").  What
it is not: Hess et al.'s architecture -- there is no 1D temporal sequence encoder and no separate
spatial-correlation module, and no weight is shared along time.  The frames are mixed once, by the
first 2D convolution (``in_channels * frames`` input channels); everything after it is spatial.  That
is the contrast seed 004 draws with the stU-Net's (2+1)D filters, which share their weights along time.

Layout (U-Net, Ronneberger et al. 2015; choices ours, the seed gives no baseline architecture):

- encoder level 0: ``convs_per_level`` ``kernel x kernel`` convolutions from the ``in_channels * frames``
  frame channels to ``base_channels``; level ``l >= 1``: a 2 x 2 max-pool with stride 2, then
  ``convs_per_level`` convolutions to ``base_channels * 2**l``;
- decoder: the stU-Net's :class:`~trainer.networks.stunet.DecoderStage` (a 2 x 2 transposed convolution
  with stride 2 halving the width, concatenation with the encoder's feature map of that level, then
  ``convs_per_level`` convolutions), here with ``kernel x kernel`` kernels (the stU-Net's decoder: 5 x 5);
- normalisation and activation after every convolution; a linear 1 x 1 convolution to ``out_channels``
  (the standardised CBV, as the stU-Net).

Input sizes: the strip's height and width must be divisible by ``2**levels`` and the number of frames
must equal ``frames``; no padding is done, a wrong size raises :class:`ValueError`.
"""

from __future__ import annotations

import torch
from torch import nn

from trainer.networks.stunet import ACTIVATIONS, NORMS, DecoderStage, conv_unit

POOL = 2
"""Factor by which every level divides the strip's height and width (and the decoder multiplies them)."""


class FrameChannelCnn(nn.Module):
    """2D U-Net with the DSC frames as input channels: ``(B, 1, T, H, W)`` strips -> ``(B, 1, H, W)``.

    Parameters
    ----------
    frames : int
        Frames ``T`` of every input strip (64); they become ``in_channels * frames`` input channels.
    levels : int
        Down-sampling steps (3: strip sides divided by 8).
    base_channels : int
        Width of the first level (32); level ``l`` has ``base_channels * 2**l``.
    convs_per_level : int
        Convolutions at every encoder level and after every decoder up-sampling (2).
    kernel : int
        Side of the encoder's and decoder's 2D kernels (3); odd, "same" padding.
    norm : str
        ``"batch"``, ``"instance"`` or ``"none"`` after every convolution.
    activation : str
        ``"relu"``, ``"leaky_relu"``, ``"prelu"``, ``"elu"`` or ``"gelu"`` after every normalisation.
    in_channels, out_channels : int
        Channels of the input sequence (1) and of the output map (1, the standardised CBV).

    Notes
    -----
    ``forward(x)``: ``x`` is ``(B, in_channels, frames, H, W)`` float32 with ``H`` and ``W`` divisible
    by ``2**levels``; it is viewed as ``(B, in_channels * frames, H, W)``; returns ``(B, out_channels, H, W)``.

    Raises
    ------
    ValueError
        From the constructor for an invalid keyword, from ``forward`` for an input of the wrong shape
        (scripted: a ``torch.jit.Error`` whose message names ``ValueError``).
    """

    def __init__(
        self,
        frames: int = 64,
        levels: int = 3,
        base_channels: int = 32,
        convs_per_level: int = 2,
        kernel: int = 3,
        norm: str = "batch",
        activation: str = "relu",
        in_channels: int = 1,
        out_channels: int = 1,
    ) -> None:
        super().__init__()
        _validate(frames, levels, base_channels, convs_per_level, kernel, norm, activation, in_channels, out_channels)
        widths = [base_channels * 2**level for level in range(levels + 1)]
        bias = norm == "none"
        stages: list[nn.Module] = []
        previous = in_channels * frames
        for level, width in enumerate(widths):
            layers: list[nn.Module] = [] if level == 0 else [nn.MaxPool2d(POOL, stride=POOL)]
            for _ in range(convs_per_level):
                conv = nn.Conv2d(previous, width, kernel, padding=kernel // 2, bias=bias)
                layers.append(conv_unit(conv, width, 2, norm, activation))
                previous = width
            stages.append(nn.Sequential(*layers))
        self.encoder = nn.ModuleList(stages)
        self.decoder = nn.ModuleList(
            [
                DecoderStage(widths[level + 1], widths[level], convs_per_level, kernel, norm, activation)
                for level in range(levels - 1, -1, -1)
            ]
        )
        self.head = nn.Conv2d(widths[0], out_channels, 1)
        self.frames = frames
        self.levels = levels
        self.in_channels = in_channels
        self.size_multiple = POOL**levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.in_channels or x.shape[2] != self.frames:
            raise ValueError(
                f"FrameChannelCnn expects (B, {self.in_channels}, {self.frames}, H, W) strips, "
                f"got shape {list(x.shape)}"
            )
        if x.shape[3] % self.size_multiple != 0 or x.shape[4] % self.size_multiple != 0:
            raise ValueError(
                f"FrameChannelCnn strip height and width must be divisible by {self.size_multiple} (2**levels), "
                f"got {x.shape[3]} x {x.shape[4]}"
            )
        h = x.reshape(x.shape[0], self.in_channels * self.frames, x.shape[3], x.shape[4])
        skips: list[torch.Tensor] = []
        for stage in self.encoder:
            h = stage(h)
            skips.append(h)
        h = skips.pop()
        for i, stage in enumerate(self.decoder):
            h = stage(h, skips[len(skips) - 1 - i])
        return self.head(h)


def _validate(
    frames: int,
    levels: int,
    base_channels: int,
    convs: int,
    kernel: int,
    norm: str,
    activation: str,
    in_channels: int,
    out_channels: int,
) -> None:
    """Check the keywords that shape the network, naming the argument, what was expected and what was found."""
    for name, value in (
        ("frames", frames),
        ("levels", levels),
        ("base_channels", base_channels),
        ("convs_per_level", convs),
        ("in_channels", in_channels),
        ("out_channels", out_channels),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be a positive odd number ('same' padding), got {kernel}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
