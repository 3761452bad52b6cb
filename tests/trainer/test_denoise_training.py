"""The denoising trainer end to end on tiny bone phantoms: cache, train, resume, evaluate, export, load in the app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.nm.denoising_model import DenoisingModel
from core.simulation.spect import ReconParams
from core.simulation.study import StudySpec, generate_study
from trainer.denoise import evaluate, export
from trainer.denoise.config import DenoiseConfig, load_denoise_config
from trainer.denoise.data import load_case
from trainer.denoise.train import learning_rate, train

TINY_BONE = StudySpec((24, 96, 96), (6.0, 4.4, 4.4), recon=ReconParams(iterations=2, subsets=6, matrix=96, n_slices=72))
CONFIG = """
[data]
studies = "studies"
cache = "cache"
test_fraction = 0.5

[model]
use_ct = {use_ct}
mid_channels = [4, 4, 4, 4, 4, 4]
out_channels = [8, 8, 8, 8, 8, 8]
decoder_mid_channels = [4, 4, 4, 4, 4]
normalisation = "{normalisation}"

[optim]
epochs = {epochs}
batch_size = 2
learning_rate = 1e-3
steps_per_epoch = 3
crop = 64
threads = 1
"""


@pytest.fixture(scope="module")
def bone_studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny bone SPECT/CT phantom studies (fast and standard acquisitions, lesion masks)."""
    root = tmp_path_factory.mktemp("denoise")
    for seed in (7, 8):
        generate_study(root / "studies" / f"case_{seed:05d}", TINY_BONE, seed, kind="bone")
    return root


def _config(
    root: Path, *, epochs: int, use_ct: bool = True, name: str = "config.toml", normalisation: str = "volume"
) -> Path:
    path = root / name
    path.write_text(CONFIG.format(epochs=epochs, use_ct=str(use_ct).lower(), normalisation=normalisation))
    return path


def test_cases_are_cached_on_the_spect_grid_with_lesions(bone_studies: Path) -> None:
    config = load_denoise_config(_config(bone_studies, epochs=1))
    train(config, bone_studies / "run_cache")
    case = load_case(bone_studies / "cache" / "case_00007.npz")
    assert case.fast.shape == case.standard.shape == case.ct_hu.shape == case.grid.shape
    assert case.lesions.any()
    # bone lesions are hot: the standard SPECT is higher in them than on average inside the body
    body = case.ct_hu > -500
    assert case.standard[case.lesions].mean() > 2 * case.standard[body].mean()


def test_training_is_deterministic_and_resumes_where_it_stopped(bone_studies: Path) -> None:
    straight = load_denoise_config(_config(bone_studies, epochs=2, name="two.toml"))
    _, history = train(straight, bone_studies / "run_a")
    _, first = train(straight, bone_studies / "run_b", stop_after=1)
    assert len(first) == 1
    _, resumed = train(straight, bone_studies / "run_b")
    assert [h["loss"] for h in resumed] == [h["loss"] for h in history]
    assert all(np.isfinite(h["loss"]) for h in history)
    split = json.loads((bone_studies / "run_a" / "split.json").read_text())
    assert len(split["train"]) == len(split["test"]) == 1 and set(split["train"]).isdisjoint(split["test"])


def test_evaluation_and_export_give_a_model_the_app_loads(bone_studies: Path) -> None:
    config = load_denoise_config(_config(bone_studies, epochs=1, name="eval.toml"))
    run = bone_studies / "run_eval"
    train(config, run)
    ablation = load_denoise_config(_config(bone_studies, epochs=1, use_ct=False, name="noct.toml"))
    train(ablation, bone_studies / "run_noct")
    assert evaluate.main(["--run", str(run), "--ablation", str(bone_studies / "run_noct")]) == 0
    report = json.loads((run / "evaluation.json").read_text())
    methods = set(report["summary"])
    assert methods == {"fast (1/7 time)", "gaussian", "u2net without CT", "u2net with CT"}
    fast = report["summary"]["fast (1/7 time)"]
    assert fast["count_ratio_mean"] == pytest.approx(1.0)
    assert report["gaussian_sigma_voxels"] in evaluate.GAUSSIAN_SIGMAS_VOXELS
    out = export.export(run, bone_studies / "models" / "u2net_spect_bone", name="u2net_spect_bone", version="0.0.1")
    model = DenoisingModel(out)
    assert model.uses_ct and (out / "report" / "evaluation.md").is_file()
    case = load_case(bone_studies / "cache" / f"{report['test_cases'][0]}.npz")
    denoised = model.denoise(case.fast, case.ct_hu)
    assert denoised.shape == case.fast.shape and (denoised >= 0).all()


def test_a_body_normalised_run_exports_a_model_that_normalises_over_the_body(bone_studies: Path) -> None:
    config = load_denoise_config(_config(bone_studies, epochs=1, name="body.toml", normalisation="body"))
    run = bone_studies / "run_body"
    train(config, run)
    out = export.export(run, bone_studies / "models" / "u2net_body", name="u2net_body", version="0.0.1")
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["input"]["normalisation"] == "body"
    assert all("over the body" in channel for channel in metadata["input"]["channels"])
    model = DenoisingModel(out)
    assert model.normalisation == "body"
    case = load_case(bone_studies / "cache" / "case_00007.npz")
    assert model.denoise(case.fast, case.ct_hu).shape == case.fast.shape


def test_an_unknown_normalisation_is_refused(bone_studies: Path) -> None:
    with pytest.raises(ValueError, match="normalisation"):
        load_denoise_config(_config(bone_studies, epochs=1, name="bad.toml", normalisation="slice"))


def test_seed_003_schedule_divides_the_rate_by_10_for_the_last_fifth():
    config = DenoiseConfig()  # 100 epochs, drop at 0.8
    rates = [learning_rate(config, epoch) for epoch in (0, 79, 80, 99)]
    base = config.optim.learning_rate
    assert rates == pytest.approx([base, base, base / 10, base / 10])
