"""The denoising model folder (``model.ts`` + ``metadata.json``, as :mod:`trainer.denoise.export` writes it).

A tiny TorchScript module stands in for the U2-Net: it returns ``(sum of its input channels, zeros)``, so its output
tells which channels it was given.  Every broken contract must raise ModelContractError naming the problem.
Tolerances: de-normalised output against the fast volume within float32 rounding (``RTOL`` = 1e-6); with the CT
channel added, 1e-5 relative (two float32 normalisations).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from core.errors import ModelContractError
from core.nm.denoising_model import DENOISING_METADATA_VERSION, DenoisingModel

SEED = 11
RTOL = 1e-6

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")


class ChannelSum(nn.Module):
    """U2-Net's output convention with a trivial body: (sum over input channels, a side output)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = x.sum(dim=1, keepdim=True)
        return y, torch.zeros_like(y)


def metadata(uses_ct: bool = True) -> dict:
    """The keys trainer.denoise.export writes that the contract reads (plus a few descriptive ones)."""
    channels = 2 if uses_ct else 1
    return {
        "metadata_version": DENOISING_METADATA_VERSION,
        "name": "tiny_denoiser",
        "version": "0.0.1",
        "input": {
            "shape": ["B", channels, "H", "W"],
            "size_multiple": 32,
            "dtype": "float32",
            "channels": ["fast_spect / mean(fast_spect)", "CT"][:channels],
            "uses_ct": uses_ct,
            "preprocessing": "core.nm.denoising.network_inputs",
        },
        "output": {"index": 0, "shape": ["B", 1, "H", "W"]},
    }


