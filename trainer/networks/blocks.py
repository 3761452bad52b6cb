"""Building blocks of the attention residual networks of seed 000 (ARNN) and seed 001 (DDRAN).

Seed 000, "Proposed CNN architecture" and Fig. 2(b, c): a 3D encoder-decoder made of residual
convolution blocks (ResConv), three 2x2x2 strided convolutions (StriConv) that halve the feature map
from scale S1 to S4, transposed convolutions (ConvT) that restore it, two skip-attention modules
(SkipAtt) "similar to the attention U-Net" (Oktay et al. 2018), an ROI attention block (ROI Att) and a
sigmoid output. All convolution filters are 5x5x5; each convolution is followed by batch normalisation,
a PReLU with rectification parameter 0.2 and dropout with rate 0.1.

MONAI's blocks are used where they match the paper: :class:`monai.networks.blocks.ResidualUnit`
(ResConv), :class:`monai.networks.blocks.Convolution` (StriConv, ConvT, the ROI convolution) and the
attention gate of :class:`monai.networks.nets.AttentionUnet` (SkipAtt). The ROI attention block,
the decoder stage and the encoder/decoder that ARNN and DDRAN share are written here.

Shapes: ``B`` batch, ``C_k`` the channels at scale ``S_k`` and ``(D, H, W)`` the input grid; scale
``S_k`` has the grid ``(D, H, W) / 2**(k - 1)``, so every input side must be divisible by
``2**(len(channels) - 1)`` (8 for the paper's four scales).
"""

from collections.abc import Sequence
from itertools import pairwise

import torch
from monai.networks.blocks import Convolution, ResidualUnit
from monai.networks.nets.attentionunet import AttentionBlock
from torch import nn

SPATIAL_DIMS = 3


def validate_hyperparameters(
    *,
    in_channels: int,
    out_channels: int,
    channels: Sequence[int],
    kernel_size: int,
    dropout: float,
    prelu_init: float,
    roi_channels: int,
    attention_scales: Sequence[int],
    head_kernel_size: int,
) -> None:
    """Check the keywords that ARNN and DDRAN share, before anything is built.

    Raises
    ------
    ValueError
        Naming the argument, what was expected and what was found.
    """
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("roi_channels", roi_channels)):
        if value < 1:
            raise ValueError(f"{name} must be a positive number of channels, got {value}")
    if len(channels) < 2 or any(c < 1 for c in channels):
        raise ValueError(f"channels must hold at least two positive channel counts (S1, S2...), got {tuple(channels)}")
    for name, value in (("kernel_size", kernel_size), ("head_kernel_size", head_kernel_size)):
        if value < 1 or value % 2 == 0:
            raise ValueError(f"{name} must be a positive odd number (for 'same' padding), got {value}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a rate in [0, 1), got {dropout}")
    if prelu_init < 0.0:
        raise ValueError(f"prelu_init must be a non-negative PReLU slope, got {prelu_init}")
    skip_scales = range(1, len(channels))
    if len(set(attention_scales)) != len(attention_scales) or not set(attention_scales) <= set(skip_scales):
        raise ValueError(
            f"attention_scales must be distinct skip scales among {tuple(skip_scales)} (S1 is the input grid), "
            f"got {tuple(attention_scales)}"
        )


def _convolution(
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int,
    strides: int,
    dropout: float,
    prelu_init: float,
    is_transposed: bool = False,
) -> Convolution:
    """Convolution -> batch norm -> PReLU(prelu_init) -> dropout, as every convolution of seed 000."""
    stride_sized = strides > 1
    return Convolution(
        spatial_dims=SPATIAL_DIMS,
        in_channels=in_channels,
        out_channels=out_channels,
        strides=strides,
        kernel_size=kernel_size,
        adn_ordering="NAD",
        act=("prelu", {"init": prelu_init}),
        norm="batch",
        dropout=dropout,
        is_transposed=is_transposed,
        padding=0 if stride_sized else None,
        output_padding=0 if stride_sized and is_transposed else None,
    )


