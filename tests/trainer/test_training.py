"""A tiny end-to-end training (few steps, tiny width): the loss falls, the run resumes, the export round-trips."""

import json
import warnings

import numpy as np
import pytest
import torch

from tests.trainer.conftest import tiny_ddran_config
from trainer.config import DataConfig, ModelConfig, OptimConfig, TrainConfig
from trainer.export import export_model
from trainer.train import build_model, load_checkpoint_model, masked_bce, train_model

TINY_MODEL = ModelConfig(kind="ddran", channels=(4, 8, 16, 32), dropout=0.0)


def _config(tmp_path, epochs, ema_decay=0.0):
    optim = OptimConfig(epochs=epochs, batch_size=1, learning_rate=3e-3, seed=0, ema_decay=ema_decay)
    return TrainConfig(DataConfig(samples=tmp_path), TINY_MODEL, optim)


def test_masked_bce_ignores_voxels_outside_the_lung():
    prediction = torch.tensor([0.9, 0.1, 0.5])
    target = torch.tensor([1.0, 0.0, 1.0])
    mask = torch.tensor([1.0, 1.0, 0.0])
    # by hand: -(log 0.9 + log 0.9) / 2 = 0.10536
    assert float(masked_bce(prediction, target, mask)) == pytest.approx(0.105361, abs=1e-5)