def write_model(folder: Path, meta: dict | None = None, *, model: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if model:
        torch.jit.script(ChannelSum()).save(str(folder / "model.ts"))
    if meta is not None:
        (folder / "metadata.json").write_text(json.dumps(meta, indent=2))
    return folder


def volumes() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    fast = (rng.poisson(10.0, (4, 37, 50)) + 1.0).astype(np.float32)  # active everywhere: the whole slice runs
    ct = rng.uniform(-900.0, 500.0, fast.shape).astype(np.float32)
    return fast, ct


def test_loads_and_denoises_with_the_ct(tmp_path: Path):
    model = DenoisingModel(write_model(tmp_path / "m", metadata(uses_ct=True)))
    assert model.uses_ct is True
    assert model.identity == "tiny_denoiser 0.0.1"
    fast, ct = volumes()
    out = model.denoise(fast, ct)
    # (fast / mean(fast) + attenuation / mean(attenuation)) * mean(fast), attenuation = max(HU + 1000, 0)
    attenuation = np.clip(ct.astype(np.float64) + 1000.0, 0.0, None)
    expected = fast + attenuation / attenuation.mean() * fast.mean(dtype=np.float64)
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_one_channel_model_ignores_a_given_ct(tmp_path: Path):
    model = DenoisingModel(write_model(tmp_path / "m", metadata(uses_ct=False)))
    assert model.uses_ct is False
    fast, ct = volumes()
    calls: list[tuple[int, int]] = []
    out = model.denoise(fast, ct, progress=lambda done, total: calls.append((done, total)))
    # the channel sum of the fast channel alone is the fast SPECT / its mean, de-normalised to the fast SPECT
    np.testing.assert_allclose(out, fast, rtol=RTOL, atol=0)
    assert calls[-1] == (4, 4)


def test_denoise_without_ct_on_a_ct_model_raises(tmp_path: Path):
    model = DenoisingModel(write_model(tmp_path / "m", metadata(uses_ct=True)))
    fast, _ = volumes()
    with pytest.raises(ModelContractError, match="CT"):
        model.denoise(fast, None)


def test_a_model_without_normalisation_recorded_normalises_over_the_volume(tmp_path: Path):
    """u2net_spect_bone 1.0.0 was exported before input.normalisation existed: its inputs are whole-volume means."""
    model = DenoisingModel(write_model(tmp_path / "m", metadata(uses_ct=False)))
    assert model.normalisation == "volume"
    assert model.needs_ct is False


def test_body_normalised_one_channel_model_needs_the_ct_but_is_not_fed_it(tmp_path: Path):
    """The CT is needed (to find the body) but not given to the network: the channel sum is the fast SPECT alone."""
    model = DenoisingModel(write_model(tmp_path / "m", _set(metadata(uses_ct=False), "input.normalisation", "body")))
    assert model.needs_ct is True
    fast, ct = volumes()
    np.testing.assert_allclose(model.denoise(fast, ct), fast, rtol=1e-5)
    with pytest.raises(ModelContractError, match="CT"):
        model.denoise(fast, None)


def test_body_normalised_model_takes_its_means_over_the_body(tmp_path: Path):
    model = DenoisingModel(write_model(tmp_path / "m", _set(metadata(uses_ct=True), "input.normalisation", "body")))
    fast, ct = volumes()
    body = ct > -500.0
    # (fast / mean_body(fast) + attenuation / mean_body(attenuation)) * mean_body(fast)
    attenuation = np.clip(ct.astype(np.float64) + 1000.0, 0.0, None)
    expected = fast + attenuation / attenuation[body].mean() * fast[body].mean(dtype=np.float64)
    np.testing.assert_allclose(model.denoise(fast, ct), expected, rtol=1e-5)


def test_missing_model_file(tmp_path: Path):
    folder = write_model(tmp_path / "m", metadata(), model=False)
    with pytest.raises(ModelContractError, match=r"model\.ts is missing"):
        DenoisingModel(folder)


def test_missing_metadata_file(tmp_path: Path):
    folder = write_model(tmp_path / "m", None)
    with pytest.raises(ModelContractError, match=r"metadata\.json is missing"):
        DenoisingModel(folder)


def test_missing_folder(tmp_path: Path):
    with pytest.raises(ModelContractError, match="missing"):
        DenoisingModel(tmp_path / "nowhere")


@pytest.mark.parametrize("text", ["{not json", "", '{"metadata_version": 1,'])
def test_unreadable_metadata(tmp_path: Path, text: str):
    folder = write_model(tmp_path / "m", None)
    (folder / "metadata.json").write_text(text)
    with pytest.raises(ModelContractError, match="unreadable"):
        DenoisingModel(folder)


@pytest.mark.parametrize("text", ["[1, 2]", '"metadata"', "null"])
def test_metadata_that_is_not_an_object(tmp_path: Path, text: str):
    folder = write_model(tmp_path / "m", None)
    (folder / "metadata.json").write_text(text)
    with pytest.raises(ModelContractError, match="metadata"):
        DenoisingModel(folder)


def _set(meta: dict, key: str, value) -> dict:
    """``meta`` with ``key`` (``a.b`` for nested) set to ``value``; ``...`` deletes it."""
    *parents, last = key.split(".")
    node = meta
    for parent in parents:
        node = node[parent]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return meta


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("metadata_version", 2, "metadata_version is 2"),
        ("metadata_version", ..., "metadata_version is None"),
        ("metadata_version", "1", "metadata_version is '1'"),
        ("input.shape", ["B", 1, "H", "W"], r"takes 1 channel\(s\) but uses_ct is True"),
        ("input.shape", ["B", 2, "H"], "4-D input.shape"),
        ("input.uses_ct", ..., "input.uses_ct"),
        ("input.uses_ct", "yes", "input.uses_ct"),
        ("input.size_multiple", 16, "multiple of 16"),
        ("input.size_multiple", ..., "multiple of None"),
        ("input.preprocessing", "trainer.other.normalise", r"other preprocessing \(trainer.other.normalise\)"),
        ("input", None, "input"),
        ("input", ..., "input"),
        ("input.normalisation", "slice", "input.normalisation is 'slice'"),
    ],
)
def test_contract_violations_are_named(tmp_path: Path, key: str, value, message: str):
    folder = write_model(tmp_path / "m", _set(metadata(uses_ct=True), key, value))
    with pytest.raises(ModelContractError, match=message):
        DenoisingModel(folder)


def test_one_channel_shape_with_uses_ct_false_is_valid_but_two_is_not(tmp_path: Path):
    DenoisingModel(write_model(tmp_path / "ok", metadata(uses_ct=False)))
    folder = write_model(tmp_path / "bad", _set(metadata(uses_ct=False), "input.shape", ["B", 2, "H", "W"]))
    with pytest.raises(ModelContractError, match=r"takes 2 channel\(s\) but uses_ct is False"):
        DenoisingModel(folder)


@pytest.mark.parametrize("kind", ["garbage", "state_dict"])
def test_model_file_that_is_not_torchscript(tmp_path: Path, kind: str):
    folder = write_model(tmp_path / "m", metadata(), model=False)
    if kind == "garbage":
        (folder / "model.ts").write_bytes(b"this is not a model")
    else:
        torch.save(ChannelSum().state_dict() | {"w": torch.ones(2)}, folder / "model.ts")
    with pytest.raises(ModelContractError, match="not a TorchScript model"):
        DenoisingModel(folder)
