"""Train seed 002's CTP Transformer on simulated curves.

``python -m trainer.ctp.train --config trainer/configs/ctp_transformer_cpu.toml --run runs/ctp_transformer``

The curves are simulated once and cached (:mod:`trainer.ctp.data`), split 0.8/0.2 (seeded; the split
is saved as ``<run>/split.npz``).  Before the first step the loss weights are calibrated on the
training curves (:func:`calibrate`).  A checkpoint is written after every epoch
(``<run>/checkpoint.pt``: weights, optimiser, lambdas, RNG state, history) and an interrupted run
resumes from it when started again; ``<run>/history.csv`` and ``history.json`` hold the train and
validation losses and validation CBF / BAD RMSE per epoch.  Deterministic for a given seed on one
machine and thread count.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from trainer.ctp.config import CtpConfig, load_ctp_config
from trainer.ctp.data import bucketed_batches, cached_curves, collate, in_order, split_indices
from trainer.ctp.losses import TERMS, CtpLoss, loss_terms
from trainer.networks.ctp_transformer import CtpTransformer

logger = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]


def build_network(config: CtpConfig) -> CtpTransformer:
    """The configured network."""
    return CtpTransformer(**asdict(config.model))


def learning_rate(config: CtpConfig, step: int, total_steps: int) -> float:
    """Linear warm-up to the peak over ``warmup_fraction`` of the steps, then cosine annealing to 0."""
    o = config.optim
    warmup = max(1, round(o.warmup_fraction * total_steps))
    if step < warmup:
        return o.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return o.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))


def forward(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The network on one collated batch."""
    return model(batch["tissue"], batch["global_aif"], batch["t_s"], batch["lengths"])


def micro_batches(batch: Batch, size: int) -> list[Batch]:
    """``batch`` cut into pieces of at most ``size`` curves."""
    n = len(batch["lengths"])
    return [{k: v[i : i + size] for k, v in batch.items()} for i in range(0, n, size)]


def train_step(
    model: torch.nn.Module, loss: CtpLoss, optimiser: torch.optim.Optimizer, batch: Batch, micro: int
) -> float:
    """One optimiser step on ``batch``, gradients accumulated over micro-batches; returns the loss."""
    optimiser.zero_grad(set_to_none=True)
    n = len(batch["lengths"])
    total = 0.0
    for part in micro_batches(batch, micro):
        value, _ = loss(forward(model, part), part)
        (value * len(part["lengths"]) / n).backward()
        total += float(value.detach()) * len(part["lengths"]) / n
    optimiser.step()
    return total


@torch.no_grad()
def calibrate(loss: CtpLoss, batches: list[Batch]) -> dict[str, float]:
    """Calibrate ``loss``'s lambdas on the size of each term's target; returns the mean reference terms.

    The references are the terms of the zero prediction (``mean(delta^2)``, ``mean((C_a,local / s)^2)``,
    ``mean((C / s)^2)``) and, for the smoothness term, the curvature of the true residues: each term is
    weighted as a relative error, whatever the network's initial outputs (see :mod:`trainer.ctp.losses`).
    """
    sums = dict.fromkeys(TERMS, 0.0)
    for batch in batches:
        zeros = torch.zeros_like(batch["local_aif"])
        trivial = loss_terms((zeros, zeros, torch.zeros_like(batch["delay_s"])), batch)
        truth = loss_terms((batch["local_aif"], batch["residue"], batch["delay_s"]), batch)
        for name in TERMS:
            sums[name] += float(truth[name] if name == "smoothness" else trivial[name]) / len(batches)
    loss.calibrate(sums)
    return sums


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, loss: CtpLoss, curves: dict[str, np.ndarray], index: np.ndarray, batch_size: int
) -> dict[str, float]:
    """Validation loss (per-curve mean) and RMSE of CBF (``R_hat[0]``, ml/100 g/min) and BAD (s)."""
    model.eval()
    total, cbf_se, bad_se = 0.0, 0.0, 0.0
    for batch in in_order(curves, index, batch_size):
        outputs = forward(model, batch)
        value, _ = loss(outputs, batch)
        total += float(value) * len(batch["lengths"])
        cbf_se += float(((outputs[1][:, 0] - batch["cbf_ml_100g_min"]) ** 2).sum())
        bad_se += float(((outputs[2] - batch["delay_s"]) ** 2).sum())
    n = len(index)
    return {
        "val_loss": total / n,
        "val_cbf_rmse_ml_100g_min": math.sqrt(cbf_se / n),
        "val_bad_rmse_s": math.sqrt(bad_se / n),
    }


