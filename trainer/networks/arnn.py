"""ARNN: the attention residual neural network of seed 000 (DL-CTPM), enhanced CT -> perfusion."""

from collections.abc import Sequence

import torch
from torch import nn

from trainer.networks.blocks import Decoder, Encoder, validate_hyperparameters


class ARNN(nn.Module):
    """Attention residual neural network for CT-to-perfusion translation.

    Seed 000 ("Proposed CNN architecture", Fig. 2(b, c)): a 3D encoder-decoder of residual convolution
    blocks (ResConv) with 5x5x5 kernels, three 2x2x2 strided convolutions (StriConv) from scale S1 to S4
    and transposed convolutions (ConvT) back, two skip-attention gates (SkipAtt, after the attention
    U-Net), an ROI attention block (ROI Att) and a sigmoid output; every convolution is followed by batch
    norm, PReLU(0.2) and dropout 0.1; at most 128 channels. Built as (default keywords, 128x64x64 input):

    ======  ===================================================  ==========  =============
    scale   modules                                              channels    grid
    ======  ===================================================  ==========  =============
    S1      ResConv                                              1 -> 16     128 x 64 x 64
    S2      StriConv, ResConv                                    16 -> 32    64 x 32 x 32
    S3      StriConv, ResConv                                    32 -> 64    32 x 16 x 16
    S4      StriConv, ResConv                                    64 -> 128   16 x 8 x 8
    S3      ConvT, concat skip S3, ResConv                       128 -> 64   32 x 16 x 16
    S2      ConvT, SkipAtt(skip S2), concat, ResConv             64 -> 32    64 x 32 x 32
    S1      ConvT, SkipAtt(skip S1), concat, ResConv             32 -> 16    128 x 64 x 64
    S1      ROI Att, 1x1x1 conv, sigmoid                         16 -> 4 -> 1  128 x 64 x 64
    ======  ===================================================  ==========  =============

    Readings of the text where the figure itself is not available:

    - ``channels``: the caption says the numbers under the boxes give the channels, the text only that
      the maximum is 128. Doubling at each of the three StriConvs up to exactly 128 at S4 gives
      (16, 32, 64, 128), the usual U-Net progression and the one consistent with the paper's stress on a
      "reduced number of parameters"; any tuple can be passed (e.g. ``(4, 8, 16, 32)`` for CPU runs: the
      same network, narrower).
    - ``attention_scales``: of the three skip connections (S1, S2, S3) two carry a SkipAtt gate, said to
      serve "target structure attention and original shape recovery"; shape recovery is a matter of the
      fine scales, so the gates sit on the two finest skips (S1, S2) and S3 is concatenated as it is.
    - ROI Att: the hard "set to 1 if larger than 0" threshold is read as its differentiable counterpart,
      the positive part, see :class:`~trainer.networks.blocks.ROIAttention`.
    - Output layer: "a sigmoid function sums the results of the previous layers" is a ``head_kernel_size``
      (1x1x1) convolution of the ROI Att channels followed by a sigmoid.

    Trained with binary cross-entropy over the non-zero voxels of the target (seed 000 Eq. 3).

    Parameters
    ----------
    in_channels : int
        Input channels (1: the enhanced CT, Eq. 1, in [0, 1]).
    out_channels : int
        Output channels (1: the standardised perfusion, Eq. 2).
    channels : Sequence[int]
        Channels at the scales S1..Sn; ``len(channels) - 1`` StriConvs (3 in the paper).
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
        Kernel of the output convolution (1).

    Notes
    -----
    Input ``(B, in_channels, D, H, W)`` with D, H, W divisible by ``2 ** (len(channels) - 1)``, the
    paper's per-lung crop being ``(B, 1, 128, 64, 64)``; output ``(B, out_channels, D, H, W)`` in (0, 1).
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
        self.decoder = Decoder(
            out_channels,
            channels,
            kernel_size=kernel_size,
            dropout=dropout,
            prelu_init=prelu_init,
            roi_channels=roi_channels,
            attention_scales=attention_scales,
            head_kernel_size=head_kernel_size,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Perfusion ``(B, out_channels, D, H, W)`` in (0, 1) from the enhanced CT ``(B, in_channels, D, H, W)``."""
        return self.decoder(self.encoder(x))
