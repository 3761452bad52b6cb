"""stU-Net of seed 004 (section 3): raw DSC-MRI strips (time x space x space) -> a CBV strip.

Seed 004 (Veron Vialard et al., "Going beyond voxel-wise deconvolution in perfusion MRI", 2021):

- a 3D encoder fed temporal sequences of 2D strips, the frames stacked as a third dimension
  "homologous to the two spatial ones", with anisotropic kernels of 3 x 3 x 7 (space x space x time)
  with stride 1 and 2 x 2 x 4 kernels for down-sampling;
- a 2D decoder chaining 5 x 5 convolutions with stride 1 and 2 x 2 transposed convolutions with stride 2;
- skip connections that max-pool the encoder's (2+1)D feature maps over the temporal dimension.

Axis order: the strips are ``(B, 1, T, H, W)`` (PyTorch's ``(N, C, D, H, W)`` with ``D`` the time), so a
3 x 3 x 7 kernel of the paper is ``(7, 3, 3)`` here and the down-sampling kernel is ``(4, 2, 2)`` with
stride ``(4, 2, 2)``: every level divides the time by 4 and the strip's sides by 2.  With 64 frames and
three levels the time goes 64 -> 16 -> 4 -> 1; a temporal extent still above 1 at the bottleneck is
max-pooled away like the skips.

Readings where the paper is silent (its figure 3 is not in the text):

- the paper says "stride 4" for the 2 x 2 x 4 kernel; a stride equal to the kernel (2, 2, 4) is the
  reading that halves the strip's sides as the decoder's 2 x 2 stride-2 transposed convolutions double them;
- widths double at every level from ``base_channels`` (U-Net, Ronneberger et al. 2015); two
  convolutions per level; batch normalisation and ReLU after every convolution (the U-Net habit);
- the strided convolution itself changes the width (``c_l -> c_{l+1}``), followed by normalisation and
  activation; the transposed convolution halves it (``c_{l+1} -> c_l``) before the concatenation with
  the skip;
- the last layer is a 1 x 1 convolution to one channel, linear (the output is a standardised CBV,
  clipped to ``[-5, 5]`` in the targets but not in the network).

Input sizes: the strip's height and width must be divisible by ``2**levels`` and the number of frames
must equal ``frames``, itself divisible by ``temporal_stride**levels``; no padding is done, a wrong size
raises :class:`ValueError`.
"""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("batch", "instance", "none")
ACTIVATIONS = ("relu", "leaky_relu", "prelu", "elu", "gelu")
SPATIAL_STRIDE = 2
"""Factor by which every level divides the strip's height and width (and the decoder multiplies them)."""


def norm_layer(kind: str, channels: int, dims: int) -> nn.Module:
    """The normalisation ``kind`` (one of :data:`NORMS`) of ``channels`` maps in ``dims`` (2 or 3) dimensions."""
    if kind == "batch":
        return nn.BatchNorm3d(channels) if dims == 3 else nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True) if dims == 3 else nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def activation_layer(kind: str, channels: int) -> nn.Module:
    """The activation ``kind`` (one of :data:`ACTIVATIONS`); PReLU learns one slope per channel."""
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=True)
    if kind == "prelu":
        return nn.PReLU(channels)
    if kind == "elu":
        return nn.ELU(inplace=True)
    return nn.GELU()


def conv_unit(conv: nn.Module, channels: int, dims: int, norm: str, activation: str) -> nn.Sequential:
    """A convolution followed by its normalisation and activation."""
    return nn.Sequential(conv, norm_layer(norm, channels, dims), activation_layer(activation, channels))


