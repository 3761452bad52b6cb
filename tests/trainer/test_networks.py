"""ARNN (seed 000) and DDRAN (seed 001): shapes, ranges, the paper's configuration, TorchScript, attention, gradients.

Tolerances: a scripted network matches its eager twin within ``SCRIPT_ATOL`` (float32, same kernels).
The small configuration ``SMALL_CHANNELS`` is the same network, narrower, on a small grid.
"""

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from monai.networks.nets.attentionunet import AttentionBlock
from torch import nn

from trainer.networks import ARNN, DDRAN
from trainer.networks.blocks import ROIAttention

SEED = 0
SMALL_CHANNELS = (4, 8, 16, 32)
SMALL_INPUT_SHAPE = (2, 1, 32, 16, 16)
PAPER_INPUT_SHAPE = (1, 1, 128, 64, 64)
ARNN_PAPER_PARAMETERS = 7_621_545
DDRAN_PAPER_PARAMETERS = 9_744_919
SCRIPT_ATOL = 1e-5
NETWORKS = (ARNN, DDRAN)

# The app's model contract is a TorchScript file (torch.jit.load); torch >= 2.10 flags torch.jit as deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")


def outputs(result: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The network's outputs as a tuple: (perfusion,) for ARNN, (perfusion, ventilation) for DDRAN."""
    return result if isinstance(result, tuple) else (result,)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def small_input() -> torch.Tensor:
    return torch.rand(SMALL_INPUT_SHAPE, generator=torch.Generator().manual_seed(SEED))


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("train", [False, True])
def test_small_configuration_output_shape_and_range(network: Callable[..., nn.Module], train: bool):
    torch.manual_seed(SEED)
    model = network(channels=SMALL_CHANNELS).train(train)
    results = outputs(model(small_input()))
    assert len(results) == (2 if network is DDRAN else 1)
    for y in results:
        assert y.shape == SMALL_INPUT_SHAPE
        assert torch.all(y > 0) and torch.all(y < 1)


@pytest.mark.parametrize("network", NETWORKS)
def test_paper_configuration_structure(network: Callable[..., nn.Module]):
    """Defaults are seed 000's: 5x5x5 kernels, 3 StriConv + 3 ConvT (2x2x2, stride 2), 2 SkipAtt, BN, PReLU 0.2,
    dropout 0.1, at most 128 channels, ROI Att with 4 channels."""
    model = network()
    decoders = 2 if network is DDRAN else 1
    convs = [m for m in model.modules() if type(m) is nn.Conv3d]
    stri_convs = [m for m in convs if m.stride == (2, 2, 2)]
    conv_ts = [m for m in model.modules() if isinstance(m, nn.ConvTranspose3d)]
    assert len(stri_convs) == 3 and all(m.kernel_size == (2, 2, 2) for m in stri_convs)
    assert len(conv_ts) == 3 * decoders and all(m.kernel_size == (2, 2, 2) and m.stride == (2, 2, 2) for m in conv_ts)
    assert {m.kernel_size for m in convs if m not in stri_convs} == {(5, 5, 5), (1, 1, 1)}
    assert max(m.out_channels for m in convs + conv_ts) == 128
    assert sum(isinstance(m, AttentionBlock) for m in model.modules()) == 2 * decoders
    rois = [m for m in model.modules() if isinstance(m, ROIAttention)]
    assert len(rois) == decoders and all(m.gate.in_channels == 4 for m in rois)
    prelus = [m for m in model.modules() if isinstance(m, nn.PReLU)]
    assert prelus and all(torch.allclose(m.weight, torch.tensor(0.2)) for m in prelus)
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert dropouts and all(m.p == 0.1 for m in dropouts)
    assert sum(isinstance(m, nn.BatchNorm3d) for m in model.modules()) > 0


def test_skip_attention_sits_on_the_two_finest_skips():
    stages = ARNN().decoder.stages  # coarsest first: S3, S2, S1
    assert [stage.attention is not None for stage in stages] == [False, True, True]


@pytest.mark.parametrize(("network", "expected"), [(ARNN, ARNN_PAPER_PARAMETERS), (DDRAN, DDRAN_PAPER_PARAMETERS)])
def test_paper_configuration_forward_on_a_lung_crop(network: Callable[..., nn.Module], expected: int, record_property):
    """The paper's configuration on one 128x64x64 per-lung crop; ~2 s (ARNN) and ~3.5 s (DDRAN) on 2 idle CPU cores."""
    torch.manual_seed(SEED)
    model = network().eval()
    parameters = parameter_count(model)
    record_property("parameters", parameters)
    assert parameters == expected
    x = torch.rand(PAPER_INPUT_SHAPE, generator=torch.Generator().manual_seed(SEED))
    start = time.perf_counter()
    with torch.no_grad():
        results = outputs(model(x))
    record_property("forward_s", round(time.perf_counter() - start, 2))
    for y in results:
        assert y.shape == PAPER_INPUT_SHAPE
        assert torch.all(y > 0) and torch.all(y < 1)


def test_ddran_shares_one_encoder():
    """DDRAN = ARNN + a second decoder: the encoder's parameters are counted once."""
    arnn, ddran = ARNN(channels=SMALL_CHANNELS), DDRAN(channels=SMALL_CHANNELS)
    decoder = parameter_count(arnn.decoder)
    assert parameter_count(ddran) == parameter_count(arnn) + decoder
    assert parameter_count(ddran.encoder) == parameter_count(arnn.encoder)


@pytest.mark.parametrize("network", NETWORKS)
def test_torchscript_round_trip(network: Callable[..., nn.Module], tmp_path: Path):
    torch.manual_seed(SEED)
    model = network(channels=SMALL_CHANNELS).eval()
    path = tmp_path / "model.ts"
    torch.jit.save(torch.jit.script(model), str(path))
    loaded = torch.jit.load(str(path), map_location="cpu").eval()
    x = small_input()
    with torch.no_grad():
        for eager, scripted in zip(outputs(model(x)), outputs(loaded(x)), strict=True):
            torch.testing.assert_close(scripted, eager, atol=SCRIPT_ATOL, rtol=0)


@pytest.mark.parametrize("head", ["perfusion", "ventilation"])
def test_ddran_gradients_reach_the_encoder_from_each_head(head: str):
    torch.manual_seed(SEED)
    model = DDRAN(channels=SMALL_CHANNELS)
    perfusion, ventilation = model(small_input())
    (perfusion if head == "perfusion" else ventilation).mean().backward()
    trained, untouched = (
        (model.perfusion_decoder, model.ventilation_decoder)
        if head == "perfusion"
        else (model.ventilation_decoder, model.perfusion_decoder)
    )
    for module in (model.encoder, trained):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads)
        assert any(torch.count_nonzero(g) > 0 for g in grads if g is not None)
    assert all(p.grad is None for p in untouched.parameters())


