"""2D CNN with the DSC frames as channels (the Table 1 baseline of seed 004): layers, shapes, TorchScript, checks.

Tolerances: a scripted network matches its eager twin within ``SCRIPT_ATOL`` (float32, same kernels).
"""

import pytest
import torch
from torch import nn

from trainer.networks.frame_channel_cnn import FrameChannelCnn

SEED = 0
SCRIPT_ATOL = 1e-5
DEFAULT_PARAMETERS = 1_944_801
"""Parameters at the default configuration (64 frames, 3 levels, base width 32, two convolutions per level)."""

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]


def network(**kwargs) -> FrameChannelCnn:
    torch.manual_seed(SEED)
    return FrameChannelCnn(**kwargs).eval()


def strips(batch: int, frames: int, height: int, width: int) -> torch.Tensor:
    return torch.randn(batch, 1, frames, height, width, generator=torch.Generator().manual_seed(SEED))


def test_frames_are_the_channels_of_2d_convolutions():
    model = network()
    assert not [m for m in model.modules() if isinstance(m, nn.Conv3d)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m is not model.head]
    assert convs[0].in_channels == 64 and convs[0].out_channels == 32  # every frame is an input channel
    assert {m.kernel_size for m in convs} == {(3, 3)}
    pools = [m for m in model.encoder.modules() if isinstance(m, nn.MaxPool2d)]
    ups = [m for m in model.decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(pools) == 3 and {(m.kernel_size, m.stride) for m in ups} == {((2, 2), (2, 2))} and len(ups) == 3
    assert model.head.kernel_size == (1, 1) and model.head.out_channels == 1
    assert sum(p.numel() for p in model.parameters()) == DEFAULT_PARAMETERS


def test_shapes_per_level_and_one_output_map():
    model = network(frames=16, levels=3, base_channels=4)
    shapes = []
    hooks = [stage.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:]))) for stage in model.encoder]
    with torch.no_grad():
        out = model(strips(2, 16, 16, 24))
    for hook in hooks:
        hook.remove()
    assert shapes == [(4, 16, 24), (8, 8, 12), (16, 4, 6), (32, 2, 3)]
    assert out.shape == (2, 1, 16, 24)


def test_output_depends_on_the_frame_order():
    model = network(frames=8, levels=1, base_channels=2, convs_per_level=1)
    x = strips(1, 8, 4, 4)
    with torch.no_grad():
        assert not torch.allclose(model(x), model(x.flip(2)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"frames": 16, "levels": 2, "base_channels": 4},
        {"frames": 12, "levels": 2, "base_channels": 4, "norm": "instance", "activation": "prelu", "kernel": 5},
        {"frames": 16, "levels": 1, "base_channels": 4, "norm": "none", "activation": "gelu", "convs_per_level": 1},
    ],
)
def test_torchscript_matches_eager_and_round_trips(tmp_path, kwargs):
    model = network(**kwargs)
    x = strips(2, kwargs["frames"], 16, 32)
    scripted = torch.jit.script(model)
    scripted.save(str(tmp_path / "model.ts"))
    loaded = torch.jit.load(str(tmp_path / "model.ts"))
    with torch.no_grad():
        eager = model(x)
        torch.testing.assert_close(scripted(x), eager, atol=SCRIPT_ATOL, rtol=0)
        torch.testing.assert_close(loaded(x), eager, atol=SCRIPT_ATOL, rtol=0)


@pytest.mark.parametrize(("frames", "height", "width"), [(15, 16, 16), (16, 12, 16), (16, 16, 20)])
def test_wrong_input_raises_in_eager_and_script(frames, height, width):
    model = network(frames=16, levels=3, base_channels=2, convs_per_level=1)
    x = strips(1, frames, height, width)
    with pytest.raises(ValueError, match="FrameChannelCnn"):
        model(x)
    with pytest.raises(torch.jit.Error, match="FrameChannelCnn"):
        torch.jit.script(model)(x)
    with pytest.raises(ValueError, match="expects"):
        model(x[0])  # (1, frames, H, W): no channel axis


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frames": 0}, "frames"),
        ({"levels": 0}, "levels"),
        ({"base_channels": 0}, "base_channels"),
        ({"convs_per_level": 0}, "convs_per_level"),
        ({"kernel": 4}, "kernel"),
        ({"norm": "group"}, "norm"),
        ({"activation": "tanh"}, "activation"),
    ],
)
def test_invalid_keywords_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FrameChannelCnn(**kwargs)
