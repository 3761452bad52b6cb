"""CTP Transformer training (seed 002 Eq. 2): the reconstruction, the calibrated weights, steps, schedule, resume.

Tolerances (stated once): ``reconstruct_tissue`` equals ``A R / (kappa 6000)`` with the deconvolution module's
matrix within rounding (``MATRIX_RTOL``, float64 inputs).  Against the simulator (0.1 s grid, then sampled)
the true local AIF and residue reconstruct the noise-free tissue curve with a relative RMS error that is a
discretisation error of the quadrature: median below ``RECON_MEDIAN_TRAINING`` at the training time steps (1-2 s), below
``RECON_MEDIAN_FINE`` at 0.25 s; the CTC loss term on the truth is below ``TRUTH_CTC_FRACTION`` of the zero
prediction's.  Weighted reference terms at calibration are 1:1:7:1 within ``RATIO_RTOL``.
"""

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from core.perfusion.datasets import training_parameters
from core.perfusion.deconvolution import convolution_matrix
from core.perfusion.simulation import KAPPA, ML_100G_MIN_PER_ML_G_S, simulate_curves
from trainer.ctp.config import CtpConfig, CtpDataConfig, CtpModelConfig, CtpOptimConfig, load_ctp_config
from trainer.ctp.data import bucketed_batches, collate, generate_curves, split_indices
from trainer.ctp.losses import TERMS, CtpLoss, loss_terms, reconstruct_tissue, valid_mask
from trainer.ctp.train import Run, calibrate, learning_rate, train, train_step
from trainer.networks.ctp_transformer import CtpTransformer

SEED = 3
MATRIX_RTOL = 1e-5
RECON_MEDIAN_TRAINING = 0.02
RECON_MEDIAN_FINE = 0.01
TRUTH_CTC_FRACTION = 1e-3
RATIO_RTOL = 1e-5
TINY_MODEL = CtpModelConfig(
    d_model=16, n_heads=4, n_encoder_layers=1, n_decoder_layers=1, dim_feedforward=32, dropout=0.0
)
CONFIG_FILE = Path(__file__).parents[2] / "trainer" / "configs" / "ctp_transformer_cpu.toml"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def simulated(n: int, dt_s: float | None = None):
    rng = np.random.default_rng(SEED)
    params = training_parameters(rng, n)
    if dt_s is not None:
        params = dataclasses.replace(params, dt_s=np.full(n, dt_s), n_frames=(params.n_frames * 1.5 / dt_s).astype(int))
    return simulate_curves(params, rng)


def relative_reconstruction_error(sim) -> np.ndarray:
    rec = reconstruct_tissue(torch.tensor(sim.local_aif), torch.tensor(sim.residue), torch.tensor(sim.params.dt_s))
    mask = valid_mask(torch.tensor(sim.lengths), rec.shape[1]).numpy()
    diff = ((rec.numpy() - sim.tissue_clean) * mask) ** 2
    return np.sqrt(diff.sum(1) / ((sim.tissue_clean * mask) ** 2).sum(1))


def test_reconstruction_uses_the_deconvolution_matrix():
    sim = simulated(3)
    rec = reconstruct_tissue(torch.tensor(sim.local_aif), torch.tensor(sim.residue), torch.tensor(sim.params.dt_s))
    for i in range(3):
        n = sim.lengths[i]
        matrix = convolution_matrix(sim.local_aif[i, :n], float(sim.params.dt_s[i]))
        expected = matrix @ sim.residue[i, :n] / (KAPPA * ML_100G_MIN_PER_ML_G_S)
        np.testing.assert_allclose(rec[i, :n].numpy(), expected, rtol=MATRIX_RTOL, atol=1e-9)


def test_truth_reconstructs_the_noise_free_tissue_curve():
    assert np.median(relative_reconstruction_error(simulated(64))) < RECON_MEDIAN_TRAINING
    assert np.median(relative_reconstruction_error(simulated(16, dt_s=0.25))) < RECON_MEDIAN_FINE


def test_ctc_term_of_the_truth_is_near_zero():
    sim = simulated(32)
    keys = {"tissue": sim.tissue_clean, "global_aif": sim.global_aif, "local_aif": sim.local_aif, "t_s": sim.t_s}
    batch = {k: torch.tensor(v, dtype=torch.float32) for k, v in keys.items()}
    batch |= {"lengths": torch.tensor(sim.lengths), "dt_s": torch.tensor(sim.params.dt_s, dtype=torch.float32)}
    batch["delay_s"] = torch.tensor(sim.params.delay_s, dtype=torch.float32)
    truth = loss_terms((batch["local_aif"], torch.tensor(sim.residue, dtype=torch.float32), batch["delay_s"]), batch)
    zeros = torch.zeros_like(batch["local_aif"])
    trivial = loss_terms((zeros, zeros, torch.zeros_like(batch["delay_s"])), batch)
    assert truth["bad"] == 0 and truth["local_aif"] == 0
    assert truth["ctc"] < TRUTH_CTC_FRACTION * trivial["ctc"]