def res_conv(in_channels: int, out_channels: int, *, kernel_size: int, dropout: float, prelu_init: float) -> nn.Module:
    """ResConv: two (conv-BN-PReLU-dropout) units plus a residual, a 1x1x1 projection when channels change.

    Input ``(B, in_channels, D, H, W)``, output ``(B, out_channels, D, H, W)``.
    """
    return ResidualUnit(
        spatial_dims=SPATIAL_DIMS,
        in_channels=in_channels,
        out_channels=out_channels,
        strides=1,
        kernel_size=kernel_size,
        subunits=2,
        adn_ordering="NAD",
        act=("prelu", {"init": prelu_init}),
        norm="batch",
        dropout=dropout,
    )


def stri_conv(in_channels: int, out_channels: int, *, dropout: float, prelu_init: float) -> nn.Module:
    """StriConv: 2x2x2 convolution with stride 2 (then BN-PReLU-dropout) that halves the grid.

    Input ``(B, in_channels, D, H, W)``, output ``(B, out_channels, D/2, H/2, W/2)``.
    """
    return _convolution(in_channels, out_channels, kernel_size=2, strides=2, dropout=dropout, prelu_init=prelu_init)


def conv_t(in_channels: int, out_channels: int, *, dropout: float, prelu_init: float) -> nn.Module:
    """ConvT: 2x2x2 transposed convolution with stride 2 (then BN-PReLU-dropout) that doubles the grid.

    Input ``(B, in_channels, D, H, W)``, output ``(B, out_channels, 2D, 2H, 2W)``.
    """
    return _convolution(
        in_channels, out_channels, kernel_size=2, strides=2, dropout=dropout, prelu_init=prelu_init, is_transposed=True
    )


