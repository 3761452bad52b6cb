"""CTP Transformer of seed 002 section 2.2: tissue CTC + global AIF -> local AIF, flow-scaled residue, BAD."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional


def sinusoidal_table(max_len: int, d_model: int) -> torch.Tensor:
    """Fixed position embedding of Vaswani et al. 2017, ``(max_len, d_model)``."""
    position = torch.arange(max_len, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return table


class CurveEmbedding(nn.Module):
    """Informer-style embedding (Zhou et al. 2021): 1-D conv projection + fixed position + learnable time.

    Input ``values`` and ``t_s`` are ``(B, N)``; padded positions must hold zeros (the convolution pads
    with zeros too, so the valid part does not depend on how much padding follows it).  Output ``(B, N, d_model)``.
    """

    def __init__(
        self, d_model: int = 64, kernel_size: int = 3, max_len: int = 512, time_scale_s: float = 100.0
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (same padding), got {kernel_size}")
        self.projection = nn.Conv1d(1, d_model, kernel_size, padding=kernel_size // 2)
        self.time = nn.Linear(1, d_model)
        self.register_buffer("position", sinusoidal_table(max_len, d_model), persistent=False)
        self.time_scale_s = time_scale_s

    def forward(self, values: torch.Tensor, t_s: torch.Tensor) -> torch.Tensor:
        n = values.shape[1]
        projected = self.projection(values[:, None, :]).transpose(1, 2)
        return projected + self.position[:n][None] + self.time((t_s / self.time_scale_s)[..., None])


def _head(d_model: int, hidden: int) -> nn.Sequential:
    """The two linear layers after a decoder (GELU between them)."""
    return nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, 1))


class CtpTransformer(nn.Module):
    """Shared Transformer encoder, three task decoders: local AIF, flow-scaled residue R and BAD.

    Seed 002 (section 2.2, figure 1): the tissue concentration-time curve (CTC) goes into the encoder,
    the global AIF into each decoder, which cross-attends the encoder memory; every block has 3 layers,
    model dimension 64 and 16 heads (Vaswani et al. 2017).  Embeddings follow Informer: a 1-D
    convolution of the values, a fixed sinusoidal position embedding and a learnable temporal embedding
    of the sample times.  After each decoder two linear layers; Softplus on every output; the residue
    is sorted in descending order (monotonically non-increasing).  BAD is one number per curve: the
    third decoder's features averaged over the valid time points, then two linear layers.

    Scale invariance: tissue and AIF are divided by the per-curve maximum of the global AIF before the
    embedding (so the tissue-to-AIF ratio, which carries the CBF, is kept); the local AIF is multiplied
    back.  Internally the network predicts ``R / residue_scale`` and ``BAD / bad_scale_s`` (both O(1)).

    Parameters
    ----------
    d_model : int
        Model dimension (64).
    n_heads : int
        Attention heads (16).
    n_encoder_layers, n_decoder_layers : int
        Layers of the encoder and of each decoder (3).
    dim_feedforward : int
        Width of the feed-forward blocks (256, 4 x d_model as in Vaswani et al.).
    dropout : float
        Dropout of the Transformer layers (0.1).
    kernel_size : int
        Kernel of the convolutional projection (3, zero "same" padding).
    max_len : int
        Longest curve the position table covers (512 frames).
    time_scale_s : float
        Sample times are divided by this before the temporal embedding (100 s).
    tissue_gain : float
        Extra factor on the normalised tissue curve (10; tissue peaks are a few % of the AIF's).
    residue_scale : float
        Unit of the internal residue output, ml/100 g/min (100).
    bad_scale_s : float
        Unit of the internal BAD output, s (10).

    Notes
    -----
    ``forward(tissue, global_aif, t_s, lengths)``: ``tissue``, ``global_aif`` and ``t_s`` are
    ``(B, N)`` float (concentrations in the AIF's unit, times in s, zero-padded after ``lengths``),
    ``lengths`` is ``(B,)`` int64.  Returns ``(local_aif (B, N) in the AIF's unit, residue (B, N) in
    ml/100 g/min with ``residue[:, 0]`` = CBF, bad (B,) in s)``; padded positions are 0.
    """

    def __init__(
        self,
        d_model: int = 64,
        n_heads: int = 16,
        n_encoder_layers: int = 3,
        n_decoder_layers: int = 3,
        dim_feedforward: int = 256,
        dropout: float = 0.1,
        kernel_size: int = 3,
        max_len: int = 512,
        time_scale_s: float = 100.0,
        tissue_gain: float = 10.0,
        residue_scale: float = 100.0,
        bad_scale_s: float = 10.0,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.tissue_embedding = CurveEmbedding(d_model, kernel_size, max_len, time_scale_s)
        self.aif_embedding = CurveEmbedding(d_model, kernel_size, max_len, time_scale_s)
        encoder_layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(encoder_layer, n_encoder_layers, enable_nested_tensor=False)
        self.decoders = nn.ModuleList(
            [
                nn.TransformerDecoder(
                    nn.TransformerDecoderLayer(d_model, n_heads, dim_feedforward, dropout, batch_first=True),
                    n_decoder_layers,
                )
                for _ in range(3)
            ]
        )
        self.aif_head = _head(d_model, d_model)
        self.residue_head = _head(d_model, d_model)
        self.bad_head = _head(d_model, d_model)
        self.max_len = max_len
        self.tissue_gain = tissue_gain
        self.residue_scale = residue_scale
        self.bad_scale_s = bad_scale_s

    def forward(
        self, tissue: torch.Tensor, global_aif: torch.Tensor, t_s: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = tissue.shape[1]
        valid = torch.arange(n, device=tissue.device)[None, :] < lengths[:, None]
        padding = ~valid
        weight = valid.to(tissue.dtype)
        scale = (global_aif * weight).amax(dim=1, keepdim=True).clamp_min(1e-12)
        memory = self.encoder(
            self.tissue_embedding(tissue * weight / scale * self.tissue_gain, t_s * weight),
            src_key_padding_mask=padding,
        )
        query = self.aif_embedding(global_aif * weight / scale, t_s * weight)
        features: list[torch.Tensor] = []
        for decoder in self.decoders:
            features.append(decoder(query, memory, tgt_key_padding_mask=padding, memory_key_padding_mask=padding))
        local_aif = functional.softplus(self.aif_head(features[0]).squeeze(-1)) * weight * scale
        residue = functional.softplus(self.residue_head(features[1]).squeeze(-1)) * weight
        residue = torch.sort(residue, dim=1, descending=True).values * self.residue_scale
        pooled = (features[2] * weight[..., None]).sum(dim=1) / weight.sum(dim=1, keepdim=True)
        bad = functional.softplus(self.bad_head(pooled).squeeze(-1)) * self.bad_scale_s
        return local_aif, residue, bad
