"""stU-Net of seed 004: kernels and strides of the paper, shapes per level, TorchScript, input checks.

Tolerances: a scripted network matches its eager twin within ``SCRIPT_ATOL`` (float32, same kernels).
"""

import pytest
import torch
from torch import nn

from trainer.networks.stunet import StUNet

SEED = 0
SCRIPT_ATOL = 1e-5
DEFAULT_PARAMETERS = 3_346_977
"""Parameters at the default configuration (3 levels, base width 16, two convolutions per level)."""

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]


def network(**kwargs) -> StUNet:
    torch.manual_seed(SEED)
    return StUNet(**kwargs).eval()


def strips(batch: int, frames: int, height: int, width: int) -> torch.Tensor:
    return torch.randn(batch, 1, frames, height, width, generator=torch.Generator().manual_seed(SEED))


def test_paper_kernels_and_strides():
    model = network()
    convs3d = [m for m in model.encoder.modules() if isinstance(m, nn.Conv3d)]
    same = [m for m in convs3d if m.stride == (1, 1, 1)]
    down = [m for m in convs3d if m.stride != (1, 1, 1)]
    assert {m.kernel_size for m in same} == {(7, 3, 3)}  # time x space x space: the paper's 3 x 3 x 7
    assert {(m.kernel_size, m.stride) for m in down} == {((4, 2, 2), (4, 2, 2))} and len(down) == 3
    convs2d = [m for m in model.decoder.modules() if isinstance(m, nn.Conv2d)]
    ups = [m for m in model.decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert {m.kernel_size for m in convs2d} == {(5, 5)}
    assert {(m.kernel_size, m.stride) for m in ups} == {((2, 2), (2, 2))} and len(ups) == 3
    assert sum(p.numel() for p in model.parameters()) == DEFAULT_PARAMETERS


def test_time_collapses_64_16_4_1_and_output_is_one_map():
    model = network()
    shapes = []
    hooks = [stage.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[2:]))) for stage in model.encoder]
    with torch.no_grad():
        out = model(strips(2, 64, 16, 24))
    for hook in hooks:
        hook.remove()
    assert shapes == [(64, 16, 24), (16, 8, 12), (4, 4, 6), (1, 2, 3)]
    assert out.shape == (2, 1, 16, 24)


def test_remaining_time_is_max_pooled_at_the_bottleneck():
    model = network(frames=32, levels=2, base_channels=4, convs_per_level=1)
    with torch.no_grad():
        assert model(strips(1, 32, 8, 8)).shape == (1, 1, 8, 8)  # 32 -> 8 -> 2 frames, then max over 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"frames": 16, "levels": 2, "base_channels": 4, "norm": "instance", "activation": "prelu"},
        {"frames": 16, "levels": 2, "base_channels": 4, "norm": "none", "activation": "gelu", "convs_per_level": 1},
    ],
)
def test_torchscript_matches_eager_and_round_trips(tmp_path, kwargs):
    model = network(**kwargs)
    frames = kwargs.get("frames", 64)
    x = strips(2, frames, 16, 32)
    scripted = torch.jit.script(model)
    scripted.save(str(tmp_path / "model.ts"))
    loaded = torch.jit.load(str(tmp_path / "model.ts"))
    with torch.no_grad():
        eager = model(x)
        torch.testing.assert_close(scripted(x), eager, atol=SCRIPT_ATOL, rtol=0)
        torch.testing.assert_close(loaded(x), eager, atol=SCRIPT_ATOL, rtol=0)


@pytest.mark.parametrize(("frames", "height", "width"), [(60, 16, 16), (64, 12, 16), (64, 16, 20)])
def test_wrong_input_raises_in_eager_and_script(frames, height, width):
    model = network(frames=64, levels=3, base_channels=2, convs_per_level=1)
    x = strips(1, frames, height, width)
    with pytest.raises(ValueError, match="StUNet"):
        model(x)
    with pytest.raises(torch.jit.Error, match="StUNet"):
        torch.jit.script(model)(x)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frames": 48}, "frames must be a positive multiple of"),
        ({"levels": 0}, "levels"),
        ({"norm": "group"}, "norm"),
        ({"activation": "tanh"}, "activation"),
        ({"temporal_kernel": 6}, "temporal_kernel"),
        ({"base_channels": 0}, "base_channels"),
    ],
)
def test_invalid_keywords_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StUNet(**kwargs)