def skip_attention(channels: int) -> nn.Module:
    """SkipAtt: the additive attention gate of the attention U-Net (Oktay et al. 2018, arXiv:1804.03999).

    MONAI's gate: ``x * sigmoid(BN(psi(ReLU(BN(W_g g) + BN(W_x x)))))`` with 1x1x1 convolutions and
    ``channels // 2`` intermediate channels. Called as ``gate(g=g, x=x)`` with the gating signal ``g``, the
    coarser decoder feature after its ConvT, and the encoder skip feature ``x``, both
    ``(B, channels, D, H, W)``; returns the gated skip feature, same shape.
    """
    return AttentionBlock(spatial_dims=SPATIAL_DIMS, f_int=max(channels // 2, 1), f_g=channels, f_l=channels)


class ROIAttention(nn.Module):
    """ROI Att of seed 000 Fig. 2(c): foreground attention before the output layer.

    The paper: "the input feature map is convoluted to increase the number of feature channels to four,
    followed by thresholding, whereby each voxel is set to 1 if it is larger than the drop threshold 0.
    After a subsequent sigmoid layer, this binary mask is applied to the convoluted feature map by
    spatial-wise multiplication". A hard 0/1 step has no gradient and a sigmoid of a 0/1 mask only takes
    two values, so the threshold is read as its differentiable counterpart: the positive part (ReLU)
    of the four-channel map, turned into one spatial map by a 1x1x1 convolution and a sigmoid, which
    multiplies the four-channel map at every voxel:

    ``f = PReLU(BN(conv_k(x)))`` (then dropout), ``a = sigmoid(conv_1(max(f, 0)))``, output ``f * a``.

    Parameters
    ----------
    in_channels : int
        Channels of the input feature map.
    roi_channels : int
        Channels of the convolved map (4 in the paper).
    kernel_size : int
        Kernel of the ROI convolution (5 in the paper, as every convolution).
    dropout : float
        Dropout rate after the ROI convolution.
    prelu_init : float
        Initial PReLU slope after the ROI convolution.

    Input ``(B, in_channels, D, H, W)``; output ``(B, roi_channels, D, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        roi_channels: int = 4,
        *,
        kernel_size: int = 5,
        dropout: float = 0.1,
        prelu_init: float = 0.2,
    ) -> None:
        super().__init__()
        self.features = _convolution(
            in_channels, roi_channels, kernel_size=kernel_size, strides=1, dropout=dropout, prelu_init=prelu_init
        )
        self.gate = nn.Conv3d(roi_channels, 1, kernel_size=1)

    def attention_map(self, features: torch.Tensor) -> torch.Tensor:
        """Spatial attention map ``(B, 1, D, H, W)`` in (0, 1) of the convolved map ``(B, roi_channels, D, H, W)``."""
        return torch.sigmoid(self.gate(torch.relu(features)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        return features * self.attention_map(features)


class DecoderStage(nn.Module):
    """One decoder step: ConvT from the coarser scale, optional SkipAtt on the skip, concatenation, ResConv.

    Inputs: ``coarse`` ``(B, coarse_channels, D/2, H/2, W/2)`` and ``skip`` ``(B, channels, D, H, W)``;
    output ``(B, channels, D, H, W)``.
    """

    def __init__(
        self,
        coarse_channels: int,
        channels: int,
        *,
        attention: bool,
        kernel_size: int,
        dropout: float,
        prelu_init: float,
    ) -> None:
        super().__init__()
        self.up = conv_t(coarse_channels, channels, dropout=dropout, prelu_init=prelu_init)
        self.attention: nn.Module | None = skip_attention(channels) if attention else None
        self.merge = res_conv(2 * channels, channels, kernel_size=kernel_size, dropout=dropout, prelu_init=prelu_init)

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up(coarse)
        if self.attention is not None:
            skip = self.attention(g=up, x=skip)
        return self.merge(torch.cat((up, skip), dim=1))


class Encoder(nn.Module):
    """ResConv at S1, then per coarser scale a StriConv and a ResConv.

    Input ``(B, in_channels, D, H, W)``; output the list of features at S1..Sn,
    ``(B, channels[k], D / 2**k, H / 2**k, W / 2**k)`` for ``k = 0 .. n - 1``.
    """

    def __init__(
        self, in_channels: int, channels: Sequence[int], *, kernel_size: int, dropout: float, prelu_init: float
    ) -> None:
        super().__init__()
        self.stem = res_conv(in_channels, channels[0], kernel_size=kernel_size, dropout=dropout, prelu_init=prelu_init)
        self.downs = nn.ModuleList(
            nn.Sequential(
                stri_conv(fine, coarse, dropout=dropout, prelu_init=prelu_init),
                res_conv(coarse, coarse, kernel_size=kernel_size, dropout=dropout, prelu_init=prelu_init),
            )
            for fine, coarse in pairwise(channels)
        )
        self.factor = 2 ** (len(channels) - 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.dim() != 5 or x.shape[2] % self.factor + x.shape[3] % self.factor + x.shape[4] % self.factor != 0:
            raise ValueError(f"expected input (B, C, D, H, W) with D, H, W divisible by {self.factor}, got {x.shape}")
        features = [self.stem(x)]
        for down in self.downs:
            features.append(down(features[-1]))
        return features


class Decoder(nn.Module):
    """ConvT/SkipAtt/ResConv stages from Sn back to S1, then ROI Att, a convolution to the outputs and a sigmoid.

    Input: the encoder's feature list (S1..Sn); output ``(B, out_channels, D, H, W)`` in (0, 1).
    ``attention_scales`` names the skip scales (1 = S1, the input grid) that pass through a SkipAtt
    gate; the others are concatenated as they are.
    """

    def __init__(
        self,
        out_channels: int,
        channels: Sequence[int],
        *,
        kernel_size: int,
        dropout: float,
        prelu_init: float,
        roi_channels: int,
        attention_scales: Sequence[int],
        head_kernel_size: int,
    ) -> None:
        super().__init__()
        fine_to_coarse = [
            DecoderStage(
                coarse,
                fine,
                attention=scale in attention_scales,
                kernel_size=kernel_size,
                dropout=dropout,
                prelu_init=prelu_init,
            )
            for scale, (fine, coarse) in enumerate(pairwise(channels), start=1)
        ]
        self.stages = nn.ModuleList(reversed(fine_to_coarse))
        self.roi_attention = ROIAttention(
            channels[0], roi_channels, kernel_size=kernel_size, dropout=dropout, prelu_init=prelu_init
        )
        self.head = nn.Conv3d(roi_channels, out_channels, kernel_size=head_kernel_size, padding=head_kernel_size // 2)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for i, stage in enumerate(self.stages):
            x = stage(x, features[len(features) - 2 - i])
        return torch.sigmoid(self.head(self.roi_attention(x)))
