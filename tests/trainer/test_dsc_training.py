"""stU-Net training on DSC phantoms (seed 004): split, doses, cache, masked loss, resume, export, app load, Table 1;
the 2D CNN baseline (frames as channels): its configuration, training, export, app load and Table 1 column.

Small phantoms (4 slices of 48 x 48, 40 frames at 1.5 s) under a test-only preset, resampled to 32 x 32 and 16
frames at 2.5 s; networks of width 4 with two levels.  Tolerances: the standardised target has mean 0 and SD 1
over the brain within ``STANDARDISED_ATOL`` before clipping to [-5, 5] moves them (vessels reach the clip).
"""

import json
import math
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from core.perfusion.stunet_model import StUNetModel
from core.simulation.dsc_params import DSC_PRESETS, DscSpec
from core.simulation.dsc_phantom import make_dsc_phantom
from trainer.dsc.config import (
    DscConfig,
    DscDataConfig,
    DscFrameCnnConfig,
    DscModelConfig,
    DscOptimConfig,
    DscPreprocessingConfig,
    dsc_config_from_dict,
    load_dsc_config,
)
from trainer.dsc.data import StripIndex, cache_folder, cached_case, case_doses, load_split, split_cases
from trainer.dsc.evaluate import METRICS, REFERENCES, evaluate
from trainer.dsc.export import export
from trainer.dsc.train import Run, build_network, learning_rate, load_trained, masked_mse, train

STANDARDISED_ATOL = 0.3
TINY_SPEC = DscSpec((4, 48, 48), (5.0, 4.8, 4.8), dt_s=1.5, n_frames=40)
CONFIG_FILE = Path(__file__).parents[2] / "trainer" / "configs" / "stunet_cpu.toml"
FRAME_CNN_CONFIG_FILE = CONFIG_FILE.with_name("frame_cnn_cpu.toml")
FRAME_CNN_CPU_PARAMETERS = 4_359_505
"""Parameters of ``frame_cnn_cpu.toml``'s 2D CNN (64 frames, 3 levels, base width 48)."""
TINY_FRAME_CNN = DscFrameCnnConfig(levels=2, base_channels=4, convs_per_level=1)

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning"),
    pytest.mark.usefixtures("one_torch_thread", "tiny_preset"),
]


