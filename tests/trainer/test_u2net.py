"""U2-Net of seed 003 (Qin et al. 2020 widths): size, outputs, the long skip, shapes, TorchScript, validation.

Reference values: Qin et al., Pattern Recognit 106:107404 (2020): U2-Net 176.3 MB = 44.0 M float32 parameters
(4 bytes each, MB = 10**6 bytes), the small U2-Net 4.7 MB with 1.13 M parameters; compared within
``PARAMETER_RTOL`` (our input has 2 channels, theirs 3, and no sigmoid: a few hundred weights).
Tolerances: a scripted network matches its eager twin within ``SCRIPT_ATOL`` (float32, same kernels); the long
skip is checked exactly (zero weights give exact zeros, and ``0 + x == x``).
"""

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from trainer.networks.u2net import RSU, ConvBNReLU, RSUDilated, U2Net, u2net_lite

SEED = 0
PAPER_PARAMETERS = 176.3e6 / 4  # 44.1 M; the paper's text: 44.0 M
LITE_PARAMETERS = 1.13e6
PARAMETER_RTOL = 0.03
SCRIPT_ATOL = 1e-5
SMALL: dict[str, Any] = {"mid_channels": (4,) * 6, "out_channels": (8,) * 6, "decoder_mid_channels": (4,) * 5}
N_OUTPUTS = 7  # fused + side1..side6


pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def random_input(*shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(SEED))


def test_paper_configuration_size_and_forward():
    torch.manual_seed(SEED)
    model = U2Net().eval()
    assert parameter_count(model) == pytest.approx(PAPER_PARAMETERS, rel=PARAMETER_RTOL)
    with torch.no_grad():
        outputs = model(random_input(1, 2, 64, 64))
    assert len(outputs) == N_OUTPUTS
    for y in outputs:
        assert y.shape == (1, 1, 64, 64)
        assert torch.isfinite(y).all()


def test_lite_configuration_size():
    assert parameter_count(u2net_lite()) == pytest.approx(LITE_PARAMETERS, rel=PARAMETER_RTOL)
    assert parameter_count(u2net_lite(in_channels=1)) < parameter_count(u2net_lite(in_channels=2))


@pytest.mark.parametrize("train", [False, True])
def test_seven_outputs_of_input_size(train: bool):
    torch.manual_seed(SEED)
    model = U2Net(**SMALL).train(train)
    outputs = model(random_input(3, 2, 32, 64))
    assert isinstance(outputs, tuple) and len(outputs) == N_OUTPUTS
    assert all(y.shape == (3, 1, 32, 64) for y in outputs)


@pytest.mark.parametrize("in_channels", [2, 1])
def test_long_skip_returns_the_fast_channel_when_side_and_fuse_convs_are_zero(in_channels: int):
    torch.manual_seed(SEED)
    model = U2Net(in_channels, **SMALL).eval()
    with torch.no_grad():
        for conv in [*model.sides, model.fuse]:
            conv.weight.zero_()
            conv.bias.zero_()
        x = random_input(2, in_channels, 64, 64) + 0.5
        outputs = model(x)
    for y in outputs:
        assert torch.equal(y, x[:, :1])


def test_output_depends_on_every_input_channel():
    """The network is not the identity: with trained-like (random) weights the CT channel changes the output."""
    torch.manual_seed(SEED)
    model = U2Net(**SMALL).eval()
    x = random_input(1, 2, 32, 32)
    x_other_ct = x.clone()
    x_other_ct[:, 1] = 0.0
    with torch.no_grad():
        assert not torch.allclose(model(x)[0], model(x_other_ct)[0])


def test_non_square_input():
    torch.manual_seed(SEED)
    model = U2Net(**SMALL).eval()
    with torch.no_grad():
        outputs = model(random_input(1, 2, 64, 96))
    assert all(y.shape == (1, 1, 64, 96) for y in outputs)


def test_torchscript_matches_eager():
    torch.manual_seed(SEED)
    model = U2Net(**SMALL).eval()
    scripted = torch.jit.script(model)
    x = random_input(2, 2, 64, 32)
    with torch.no_grad():
        eager, script = model(x), scripted(x)
    assert len(script) == N_OUTPUTS
    for a, b in zip(eager, script, strict=True):
        torch.testing.assert_close(b, a, atol=SCRIPT_ATOL, rtol=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mid_channels": (4,) * 5},
        {"out_channels": (8,) * 7},
        {"decoder_mid_channels": (4,) * 6},
        {"in_channels": 0},
    ],
)
def test_invalid_configurations_raise(kwargs: dict):
    with pytest.raises(ValueError):
        U2Net(**(SMALL | kwargs))


@pytest.mark.parametrize("height", [1, 0])
def test_rsu_height_below_two_raises(height: int):
    with pytest.raises(ValueError, match="height"):
        RSU(height, 2, 4, 8)


def test_rsu_two_is_the_smallest_valid_height():
    block = RSU(2, 2, 4, 8).eval()
    with torch.no_grad():
        assert block(random_input(1, 2, 9, 7)).shape == (1, 8, 9, 7)


@pytest.mark.parametrize("height", [7, 6, 5, 4])
def test_rsu_keeps_odd_spatial_sizes(height: int):
    """ceil_mode pooling and up-sampling to the skip size: 37x45 in, 37x45 out."""
    torch.manual_seed(SEED)
    block = RSU(height, 3, 4, 8).eval()
    with torch.no_grad():
        assert block(random_input(2, 3, 37, 45)).shape == (2, 8, 37, 45)


def test_rsu_dilated_keeps_the_spatial_size():
    torch.manual_seed(SEED)
    block = RSUDilated(3, 4, 8).eval()
    with torch.no_grad():
        assert block(random_input(2, 3, 37, 45)).shape == (2, 8, 37, 45)


def _zero_last_stage(stage: ConvBNReLU) -> None:
    """Zero conv weights and bias of a ConvBNReLU: in eval mode (BN with fresh running stats) its output is 0."""
    assert stage.conv.bias is not None
    with torch.no_grad():
        stage.conv.weight.zero_()
        stage.conv.bias.zero_()


def _rsu5() -> tuple[RSU, ConvBNReLU]:
    block = RSU(5, 3, 4, 8)
    last = block.decoder[-1]
    assert isinstance(last, ConvBNReLU)
    return block, last


def _rsu4f() -> tuple[RSUDilated, ConvBNReLU]:
    block = RSUDilated(3, 4, 8)
    return block, block.dec1


@pytest.mark.parametrize("make", [_rsu5, _rsu4f])
def test_block_is_input_convolution_plus_inner_decoder(make: Callable[[], tuple[RSU | RSUDilated, ConvBNReLU]]):
    """Residual: output = conv_in(x) + decoder(x); with the decoder's last stage silenced the output is conv_in(x)."""
    torch.manual_seed(SEED)
    block, last = make()
    block = block.eval()
    x = random_input(2, 3, 37, 45)
    with torch.no_grad():
        full = block(x)
        x_in = block.conv_in(x)
        _zero_last_stage(last)
        silenced = block(x)
    assert torch.equal(silenced, x_in)
    # the inner decoder contributes: the full output differs from conv_in(x) and is never below it (ReLU >= 0)
    assert not torch.allclose(full, x_in)
    assert torch.all(full >= x_in)