class DecoderStage(nn.Module):
    """2x2 transposed convolution (stride 2), concatenation with the pooled skip, 5x5 convolutions."""

    def __init__(
        self, in_channels: int, out_channels: int, convs: int, kernel: int, norm: str, activation: str
    ) -> None:
        super().__init__()
        bias = norm == "none"
        up = nn.ConvTranspose2d(in_channels, out_channels, SPATIAL_STRIDE, stride=SPATIAL_STRIDE, bias=bias)
        self.up = conv_unit(up, out_channels, 2, norm, activation)
        layers = []
        for width in [2 * out_channels] + [out_channels] * (convs - 1):
            conv = nn.Conv2d(width, out_channels, kernel, padding=kernel // 2, bias=bias)
            layers.append(conv_unit(conv, out_channels, 2, norm, activation))
        self.convs = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.convs(torch.cat((self.up(x), skip), dim=1))


class StUNet(nn.Module):
    """Spatio-temporal U-Net of seed 004: a 3D (2+1)D encoder, a 2D decoder, temporally max-pooled skips.

    Parameters
    ----------
    frames : int
        Frames ``T`` of every input strip (64); must be divisible by ``temporal_stride**levels``.
    levels : int
        Down-sampling steps (3: time 64 -> 16 -> 4 -> 1, strip sides divided by 8).
    base_channels : int
        Width of the first level (16); level ``l`` has ``base_channels * 2**l``.
    convs_per_level : int
        Convolutions at every encoder level and after every decoder up-sampling (2).
    norm : str
        ``"batch"``, ``"instance"`` or ``"none"`` after every convolution.
    activation : str
        ``"relu"``, ``"leaky_relu"``, ``"prelu"``, ``"elu"`` or ``"gelu"`` after every normalisation.
    spatial_kernel, temporal_kernel : int
        Encoder kernel: ``spatial x spatial x temporal`` (3 x 3 x 7 in the paper); odd, "same" padding.
    temporal_stride : int
        Kernel and stride of the down-sampling convolutions along time (4; 2 x 2 along space).
    decoder_kernel : int
        Kernel of the decoder's 2D convolutions (5); odd, "same" padding.
    in_channels, out_channels : int
        Channels of the input sequence (1) and of the output map (1, the standardised CBV).

    Notes
    -----
    ``forward(x)``: ``x`` is ``(B, in_channels, frames, H, W)`` float32 with ``H`` and ``W`` divisible
    by ``2**levels``; returns ``(B, out_channels, H, W)``.

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
        base_channels: int = 16,
        convs_per_level: int = 2,
        norm: str = "batch",
        activation: str = "relu",
        spatial_kernel: int = 3,
        temporal_kernel: int = 7,
        temporal_stride: int = 4,
        decoder_kernel: int = 5,
        in_channels: int = 1,
        out_channels: int = 1,
    ) -> None:
        super().__init__()
        _validate(frames, levels, base_channels, convs_per_level, norm, activation, temporal_stride)
        for name, value in (
            ("spatial_kernel", spatial_kernel),
            ("temporal_kernel", temporal_kernel),
            ("decoder_kernel", decoder_kernel),
        ):
            if value < 1 or value % 2 == 0:
                raise ValueError(f"{name} must be a positive odd number ('same' padding), got {value}")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels} and {out_channels}")
        widths = [base_channels * 2**level for level in range(levels + 1)]
        bias = norm == "none"
        kernel = (temporal_kernel, spatial_kernel, spatial_kernel)
        padding = (temporal_kernel // 2, spatial_kernel // 2, spatial_kernel // 2)
        down = (temporal_stride, SPATIAL_STRIDE, SPATIAL_STRIDE)
        stages: list[nn.Module] = []
        for level, width in enumerate(widths):
            layers: list[nn.Module] = []
            if level == 0:
                previous = in_channels
            else:
                conv = nn.Conv3d(widths[level - 1], width, down, stride=down, bias=bias)
                layers.append(conv_unit(conv, width, 3, norm, activation))
                previous = width
            for _ in range(convs_per_level):
                conv = nn.Conv3d(previous, width, kernel, padding=padding, bias=bias)
                layers.append(conv_unit(conv, width, 3, norm, activation))
                previous = width
            stages.append(nn.Sequential(*layers))
        self.encoder = nn.ModuleList(stages)
        self.decoder = nn.ModuleList(
            [
                DecoderStage(widths[level + 1], widths[level], convs_per_level, decoder_kernel, norm, activation)
                for level in range(levels - 1, -1, -1)
            ]
        )
        self.head = nn.Conv2d(widths[0], out_channels, 1)
        self.frames = frames
        self.levels = levels
        self.in_channels = in_channels
        self.size_multiple = SPATIAL_STRIDE**levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.in_channels or x.shape[2] != self.frames:
            raise ValueError(
                f"StUNet expects (B, {self.in_channels}, {self.frames}, H, W) strips, got shape {list(x.shape)}"
            )
        if x.shape[3] % self.size_multiple != 0 or x.shape[4] % self.size_multiple != 0:
            raise ValueError(
                f"StUNet strip height and width must be divisible by {self.size_multiple} (2**levels), "
                f"got {x.shape[3]} x {x.shape[4]}"
            )
        skips: list[torch.Tensor] = []
        h = x
        for stage in self.encoder:
            h = stage(h)
            skips.append(torch.amax(h, dim=2))
        h = skips.pop()
        for i, stage in enumerate(self.decoder):
            h = stage(h, skips[len(skips) - 1 - i])
        return self.head(h)


def _validate(
    frames: int, levels: int, base_channels: int, convs: int, norm: str, activation: str, temporal_stride: int
) -> None:
    """Check the keywords that shape the network, naming the argument, what was expected and what was found."""
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    if base_channels < 1 or convs < 1:
        raise ValueError(f"base_channels and convs_per_level must be >= 1, got {base_channels} and {convs}")
    if temporal_stride < 1:
        raise ValueError(f"temporal_stride must be >= 1, got {temporal_stride}")
    if frames < 1 or frames % temporal_stride**levels:
        raise ValueError(
            f"frames must be a positive multiple of temporal_stride**levels = {temporal_stride**levels}, got {frames}"
        )
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