@pytest.fixture(scope="module")
def tiny_preset():
    """A small phantom preset, ``"test_tiny"``, for this module only."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(DSC_PRESETS, "test_tiny", TINY_SPEC)
        yield


def tiny_config(cache: Path, epochs: int = 2) -> DscConfig:
    return DscConfig(
        data=DscDataConfig(cases=3, preset="test_tiny", seed=7, cache=cache, doses_per_case=2),
        preprocessing=DscPreprocessingConfig(
            size=32, frames=16, frame_step_s=2.5, margin_voxels=2, strip_height=16, test_stride=4
        ),
        model=DscModelConfig(levels=2, base_channels=4, convs_per_level=1),
        optim=DscOptimConfig(epochs=epochs, batch_size=4, strips_per_epoch=8, val_strips=6, threads=1),
    )


def test_split_follows_the_paper_ratios_and_holds_out_the_test_cases():
    paper = split_cases(DscDataConfig(cases=49, seed=100))
    assert [len(paper[k]) for k in ("train", "val", "test")] == [25, 12, 12]
    assert sorted(np.concatenate(list(paper.values())).tolist()) == list(range(100, 149))
    tiny = split_cases(DscDataConfig(cases=3, seed=7))
    assert [len(tiny[k]) for k in ("train", "val", "test")] == [1, 1, 1]
    again = split_cases(DscDataConfig(cases=49, seed=100))
    assert all(np.array_equal(paper[k], again[k]) for k in paper)


def test_training_cases_come_at_full_and_drawn_doses():
    data = DscDataConfig(doses_per_case=5, dose_range=(0.25, 1.0))
    doses = case_doses(data, 4001, "train")
    assert doses[0] == 1.0 and len(doses) == 5 and ((doses >= 0.25) & (doses <= 1.0)).all()
    assert np.array_equal(doses, case_doses(data, 4001, "train"))
    assert case_doses(data, 4001, "test").tolist() == [1.0, 0.5, 0.25]


def test_reciprocal_sampling_draws_doses_uniform_in_one_over_dose():
    draws = {
        sampling: case_doses(DscDataConfig(doses_per_case=2001, dose_sampling=sampling), 4001, "train")[1:]
        for sampling in ("uniform", "reciprocal")
    }
    for doses in draws.values():
        assert ((doses >= 0.25) & (doses <= 1.0)).all()
    # uniform in [0.25, 1]: median 0.625, a fifth under 0.4; uniform in 1/d on [1, 4]: median 1/2.5, half under 0.4
    assert np.median(draws["uniform"]) == pytest.approx(0.625, abs=0.03)
    assert np.median(draws["reciprocal"]) == pytest.approx(0.4, abs=0.03)
    assert np.mean(draws["reciprocal"] < 0.4) == pytest.approx(0.5, abs=0.03)
    assert np.mean(1.0 / draws["reciprocal"]) == pytest.approx(2.5, abs=0.05)
    with pytest.raises(ValueError, match="dose_sampling"):
        DscDataConfig(dose_sampling="log")


def test_training_cases_of_another_dose_sampling_have_their_own_cache_file(tmp_path):
    uniform = tiny_config(tmp_path / "cache")
    reciprocal = replace(uniform, data=replace(uniform.data, dose_sampling="reciprocal"))
    seed = int(split_cases(uniform.data)["train"][0])
    a, b = cached_case(uniform, seed, "train"), cached_case(reciprocal, seed, "train")
    folder = cache_folder(uniform)
    assert sorted(p.name for p in folder.iterdir()) == [f"case_{seed}.npz", f"case_{seed}_reciprocal.npz"]
    assert a["doses"][1] != b["doses"][1] and np.array_equal(cached_case(uniform, seed, "train")["doses"], a["doses"])
    validation = int(split_cases(uniform.data)["val"][0])  # evaluation doses do not depend on the sampling
    cached_case(reciprocal, validation, "val")
    assert (folder / f"case_{validation}.npz").exists()


def test_cached_case_arrays(tmp_path):
    config = tiny_config(tmp_path / "cache")
    seed = int(split_cases(config.data)["val"][0])
    case = cached_case(config, seed, "val")
    path = cache_folder(config) / f"case_{seed}.npz"
    assert path.exists()
    assert case["dsc"].shape == (3, 16, 4, 32, 32) and case["dsc"].dtype == np.float16
    assert case["svd"].shape == (3, 4, 32, 32) and case["brain"].dtype == bool and case["tumour"].any()
    np.testing.assert_array_equal(case["svd"][0], case["target"])
    brain = case["brain"]
    assert abs(case["target"][brain].mean()) < STANDARDISED_ATOL
    assert abs(case["target"][brain].std() - 1.0) < STANDARDISED_ATOL
    assert np.abs(case["truth"]).max() <= 5.0 and not np.array_equal(case["truth"], case["target"])
    stamp = path.stat().st_mtime_ns
    again = cached_case(config, seed, "val")
    assert path.stat().st_mtime_ns == stamp and np.array_equal(again["dsc"], case["dsc"])


def test_masked_loss_ignores_voxels_outside_the_brain():
    target = torch.zeros(2, 1, 4, 4)
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2] = 1.0
    prediction = torch.zeros(2, 1, 4, 4)
    prediction[:, :, 2:] = 100.0  # wrong only outside the brain
    prediction[:, :, :2] = 2.0
    assert float(masked_mse(prediction, target, mask)) == pytest.approx(4.0)


def test_train_resume_export_predict_and_evaluate(tmp_path):
    config = tiny_config(tmp_path / "cache")
    straight = train(config, tmp_path / "straight")
    train(config, tmp_path / "resumed", stop_after=1)
    assert len(Run(config, tmp_path / "resumed").history) == 0  # a fresh Run has not resumed yet
    resumed = train(config, tmp_path / "resumed")
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    history = straight.history[-1]
    assert {"val_loss", "val_loss_dose_100", "val_loss_dose_50", "val_loss_dose_25", "strips_per_s"} <= set(history)
    assert (tmp_path / "resumed" / "history.csv").read_text().count("\n") == 3
    split = json.loads((tmp_path / "straight" / "split.json").read_text())
    assert not set(split["test"]) & set(split["train"] + split["val"])

    folder = export(tmp_path / "straight", tmp_path / "models" / "stunet_dsc", name="stunet_dsc", version="0.0.1")
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["training"]["epochs"] == 2 and metadata["input"]["frames"] == 16
    assert metadata["val_metrics"]["val_loss"] == history["val_loss"] and "phantoms" in metadata["notice"]

    model = StUNetModel(folder)
    phantom = make_dsc_phantom(TINY_SPEC, split["test"][0])
    cbv = model.predict(phantom.signal, phantom.times_s, phantom.brain_mask)
    assert cbv.shape == TINY_SPEC.shape and np.isfinite(cbv).all() and not cbv[~phantom.brain_mask].any()

    record = evaluate(folder, tmp_path / "eval", progress=False)
    assert record["test_cases"] == split["test"]
    summary = record["summary"]
    assert summary["1"]["svd"]["reference"] is None
    assert summary["0.25"]["svd"]["reference"]["l1"][0] > 0
    assert all(not math.isnan(summary["0.5"]["stunet"]["truth"][k][0]) for k in METRICS)
    for name in ("results.json", "table.md", "table.csv", "figure1_cbv.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    assert "(n/a)" in (tmp_path / "eval" / "table.md").read_text()


def test_learning_rate_drops_tenfold_at_drop_at():
    assert [learning_rate(DscOptimConfig(epochs=20), e) for e in (0, 19)] == [1e-3, 1e-3]  # the paper: constant
    drop = DscOptimConfig(epochs=20, learning_rate=2e-3, drop_at=0.8)
    assert [learning_rate(drop, e) for e in (15, 16, 19)] == pytest.approx([2e-3, 2e-4, 2e-4])
    with pytest.raises(ValueError, match="drop_at"):
        DscOptimConfig(drop_at=0.0)


def test_a_constant_rate_run_extended_with_a_drop_equals_the_straight_run(tmp_path):
    """Resuming a finished constant-rate run under a longer configuration with a drop gives the run that
    configuration trains from scratch (the optimiser's saved rate is replaced), and the history records the rates."""
    constant = tiny_config(tmp_path / "cache", epochs=1)
    extended = replace(constant, optim=replace(constant.optim, epochs=2, drop_at=0.5))
    straight = train(extended, tmp_path / "straight")
    train(constant, tmp_path / "extended")
    resumed = train(extended, tmp_path / "extended")
    assert [h["learning_rate"] for h in resumed.history] == pytest.approx([1e-3, 1e-4])
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert (tmp_path / "extended" / "history.csv").read_text().splitlines()[0].count("learning_rate") == 1


def test_moving_average_of_the_weights_is_validated_resumed_and_exported(tmp_path):
    base = tiny_config(tmp_path / "cache")
    config = replace(base, optim=replace(base.optim, ema_decay=0.5))
    straight = train(config, tmp_path / "straight")
    train(config, tmp_path / "resumed", stop_after=1)
    resumed = train(config, tmp_path / "resumed")
    for (name, a), b in zip(straight.kept.state_dict().items(), resumed.kept.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    record = straight.history[-1]
    assert {"raw_val_loss", "raw_val_loss_dose_25"} <= set(record) and record["raw_val_loss"] != record["val_loss"]
    model, _ = load_trained(config, tmp_path / "straight")
    for (name, a), b in zip(model.state_dict().items(), straight.kept.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    averaged, plain = straight.kept.state_dict(), straight.model.state_dict()
    assert any(not torch.equal(averaged[k], plain[k]) for k in plain)
    folder = export(tmp_path / "straight", tmp_path / "models" / "stunet_dsc", name="stunet_dsc", version="0.0.1")
    metadata = json.loads((folder / "metadata.json").read_text())
    assert (
        "moving average" in metadata["training"]["weights"]
        and metadata["val_metrics"]["val_loss"] == record["val_loss"]
    )
    plain_model, _ = load_trained(config, tmp_path / "straight", plain=True)
    for (name, a), b in zip(plain_model.state_dict().items(), plain.values(), strict=True):
        assert torch.equal(a, b), name
    folder = export(tmp_path / "straight", tmp_path / "models" / "plain", name="plain", version="0.0.1", plain=True)
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["training"]["weights"] == "the last step's"
    assert metadata["val_metrics"]["val_loss"] == record["raw_val_loss"]
    assert not any(key.startswith("raw_") for key in metadata["val_metrics"])


def test_a_moving_average_that_barely_moves_keeps_the_weights_of_the_first_step(tmp_path):
    base = tiny_config(tmp_path / "cache", epochs=3)  # one step per epoch
    config = replace(base, optim=replace(base.optim, ema_decay=1.0 - 1e-9, strips_per_epoch=4))
    first = train(config, tmp_path / "first", stop_after=1).model.state_dict()  # the average starts there
    run = train(config, tmp_path / "run")
    for name, value in first.items():
        if value.is_floating_point():  # weights and batch-norm statistics; the step counters are averaged too
            assert torch.allclose(run.kept.state_dict()[name], value, atol=1e-6), name
    moved = [name for name, value in first.items() if not torch.equal(run.model.state_dict()[name], value)]
    assert moved  # the plain weights went on training
    with pytest.raises(ValueError, match="ema_decay"):
        DscOptimConfig(ema_decay=1.0)
    plain_config = replace(config, optim=replace(config.optim, ema_decay=0.0))
    train(plain_config, tmp_path / "plain", stop_after=1)
    with pytest.raises(ValueError, match="holds no moving average"):
        train(config, tmp_path / "plain")


def test_strip_index_keeps_strips_with_brain(tmp_path):
    config = tiny_config(tmp_path / "cache")
    cases = load_split(config, "train", progress=False)
    index = StripIndex.of(cases, (16, 32), 8)
    assert len(index) > 0 and set(index.rows[:, 1].tolist()) == {0, 1}  # both dose versions
    batch = index.batch(cases, np.arange(3))
    assert batch["x"].shape == (3, 1, 16, 16, 32) and batch["target"].shape == (3, 1, 16, 32)
    assert (batch["mask"].sum(dim=(1, 2, 3)) > 0).all()


def test_cpu_configuration_loads_and_builds():
    config = load_dsc_config(CONFIG_FILE)
    assert config.preprocessing.size == 128 and config.preprocessing.strip_shape == (32, 128)
    assert config.model.levels == 3 and config.preprocessing.frames == 64
    network = build_network(config)
    assert network.frames == 64 and network.size_multiple == 8


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, tiny_preset) -> dict[str, Path]:
    """A tiny stU-Net and a tiny 2D CNN, one epoch each on the same cases, exported as model folders."""
    root = tmp_path_factory.mktemp("dsc_models")
    stunet = tiny_config(root / "cache", epochs=1)
    folders = {}
    for name, config in (("stunet", stunet), ("cnn", replace(stunet, model=TINY_FRAME_CNN))):
        train(config, root / "runs" / name)
        folders[name] = export(root / "runs" / name, root / "models" / name, name=name, version="0.0.1")
    return folders


def test_model_kind_selects_the_table_and_its_keys():
    assert dsc_config_from_dict({}).model == DscModelConfig()
    cnn = dsc_config_from_dict({"model": {"kind": "frame_channel_cnn", "base_channels": 4}}).model
    assert cnn == DscFrameCnnConfig(base_channels=4)
    with pytest.raises(ValueError, match=r"for kind = 'frame_channel_cnn': \['temporal_kernel'\]; expected"):
        dsc_config_from_dict({"model": {"kind": "frame_channel_cnn", "temporal_kernel": 7}})
    with pytest.raises(ValueError, match=r"unknown keys in \[model\] for kind = 'stunet': \['kernel'\]"):
        dsc_config_from_dict({"model": {"kernel": 3}})
    with pytest.raises(ValueError, match=r"model\.kind must be one of"):
        dsc_config_from_dict({"model": {"kind": "vit"}})
    with pytest.raises(ValueError, match=r"DscModelConfig\.kind must be 'stunet'"):
        DscModelConfig(kind="frame_channel_cnn")


def test_a_run_without_model_kind_loads_as_the_stunet(tmp_path):
    config = tiny_config(tmp_path / "cache")
    old = json.loads(json.dumps(asdict(config), default=str))
    del old["model"]["kind"]  # config.json of runs from before the 2D CNN baseline
    assert dsc_config_from_dict(old) == dsc_config_from_dict(json.loads(json.dumps(asdict(config), default=str)))
    assert isinstance(build_network(dsc_config_from_dict(old)), type(build_network(config)))


def test_frame_cnn_configuration_shares_the_stunet_data_and_optimisation():
    config, stunet = load_dsc_config(FRAME_CNN_CONFIG_FILE), load_dsc_config(CONFIG_FILE)
    assert (config.data, config.preprocessing, config.optim) == (stunet.data, stunet.preprocessing, stunet.optim)
    assert config.model.kind == "frame_channel_cnn" and stunet.model.kind == "stunet"
    network = build_network(config)
    assert type(network).__name__ == "FrameChannelCnn" and network.frames == 64 and network.size_multiple == 8
    assert sum(p.numel() for p in network.parameters()) == FRAME_CNN_CPU_PARAMETERS


def test_frame_cnn_trains_exports_and_predicts_in_the_app(tiny_models):
    folder = tiny_models["cnn"]
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["network"] == {"kind": "frame_channel_cnn", "frames": 16, **TINY_FRAME_CNN.network_keywords()}
    assert metadata["input"]["size_multiple"] == 4 and "2D CNN" in metadata["task"]
    assert metadata["training"]["epochs"] == 1 and math.isfinite(metadata["val_metrics"]["val_loss"])
    stunet_metadata = json.loads((tiny_models["stunet"] / "metadata.json").read_text())
    assert stunet_metadata["network"]["kind"] == "stunet" and metadata["input"] == stunet_metadata["input"]

    model = StUNetModel(folder)
    assert model.identity == "cnn 0.0.1 (frame_channel_cnn)"
    phantom = make_dsc_phantom(TINY_SPEC, int(metadata["trained_on"]["cases"]["test"][0]))
    cbv = model.predict(phantom.signal, phantom.times_s, phantom.brain_mask)
    assert cbv.shape == TINY_SPEC.shape and np.isfinite(cbv).all() and not cbv[~phantom.brain_mask].any()
    assert cbv[phantom.brain_mask].std() > 0


def test_evaluate_adds_the_baseline_column(tiny_models, tmp_path):
    alone = evaluate(tiny_models["stunet"], tmp_path / "alone", progress=False)
    both = evaluate(tiny_models["stunet"], tmp_path / "both", progress=False, baseline_dir=tiny_models["cnn"])
    assert both["baseline"] == "cnn 0.0.1 (frame_channel_cnn)" and "baseline" not in alone
    for dose, by_method in both["summary"].items():
        assert list(by_method) == ["svd", "stunet", "cnn2d"] and list(alone["summary"][dose]) == ["svd", "stunet"]
        assert by_method["stunet"] == alone["summary"][dose]["stunet"]  # scored exactly as without the baseline
        assert len(both["per_case"][dose]["cnn2d"]["truth"]) == len(both["test_cases"])
        assert all(not math.isnan(by_method["cnn2d"][r][k][0]) for r in REFERENCES for k in METRICS)
    table = (tmp_path / "both" / "table.md").read_text()
    assert "2D CNN (frames as channels) vs reference" in table and "paper Hess [8]" in table
    assert "2D CNN" not in (tmp_path / "alone" / "table.md").read_text()
    rows = (tmp_path / "both" / "table.csv").read_text().splitlines()
    assert sum(",cnn2d," in row for row in rows) == 3 * len(REFERENCES) * len(METRICS)
    assert (tmp_path / "both" / "figure1_cbv.png").stat().st_size > 0


def test_evaluate_refuses_a_baseline_of_another_kind_or_other_test_cases(tiny_models, tmp_path):
    with pytest.raises(ValueError, match="must be a frame_channel_cnn model"):
        evaluate(tiny_models["stunet"], tmp_path / "eval", progress=False, baseline_dir=tiny_models["stunet"])
    other = shutil.copytree(tiny_models["cnn"], tmp_path / "other_cases")
    metadata = json.loads((other / "metadata.json").read_text())
    metadata["training"]["config"]["data"]["seed"] = 100
    (other / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="test cases"):
        evaluate(tiny_models["stunet"], tmp_path / "eval", progress=False, baseline_dir=other)
