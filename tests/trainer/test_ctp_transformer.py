"""CTP Transformer of seed 002: paper size, TorchScript, variable lengths, padding, output constraints.

Tolerances: a scripted network matches its eager twin within ``SCRIPT_ATOL`` (float32, same kernels); a curve
padded inside a longer batch matches the same curve alone within ``PAD_ATOL`` (the attention sums differ only in
the order of float32 additions); scale invariance within relative ``SCALE_RTOL``.
"""

import pytest
import torch

from trainer.networks.ctp_transformer import CtpTransformer, sinusoidal_table

SEED = 0
SCRIPT_ATOL = 1e-5
PAD_ATOL = 1e-5
SCALE_RTOL = 1e-4
SHORT, LONG = 45, 120  # seed 002: 45-120 time points
PAPER = {"d_model": 64, "n_heads": 16, "layers": 3}

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]


def curves(lengths: list[int], n: int, dt_s: float = 1.5) -> tuple[torch.Tensor, ...]:
    """Gamma-variate-like AIFs and tissue curves, zero-padded after each length: (tissue, aif, t_s, lengths)."""
    g = torch.Generator().manual_seed(SEED)
    t = torch.arange(n, dtype=torch.float32)[None].repeat(len(lengths), 1) * dt_s
    onset = 5.0 + 10.0 * torch.rand(len(lengths), 1, generator=g)
    s = (t - onset).clamp_min(0.0)
    aif = 8.0 * (s / 6.0) ** 3 * torch.exp(-s / 2.0)
    tissue = 0.05 * (s / 9.0) ** 2 * torch.exp(-s / 6.0) + 0.002 * torch.rand(t.shape, generator=g)
    lengths_t = torch.tensor(lengths)
    valid = torch.arange(n)[None] < lengths_t[:, None]
    return tissue * valid, aif * valid, t * valid, lengths_t


def paper_network() -> CtpTransformer:
    torch.manual_seed(SEED)
    return CtpTransformer().eval()


def test_paper_configuration():
    model = paper_network()
    assert len(model.encoder.layers) == PAPER["layers"]
    assert len(model.decoders) == 3
    for decoder in model.decoders:
        assert len(decoder.layers) == PAPER["layers"]
        assert decoder.layers[0].multihead_attn.num_heads == PAPER["n_heads"]
        assert decoder.layers[0].multihead_attn.embed_dim == PAPER["d_model"]
    assert model.encoder.layers[0].self_attn.num_heads == PAPER["n_heads"]


@pytest.mark.parametrize("n", [SHORT, LONG])
def test_torchscript_matches_eager_at_both_lengths(n: int):
    model = paper_network()
    scripted = torch.jit.script(model)
    inputs = curves([n, n - 7], n)
    with torch.no_grad():
        eager, script = model(*inputs), scripted(*inputs)
    assert eager[0].shape == (2, n) and eager[1].shape == (2, n) and eager[2].shape == (2,)
    for a, b in zip(eager, script, strict=True):
        torch.testing.assert_close(b, a, atol=SCRIPT_ATOL, rtol=0)


def test_torchscript_save_load_round_trip(tmp_path):
    model = paper_network()
    torch.jit.script(model).save(str(tmp_path / "model.ts"))
    loaded = torch.jit.load(str(tmp_path / "model.ts"))
    inputs = curves([SHORT, LONG], LONG)
    with torch.no_grad():
        for a, b in zip(model(*inputs), loaded(*inputs), strict=True):
            torch.testing.assert_close(b, a, atol=SCRIPT_ATOL, rtol=0)


def test_outputs_are_non_negative_and_residue_non_increasing():
    torch.manual_seed(SEED)
    model = CtpTransformer().train()  # dropout on: the constraints hold for any weights
    local_aif, residue, bad = model(*curves([SHORT, 80, LONG], LONG))
    assert (local_aif >= 0).all() and (residue >= 0).all() and (bad >= 0).all()
    assert (residue[:, 1:] <= residue[:, :-1]).all()
    assert (residue[0, SHORT:] == 0).all() and (local_aif[0, SHORT:] == 0).all()
    assert (residue[0, :SHORT] > 0).all()


@pytest.mark.parametrize("scripted", [False, True])
def test_padding_does_not_change_the_valid_part(scripted: bool):
    model = paper_network()
    net = torch.jit.script(model) if scripted else model
    padded = curves([SHORT, LONG], LONG)
    alone = tuple(x[:1, :SHORT] if x.ndim == 2 else x[:1] for x in padded)
    with torch.no_grad():
        batch, single = net(*padded), net(*alone)
    torch.testing.assert_close(batch[0][:1, :SHORT], single[0], atol=PAD_ATOL, rtol=0)
    torch.testing.assert_close(batch[1][:1, :SHORT], single[1], atol=PAD_ATOL * 100, rtol=0)  # ml/100 g/min
    torch.testing.assert_close(batch[2][:1], single[2], atol=PAD_ATOL * 10, rtol=0)  # s


def test_scale_invariance():
    """Tissue and AIF in another unit: same residue and BAD, local AIF in that unit."""
    model = paper_network()
    tissue, aif, t, lengths = curves([SHORT, LONG], LONG)
    with torch.no_grad():
        base = model(tissue, aif, t, lengths)
        scaled = model(tissue * 37.0, aif * 37.0, t, lengths)
    torch.testing.assert_close(scaled[0], base[0] * 37.0, rtol=SCALE_RTOL, atol=1e-6)
    torch.testing.assert_close(scaled[1], base[1], rtol=SCALE_RTOL, atol=1e-4)
    torch.testing.assert_close(scaled[2], base[2], rtol=SCALE_RTOL, atol=1e-5)


def test_invalid_hyperparameters_raise():
    with pytest.raises(ValueError, match="divisible"):
        CtpTransformer(d_model=64, n_heads=12)
    with pytest.raises(ValueError, match="odd"):
        CtpTransformer(kernel_size=4)


def test_sinusoidal_table_is_the_transformer_one():
    table = sinusoidal_table(10, 8)
    assert table.shape == (10, 8)
    torch.testing.assert_close(table[0], torch.tensor([0.0, 1.0] * 4))
    torch.testing.assert_close(table[3, 0], torch.sin(torch.tensor(3.0)))
