"""U2-Net for SPECT denoising: fast (1/7-time) SPECT + CT -> standard SPECT, slice by slice (seed 003).

Seed 003 (Pan et al., EJNMMI Physics 2023; U2-Net of Qin et al., Pattern Recognit 106:107404, 2020):

- residual U-blocks RSU-L: an input convolution, a U-Net of height L inside the block (max-pool
  down, bilinear up, the bottom convolution dilated by 2), and the residual sum of the block's
  input convolution and its inner decoder output;
- encoder RSU-7, RSU-6, RSU-5, RSU-4 with 2x2 max pooling between stages, then two RS-4F blocks at
  the bottom (RSU-4 with dilations 1, 2, 4, 8 instead of pooling, so the low-resolution maps are not
  down-sampled further);
- a symmetric decoder RS-4F, RSU-4, RSU-5, RSU-6, RSU-7, each stage fed the up-sampled output of
  the stage below concatenated with its encoder stage;
- six side outputs (3x3 convolutions of the two bottom stages and of the five decoder stages, the
  deepest bottom stage being Sup6), up-sampled to the input size and fused by a 1x1 convolution,
  "followed by a long skip connection with 1/7 SPECT": the fused output is added to the fast SPECT
  input channel, so the network learns the correction to the fast image.

Readings where the paper is silent:

- each side output gets the same long skip (``side_i = conv_i + fast``), so that the deep
  supervision of seed 003 compares every side output with the standard SPECT on the same scale;
  the 1x1 fusion works on the side residuals;
- regression output: no sigmoid (U2-Net's salient-object maps used one; SPECT values are not
  bounded);
- widths: Qin et al.'s full U2-Net is the default (``mid_channels`` 32-32-64-128-256-256,
  ``out_channels`` 64-128-256-512-512-512, decoder middles 16-32-64-128-256, 44 M parameters);
  their U2-Net-lite (16 everywhere inside, 64 out) is a width setting, not another network.
"""

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional

ENCODER_HEIGHTS = (7, 6, 5, 4)
"""Heights of the four RSU encoder stages; the two deeper stages are RS-4F."""

DOWNSAMPLING = 2 ** (len(ENCODER_HEIGHTS) + 1)
"""Input height and width must be divisible by this (five 2x2 poolings between the six stages)."""


