"""DDRAN: the dual-decoder residual attention network of seed 001, enhanced CT -> (perfusion, ventilation)."""

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from trainer.networks.blocks import Decoder, Encoder, validate_hyperparameters


class DDRAN(nn.Module):
    """Dual-decoder residual attention network: one encoder, a perfusion and a ventilation decoder.

    Seed 001 (Wang et al., J Appl Clin Med Phys 2026, doi:10.1002/acm2.70498): the residual attention
    network of seed 000 with its encoder shared by two decoders, one synthesising the perfusion image
    (99mTc-MAA SPECT) and one the ventilation image (99mTc-Technegas SPECT), trained jointly. The encoder
    and each decoder are exactly those of :class:`~trainer.networks.arnn.ARNN` (see its docstring for
    the stages, channels and the readings of the figure); the two decoders do not share weights.

    Parameters
    ----------
    in_channels : int
        Input channels (1: the enhanced CT in [0, 1]).
    out_channels : int
        Output channels of each decoder (1).
    channels : Sequence[int]
        Channels at the scales S1..Sn ((16, 32, 64, 128)).
    kernel_size : int
        Kernel of every ResConv and ROI convolution (5).
    dropout : float
        Dropout rate after each convolution (0.1).
    prelu_init : float
        Initial PReLU rectification parameter (0.2).
    roi_channels : int
        Channels of the ROI attention map (4).
    attention_scales : Sequence[int]
        Skip scales (1 = S1) that pass through a SkipAtt gate ((1, 2)).
    head_kernel_size : int
        Kernel of the output convolutions (1).

    Notes
    -----
    Input ``(B, in_channels, D, H, W)`` with D, H, W divisible by ``2 ** (len(channels) - 1)`` (the
    per-lung crop ``(B, 1, 128, 64, 64)``); output the tuple ``(perfusion, ventilation)``, each
    ``(B, out_channels, D, H, W)`` in (0, 1).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128),
        kernel_size: int = 5,
        dropout: float = 0.1,
        prelu_init: float = 0.2,
        roi_channels: int = 4,
        attention_scales: Sequence[int] = (1, 2),
        head_kernel_size: int = 1,
    ) -> None:
        super().__init__()
        validate_hyperparameters(
            in_channels=in_channels,
            out_channels=out_channels,
            channels=channels,
            kernel_size=kernel_size,
            dropout=dropout,
            prelu_init=prelu_init,
            roi_channels=roi_channels,
            attention_scales=attention_scales,
            head_kernel_size=head_kernel_size,
        )
        self.encoder = Encoder(in_channels, channels, kernel_size=kernel_size, dropout=dropout, prelu_init=prelu_init)
        make_decoder = partial(
            Decoder,
            out_channels,
            channels,
            kernel_size=kernel_size,
            dropout=dropout,
            prelu_init=prelu_init,
            roi_channels=roi_channels,
            attention_scales=attention_scales,
            head_kernel_size=head_kernel_size,
        )
        self.perfusion_decoder = make_decoder()
        self.ventilation_decoder = make_decoder()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(perfusion, ventilation)``, each ``(B, out_channels, D, H, W)`` in (0, 1), from the enhanced CT."""
        features = self.encoder(x)
        return self.perfusion_decoder(features), self.ventilation_decoder(features)