def test_loss_falls_and_training_resumes_identically(tmp_path, phantom_samples):
    config = _config(tmp_path, epochs=4)
    model, history = train_model(config, phantom_samples, tmp_path / "run")
    losses = [h["train_loss"] for h in history]
    assert len(losses) == 4 and losses[-1] < 0.9 * losses[0], losses
    # resume: a run stopped after 2 epochs and continued gives the same weights as the straight run
    short = _config(tmp_path, epochs=2)
    train_model(short, phantom_samples, tmp_path / "resumed")
    resumed, _ = train_model(config, phantom_samples, tmp_path / "resumed")
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_moving_average_is_monitored_checkpointed_resumed_and_returned(tmp_path, phantom_samples):
    monitor = phantom_samples[:1]
    config = _config(tmp_path, epochs=3, ema_decay=0.5)
    averaged, history = train_model(config, phantom_samples, tmp_path / "run", monitor)
    # the plain weights are scored beside the average at the last epoch only
    assert "raw_perfusion_spearman" in history[-1] and "raw_perfusion_spearman" not in history[0]
    assert history[-1]["raw_perfusion_ssim"] != history[-1]["perfusion_ssim"]
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["ema_steps"] == 3 * len(phantom_samples)  # one update per optimiser step
    weights = [k for k, v in state["model"].items() if v.is_floating_point() and "weight" in k]
    assert any(not torch.equal(state["model"][k], state["ema_model"][k]) for k in weights)
    for key, value in averaged.state_dict().items():
        torch.testing.assert_close(value, state["ema_model"][key])
    loaded, _ = load_checkpoint_model(config, tmp_path / "run" / "checkpoint.pt")
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, state["ema_model"][key])
    # resumed after epoch 1, the average continues as in the straight run
    train_model(_config(tmp_path, epochs=1, ema_decay=0.5), phantom_samples, tmp_path / "resumed", monitor)
    resumed, _ = train_model(config, phantom_samples, tmp_path / "resumed", monitor)
    for a, b in zip(averaged.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_moving_average_with_decay_near_one_keeps_the_first_step(tmp_path, phantom_samples):
    first, _ = train_model(_config(tmp_path, epochs=1), phantom_samples[:1], tmp_path / "one_step")
    averaged, _ = train_model(_config(tmp_path, epochs=3, ema_decay=0.999999), phantom_samples[:1], tmp_path / "ema")
    # the first update copies the weights after step 1; the next two steps move them by 1e-6 of a step
    for key, value in first.state_dict().items():
        if value.is_floating_point() and "running" not in key:
            torch.testing.assert_close(averaged.state_dict()[key], value, atol=1e-5, rtol=1e-4)


def test_resuming_a_run_without_average_under_an_averaging_configuration_fails(tmp_path, phantom_samples):
    train_model(_config(tmp_path, epochs=1), phantom_samples[:1], tmp_path / "run")
    with pytest.raises(ValueError, match="no moving average"):
        train_model(_config(tmp_path, epochs=2, ema_decay=0.9), phantom_samples[:1], tmp_path / "run")


def test_export_round_trip(tmp_path, phantom_samples):
    config = _config(tmp_path, epochs=1)
    torch.manual_seed(0)
    model = build_model(config).eval()
    out = export_model(
        model,
        config,
        tmp_path / "models" / "ddran_tiny",
        name="ddran_tiny",
        version="0.0.1",
        outputs=("perfusion", "ventilation"),
        trained_on={"cases": 1},
        test_metrics={},
    )
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["input"]["shape"] == [1, 1, 128, 64, 64]
    assert metadata["input"]["preprocessing"]["eq1"]["median_size"] == 10
    assert [o["name"] for o in metadata["outputs"]] == ["perfusion", "ventilation"]
    assert "phantom" in metadata["notice"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(out / "model.ts"))
    x = torch.from_numpy(phantom_samples[0].ct[None, None])
    with torch.no_grad():
        for eager, scripted in zip(model(x), loaded(x)):
            np.testing.assert_allclose(scripted.numpy(), eager.numpy(), atol=1e-5)


def test_command_line_final_fit_evaluates_and_exports(tmp_path, phantom_samples):
    from trainer.train import main

    # three "patients" (copies) are enough for the split machinery
    config = tiny_ddran_config(
        tmp_path, phantom_samples, ("caseA", "caseB", "caseC"), 'batch_size = 2\nschedule = "cosine"\n'
    )
    export = tmp_path / "models" / "ddran_tiny"
    assert main(["--config", str(config), "--out", str(tmp_path / "run"), "--export", str(export)]) == 0
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert len(split["test"]) == 1 and len(split["train"]) == 2
    table = (tmp_path / "run" / "final" / "metrics.md").read_text()
    assert "perfusion/network/spect" in table and "ventilation/hu_baseline/truth" in table
    metadata = json.loads((export / "metadata.json").read_text())
    assert metadata["trained_on"]["train_cases"] == 2 and metadata["trained_on"]["epochs"] == 2
    assert metadata["trained_on"]["train_lungs"] == 4 and metadata["trained_on"]["test_lungs"] == 2
    assert "perfusion/network/spect" in metadata["test_metrics"]
    history = json.loads((tmp_path / "run" / "final" / "history.json").read_text())
    # cosine schedule: full rate in epoch 1, half of it in epoch 2 of 2; monitored metrics per epoch
    assert [h["learning_rate"] for h in history] == pytest.approx([1e-3, 0.5e-3])
    assert all(-1.0 <= h["perfusion_spearman"] <= 1.0 and 0.0 < h["ventilation_ssim"] <= 1.0 for h in history)
    for plot in ("curves.png", "test_boxplots.png", "examples.png"):
        png = (export / "report" / plot).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000, plot
    assert (export / "report" / "metrics.md").read_text() == table
    (tmp_path / "run" / "final" / "metrics.md").unlink()
    assert main(["--config", str(config), "--out", str(tmp_path / "run"), "--stage", "evaluate"]) == 0
    assert (tmp_path / "run" / "final" / "metrics.md").read_text() == table


def test_configuration_rejects_unknown_choices():
    with pytest.raises(ValueError, match=r"optim\.precision"):
        OptimConfig(precision="fp8")
    with pytest.raises(ValueError, match=r"optim\.schedule"):
        OptimConfig(schedule="step")
    with pytest.raises(ValueError, match="epochs"):
        OptimConfig(epochs=0)
    with pytest.raises(ValueError, match=r"optim\.ema_decay"):
        OptimConfig(ema_decay=1.0)