class Run:
    """The state of a run that a checkpoint holds, with saving and resuming."""

    def __init__(self, config: CtpConfig, folder: Path) -> None:
        self.config, self.folder = config, folder
        torch.manual_seed(config.optim.seed)
        self.model = build_network(config)
        self.loss = CtpLoss(config.loss.ratios)
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=config.optim.learning_rate)
        self.history: list[dict] = []
        self.calibration: dict[str, float] = {}

    @property
    def path(self) -> Path:
        """``<run>/checkpoint.pt``."""
        return self.folder / "checkpoint.pt"

    def save(self) -> None:
        """Write the checkpoint atomically, plus ``history.json`` and ``history.csv``."""
        state = {
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "loss": self.loss.state_dict(),
            "history": self.history,
            "calibration": self.calibration,
            "torch_rng": torch.get_rng_state(),
        }
        partial = self.path.with_suffix(".partial")
        torch.save(state, partial)
        partial.replace(self.path)
        (self.folder / "history.json").write_text(json.dumps(self.history, indent=2))
        with (self.folder / "history.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.history[0]) if self.history else ["epoch"])
            writer.writeheader()
            writer.writerows(self.history)

    def resume(self) -> bool:
        """Load the checkpoint if there is one; True when it was loaded."""
        if not self.path.exists():
            return False
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.loss.load_state_dict(state["loss"])
        self.history, self.calibration = state["history"], state["calibration"]
        torch.set_rng_state(state["torch_rng"])
        logger.info("resumed from %s after epoch %d", self.path, len(self.history))
        return True


def _epoch(run: Run, curves: dict[str, np.ndarray], train_index: np.ndarray, epoch: int, steps_per_epoch: int) -> float:
    o = run.config.optim
    rng = np.random.default_rng([o.seed, epoch])
    batches = bucketed_batches(curves["lengths"][train_index], o.batch_size, o.bucket_batches, rng)
    run.model.train()
    losses = []
    with tqdm(batches, desc=f"epoch {epoch + 1}/{o.epochs}", unit="batch", leave=False) as bar:
        for i, members in enumerate(bar):
            lr = learning_rate(run.config, epoch * steps_per_epoch + i, o.epochs * steps_per_epoch)
            for group in run.optimiser.param_groups:
                group["lr"] = lr
            losses.append(
                train_step(run.model, run.loss, run.optimiser, collate(curves, train_index[members]), o.micro_batch)
            )
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.4f}")
    return float(np.mean(losses))


def _over_budget(run: Run, started: float, max_minutes: float | None) -> bool:
    """Whether another epoch at the last one's pace would end after ``max_minutes`` since ``started``."""
    if max_minutes is None or not run.history:
        return False
    return time.perf_counter() - started + run.history[-1]["seconds"] > 60.0 * max_minutes


def train(config: CtpConfig, folder: Path, *, stop_after: int | None = None, max_minutes: float | None = None) -> Run:
    """Train (or resume) into ``folder``; returns the run.

    ``stop_after``: stop once this many epochs are done in all.  ``max_minutes``: do not start an
    epoch that would, at the last epoch's pace, end after this many minutes of this call.  Either way
    the schedule stays that of ``config.optim.epochs``; running again resumes.
    """
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.optim.threads)
    d = config.data
    curves = cached_curves(d.cache, d.curves, d.seed, d.chunk)
    train_index, val_index = split_indices(d.curves, d.val_fraction, d.seed)
    np.savez(folder / "split.npz", train=train_index, val=val_index)
    (folder / "config.json").write_text(json.dumps(asdict(config), indent=2, default=str))
    run = Run(config, folder)
    if not run.resume():
        probe = np.random.default_rng([config.optim.seed, 2**31])
        members = bucketed_batches(curves["lengths"][train_index], config.optim.micro_batch, 1, probe)
        batches = [collate(curves, train_index[m]) for m in members[: config.loss.calibration_batches]]
        run.calibration = calibrate(run.loss, batches)
        logger.info("reference terms %s -> lambdas %s", run.calibration, run.loss.lambdas.tolist())
    steps = math.ceil(len(train_index) / config.optim.batch_size)
    last = config.optim.epochs if stop_after is None else min(stop_after, config.optim.epochs)
    for epoch in range(len(run.history), last):
        if _over_budget(run, started, max_minutes):
            logger.info("stopping before epoch %d: the time budget of %s min would be exceeded", epoch + 1, max_minutes)
            break
        t0 = time.perf_counter()
        train_loss = _epoch(run, curves, train_index, epoch, steps)
        record = {"epoch": epoch + 1, "train_loss": train_loss}
        record |= evaluate(run.model, run.loss, curves, val_index, config.optim.micro_batch)
        record |= {"lr_end": learning_rate(config, (epoch + 1) * steps - 1, config.optim.epochs * steps)}
        record |= {"seconds": time.perf_counter() - t0}
        run.history.append(record)
        print(json.dumps(record), flush=True)
        run.save()
    return run


def load_trained(config: CtpConfig, folder: Path) -> tuple[CtpTransformer, dict]:
    """The network of ``folder``'s checkpoint in eval mode, and the checkpoint."""
    model = build_network(config)
    state = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    return model.eval(), state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.ctp.train", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="TOML configuration")
    parser.add_argument("--run", type=Path, required=True, help="run folder (checkpoint, split, history)")
    parser.add_argument("--stop-after", type=int, help="stop after this many epochs in all (resume later)")
    parser.add_argument("--max-minutes", type=float, help="do not start an epoch that would end after this")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run = train(load_ctp_config(args.config), args.run, stop_after=args.stop_after, max_minutes=args.max_minutes)
    print(f"trained {len(run.history)} epoch(s); checkpoint {run.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