class ConvBNReLU(nn.Module):
    """3x3 convolution (dilated), batch norm, ReLU: Qin et al.'s REBNCONV."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation)
        self.norm = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


def _upsample_like(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return functional.interpolate(x, size=reference.shape[2:], mode="bilinear", align_corners=False)


class RSU(nn.Module):
    """Residual U-block RSU-L (``height`` L >= 2): a U-Net of depth L-1 poolings inside a residual block."""

    def __init__(self, height: int, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__()
        if height < 2:
            raise ValueError(f"RSU height must be >= 2, got {height}")
        self.conv_in = ConvBNReLU(in_channels, out_channels)
        self.encoder = nn.ModuleList(
            [ConvBNReLU(out_channels, mid_channels)]
            + [ConvBNReLU(mid_channels, mid_channels) for _ in range(height - 2)]
        )
        self.bottom = ConvBNReLU(mid_channels, mid_channels, dilation=2)
        self.decoder = nn.ModuleList(
            [ConvBNReLU(2 * mid_channels, mid_channels) for _ in range(height - 2)]
            + [ConvBNReLU(2 * mid_channels, out_channels)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_in = self.conv_in(x)
        skips: list[torch.Tensor] = []
        h = x_in
        for i, conv in enumerate(self.encoder):
            if i > 0:
                h = functional.max_pool2d(h, 2, stride=2, ceil_mode=True)
            h = conv(h)
            skips.append(h)
        h = self.bottom(h)
        for i, conv in enumerate(self.decoder):
            skip = skips[len(skips) - 1 - i]
            if i > 0:
                h = _upsample_like(h, skip)
            h = conv(torch.cat((h, skip), dim=1))
        return h + x_in


class RSUDilated(nn.Module):
    """RS-4F: RSU-4 with dilations 1, 2, 4 and 8 in place of pooling (full resolution throughout)."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_in = ConvBNReLU(in_channels, out_channels)
        self.enc1 = ConvBNReLU(out_channels, mid_channels, dilation=1)
        self.enc2 = ConvBNReLU(mid_channels, mid_channels, dilation=2)
        self.enc3 = ConvBNReLU(mid_channels, mid_channels, dilation=4)
        self.bottom = ConvBNReLU(mid_channels, mid_channels, dilation=8)
        self.dec3 = ConvBNReLU(2 * mid_channels, mid_channels, dilation=4)
        self.dec2 = ConvBNReLU(2 * mid_channels, mid_channels, dilation=2)
        self.dec1 = ConvBNReLU(2 * mid_channels, out_channels, dilation=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_in = self.conv_in(x)
        h1 = self.enc1(x_in)
        h2 = self.enc2(h1)
        h3 = self.enc3(h2)
        h4 = self.bottom(h3)
        d3 = self.dec3(torch.cat((h4, h3), dim=1))
        d2 = self.dec2(torch.cat((d3, h2), dim=1))
        d1 = self.dec1(torch.cat((d2, h1), dim=1))
        return d1 + x_in


class U2Net(nn.Module):
    """U2-Net of seed 003: (fast SPECT, CT) slice -> standard SPECT slice, with six side outputs.

    Parameters
    ----------
    in_channels : int
        Input channels: 2 (fast SPECT / its mean, CT / its mean) or 1 (the paper's no-CT ablation).
        Channel 0 must be the fast SPECT: the long skip adds it to the output.
    mid_channels : Sequence[int]
        Inner width of the six encoder stages RSU-7, RSU-6, RSU-5, RSU-4, RS-4F, RS-4F
        ((32, 32, 64, 128, 256, 256)).
    out_channels : Sequence[int]
        Output width of the six encoder stages ((64, 128, 256, 512, 512, 512)).
    decoder_mid_channels : Sequence[int]
        Inner width of the decoder stages RSU-7d, RSU-6d, RSU-5d, RSU-4d, RS-4Fd ((16, 32, 64, 128, 256));
        decoder stage k outputs ``out_channels[k - 1]`` (stage 1: ``out_channels[0]``).

    Notes
    -----
    Input ``(B, in_channels, H, W)`` with H and W divisible by :data:`DOWNSAMPLING` (32); returns
    ``(fused, side1, ..., side6)``, each ``(B, 1, H, W)``; at inference only ``fused`` is used.
    """

    def __init__(
        self,
        in_channels: int = 2,
        mid_channels: Sequence[int] = (32, 32, 64, 128, 256, 256),
        out_channels: Sequence[int] = (64, 128, 256, 512, 512, 512),
        decoder_mid_channels: Sequence[int] = (16, 32, 64, 128, 256),
    ) -> None:
        super().__init__()
        if len(mid_channels) != 6 or len(out_channels) != 6 or len(decoder_mid_channels) != 5:
            raise ValueError("mid_channels and out_channels need 6 values, decoder_mid_channels 5")
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        mid, out, dmid = list(mid_channels), list(out_channels), list(decoder_mid_channels)
        ins = [in_channels, *out[:5]]
        self.encoder = nn.ModuleList(
            [RSU(h, ins[i], mid[i], out[i]) for i, h in enumerate(ENCODER_HEIGHTS)]
            + [RSUDilated(ins[4], mid[4], out[4]), RSUDilated(ins[5], mid[5], out[5])]
        )
        # decoder stage k (1-based) takes [up(decoder k+1), encoder k]; the stage above the bottom is RS-4F
        dec_out = [out[0], *out[:4]]
        dec_in = [out[k + 1] if k == 4 else dec_out[k + 1] for k in range(5)]
        # held deepest first (RS-4Fd, RSU-4d, ..., RSU-7d), the order forward runs them
        self.decoder = nn.ModuleList(
            [RSUDilated(dec_in[4] + out[4], dmid[4], dec_out[4])]
            + [RSU(ENCODER_HEIGHTS[k], dec_in[k] + out[k], dmid[k], dec_out[k]) for k in range(3, -1, -1)]
        )
        side_in = [*dec_out, out[5]]
        self.sides = nn.ModuleList([nn.Conv2d(c, 1, 3, padding=1) for c in side_in])
        self.fuse = nn.Conv2d(6, 1, 1)

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        fast = x[:, :1]
        features: list[torch.Tensor] = []
        h = x
        for i, stage in enumerate(self.encoder):
            if i > 0:
                h = functional.max_pool2d(h, 2, stride=2, ceil_mode=True)
            h = stage(h)
            features.append(h)
        decoded: list[torch.Tensor] = [features[5]]
        h = features[5]
        for j, stage in enumerate(self.decoder):
            skip = features[4 - j]
            h = stage(torch.cat((_upsample_like(h, skip), skip), dim=1))
            decoded.insert(0, h)
        residuals: list[torch.Tensor] = []
        for k, side in enumerate(self.sides):
            residuals.append(_upsample_like(side(decoded[k]), x))
        fused = self.fuse(torch.cat(residuals, dim=1)) + fast
        return (
            fused,
            residuals[0] + fast,
            residuals[1] + fast,
            residuals[2] + fast,
            residuals[3] + fast,
            residuals[4] + fast,
            residuals[5] + fast,
        )


def u2net_lite(in_channels: int = 2) -> U2Net:
    """Qin et al.'s U2-Net-lite widths (1.1 M parameters): 16 inside every block, 64 out."""
    return U2Net(in_channels, (16,) * 6, (64,) * 6, (16,) * 5)