@pytest.mark.parametrize(("bias", "keeps_features"), [(-1e4, False), (1e4, True)])
def test_roi_attention_multiplies_the_features_by_its_map(bias: float, keeps_features: bool):
    """A map forced to 0 zeroes the output; a map forced to 1 passes the convolved features unchanged."""
    torch.manual_seed(SEED)
    roi = ROIAttention(in_channels=3, roi_channels=4).eval()
    assert roi.gate.bias is not None
    with torch.no_grad():
        roi.gate.weight.zero_()
        roi.gate.bias.fill_(bias)
        x = torch.randn(1, 3, 8, 8, 8)
        features = roi.features(x)
        y = roi(x)
    assert y.shape == (1, 4, 8, 8, 8)
    assert torch.count_nonzero(features) > 0
    torch.testing.assert_close(y, features if keeps_features else torch.zeros_like(features))


def test_roi_attention_map_ignores_negative_features():
    """The threshold at 0: the map depends on the positive part of the convolved features only."""
    torch.manual_seed(SEED)
    roi = ROIAttention(in_channels=3, roi_channels=4)
    assert roi.gate.bias is not None
    negative = -torch.rand(1, 4, 4, 4, 4) - 0.1
    expected = torch.sigmoid(roi.gate.bias).expand(1, 1, 4, 4, 4)
    torch.testing.assert_close(roi.attention_map(negative), expected)
    assert not torch.allclose(roi.attention_map(-negative), expected)


@pytest.mark.parametrize("network", NETWORKS)
def test_seeded_construction_and_dropout_are_deterministic(network: Callable[..., nn.Module]):
    runs = []
    for _ in range(2):
        torch.manual_seed(SEED)
        model = network(channels=SMALL_CHANNELS).train()
        runs.append((model.state_dict(), outputs(model(small_input()))))
    (state_a, out_a), (state_b, out_b) = runs
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert all(torch.equal(a, b) for a, b in zip(out_a, out_b, strict=True))


@pytest.mark.parametrize(
    ("keywords", "argument"),
    [
        ({"channels": (16,)}, "channels"),
        ({"kernel_size": 4}, "kernel_size"),
        ({"dropout": 1.0}, "dropout"),
        ({"roi_channels": 0}, "roi_channels"),
        ({"attention_scales": (1, 4)}, "attention_scales"),
        ({"attention_scales": (2, 2)}, "attention_scales"),
    ],
)
@pytest.mark.parametrize("network", NETWORKS)
def test_invalid_keywords_are_named(network: Callable[..., nn.Module], keywords: dict, argument: str):
    with pytest.raises(ValueError, match=argument):
        network(**keywords)


def test_input_grid_must_be_divisible_by_the_downsampling():
    model = ARNN(channels=SMALL_CHANNELS).eval()
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.rand(1, 1, 30, 16, 16))