def test_calibrated_terms_contribute_1_1_7_1():
    loss = CtpLoss()
    raw = {"bad": 90.0, "local_aif": 0.4, "ctc": 0.45, "smoothness": 6e-4}
    lambdas = loss.calibrate(raw)
    assert bool(loss.calibrated) and lambdas.shape == (3,)
    weighted = loss.weighted({k: torch.tensor(v) for k, v in raw.items()})
    ratios = torch.stack([weighted[k] for k in TERMS]) / weighted["bad"]
    torch.testing.assert_close(ratios, torch.tensor([1.0, 1.0, 7.0, 1.0]), rtol=RATIO_RTOL, atol=0)


@pytest.fixture(scope="module")
def tiny_curves() -> dict[str, np.ndarray]:
    return generate_curves(48, SEED, progress=False)


def tiny_network() -> CtpTransformer:
    torch.manual_seed(0)
    return CtpTransformer(**dataclasses.asdict(TINY_MODEL))


def test_calibration_on_the_size_of_each_target(tiny_curves):
    loss = CtpLoss()
    batch = collate(tiny_curves, np.arange(16))
    raw = calibrate(loss, [batch])
    mask = valid_mask(batch["lengths"], batch["tissue"].shape[1])
    scale = (batch["global_aif"] * mask).amax(dim=1, keepdim=True)
    tissue_power = (((batch["tissue"] / scale) ** 2 * mask).sum(1) / mask.sum(1)).mean()
    truth = loss_terms((batch["local_aif"], batch["residue"], batch["delay_s"]), batch)
    assert raw["bad"] == pytest.approx(float((batch["delay_s"] ** 2).mean()), rel=1e-6)
    assert raw["ctc"] == pytest.approx(float(tissue_power), rel=1e-5)
    assert raw["smoothness"] == pytest.approx(float(truth["smoothness"]), rel=1e-6)
    weighted = loss.weighted({k: torch.tensor(v) for k, v in raw.items()})
    assert [float(weighted[k] / weighted["bad"]) for k in TERMS] == pytest.approx([1, 1, 7, 1], rel=RATIO_RTOL)


def test_two_steps_reduce_the_loss_on_a_fixed_batch(tiny_curves):
    model, loss = tiny_network(), CtpLoss()
    batch = collate(tiny_curves, np.arange(16))
    calibrate(loss, [batch])
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    first = train_step(model, loss, optimiser, batch, micro=8)
    train_step(model, loss, optimiser, batch, micro=8)
    with torch.no_grad():
        after, _ = loss(model(batch["tissue"], batch["global_aif"], batch["t_s"], batch["lengths"]), batch)
    assert float(after) < first


def test_schedule_warms_up_then_anneals():
    config = CtpConfig(optim=CtpOptimConfig(learning_rate=1e-3, warmup_fraction=0.1))
    rates = [learning_rate(config, s, 100) for s in range(100)]
    assert rates[0] == pytest.approx(1e-4) and max(rates) == pytest.approx(1e-3) and int(np.argmax(rates)) == 9
    assert all(a >= b for a, b in itertools.pairwise(rates[9:])) and rates[-1] < 1e-5


def test_batches_cover_every_curve_once_with_similar_lengths():
    lengths = np.random.default_rng(0).integers(45, 121, 1000)
    batches = bucketed_batches(lengths, 32, 4, np.random.default_rng(1))
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 0.5 * np.ptp(lengths)
    train_index, val_index = split_indices(1000, 0.2, 0)
    assert len(val_index) == 200 and not set(train_index) & set(val_index)


def tiny_config(cache: Path) -> CtpConfig:
    return CtpConfig(
        data=CtpDataConfig(curves=40, seed=SEED, cache=cache, val_fraction=0.2, chunk=20),
        model=TINY_MODEL,
        optim=CtpOptimConfig(epochs=2, batch_size=16, micro_batch=8, learning_rate=1e-3, bucket_batches=2),
    )


def test_resume_gives_the_same_state(tmp_path):
    config = tiny_config(tmp_path / "cache")
    straight = train(config, tmp_path / "straight")
    train(config, tmp_path / "resumed", stop_after=1)
    assert len(Run(config, tmp_path / "resumed").history) == 0  # a fresh Run has not resumed yet
    resumed = train(config, tmp_path / "resumed")
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(straight.loss.lambdas, resumed.loss.lambdas)
    assert (tmp_path / "resumed" / "history.csv").read_text().count("\n") == 3


def test_cpu_configuration_loads():
    config = load_ctp_config(CONFIG_FILE)
    assert config.model.d_model == 64 and config.model.n_heads == 16 and config.loss.ratios == (1.0, 1.0, 7.0, 1.0)
    assert config.optim.batch_size % config.optim.micro_batch == 0
