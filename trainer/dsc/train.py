"""Train seed 004's stU-Net, or the 2D CNN baseline with the frames as channels, on DSC phantoms.

``python -m trainer.dsc.train --config trainer/configs/stunet_cpu.toml --run runs/stunet_dsc``

The network is the configuration's ``model.kind`` (:func:`build_network`); everything else is shared.

Cases are simulated, preprocessed and cached once (:mod:`trainer.dsc.data`) and split by case
(``<run>/split.json``; the test cases are never loaded here).  Every epoch draws ``strips_per_epoch`` of the
training strips (stride 8, every dose version; all of them when 0) in a seeded order, and Adam (a constant
rate as in the paper, or divided by 10 from ``optim.drop_at`` of the epochs on) minimises the L2 loss
between the predicted and the target strips of standardised CBV.  With ``optim.ema_decay`` > 0 an
exponential moving average of the weights (batch-norm statistics included) follows every step; it is
what is validated (the plain weights too, as ``raw_val_*``) and exported.  The loss is the mean squared error over
the BRAIN voxels of the batch: voxels outside the brain have no meaningful target (SVD gives no CBV there)
and are masked out.  A checkpoint is written after every epoch (``<run>/checkpoint.pt``:
weights, optimiser, RNG state, history) and an interrupted run resumes from it when started again;
``<run>/history.csv`` and ``history.json`` hold the train and validation losses (overall and per dose),
the strips seen and the throughput.  Deterministic for a given seed on one machine and thread count.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from trainer.averaging import average_state, exported_weights, moving_average, restore_average
from trainer.dsc.config import DscConfig, DscFrameCnnConfig, DscOptimConfig, load_dsc_config
from trainer.dsc.data import StripIndex, load_split, split_cases
from trainer.networks.frame_channel_cnn import FrameChannelCnn
from trainer.networks.stunet import StUNet
from trainer.schedules import tenfold_drop

logger = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]


def build_network(config: DscConfig) -> StUNet | FrameChannelCnn:
    """The network of ``config.model.kind``: the stU-Net or the 2D CNN with the frames as channels."""
    keywords = config.model.network_keywords()
    if isinstance(config.model, DscFrameCnnConfig):
        return FrameChannelCnn(frames=config.preprocessing.frames, **keywords)
    return StUNet(frames=config.preprocessing.frames, **keywords)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``(prediction - target)^2`` over the voxels where ``mask`` is 1 (0 when the mask is empty)."""
    return ((prediction.float() - target) ** 2 * mask).sum() / mask.sum().clamp_min(1.0)


def _forward(model: torch.nn.Module, x: torch.Tensor, precision: str) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        return model(x)


def train_step(model: torch.nn.Module, optimiser: torch.optim.Optimizer, batch: Batch, precision: str) -> float:
    """One Adam step on ``batch``; returns the masked L2 loss."""
    optimiser.zero_grad(set_to_none=True)
    loss = masked_mse(_forward(model, batch["x"], precision), batch["target"], batch["mask"])
    loss.backward()
    optimiser.step()
    return float(loss.detach())


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    cases: list[dict[str, np.ndarray]],
    index: StripIndex,
    members: np.ndarray,
    config: DscConfig,
) -> dict[str, float]:
    """Masked L2 over the validation strips ``members``, pooled over brain voxels, overall and per dose."""
    model.eval()
    sums: dict[float, list[float]] = {}
    for start in range(0, len(members), config.optim.batch_size):
        batch = index.batch(cases, members[start : start + config.optim.batch_size])
        squared = (_forward(model, batch["x"], config.optim.precision).float() - batch["target"]) ** 2 * batch["mask"]
        for i, dose in enumerate(batch["dose"].tolist()):
            total = sums.setdefault(dose, [0.0, 0.0])
            total[0] += float(squared[i].sum())
            total[1] += float(batch["mask"][i].sum())
    record = {"val_loss": sum(s for s, _ in sums.values()) / max(1.0, sum(n for _, n in sums.values()))}
    for dose in sorted(sums, reverse=True):
        record[f"val_loss_dose_{round(100 * dose)}"] = sums[dose][0] / max(1.0, sums[dose][1])
    return record


class Run:
    """The state of a run that a checkpoint holds, with saving and resuming."""

    def __init__(self, config: DscConfig, folder: Path) -> None:
        self.config, self.folder = config, folder
        torch.manual_seed(config.optim.seed)
        self.model = build_network(config)
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=config.optim.learning_rate)
        # the moving average of the weights and batch-norm statistics, when optim.ema_decay > 0
        self.ema = moving_average(self.model, config.optim.ema_decay)
        self.history: list[dict] = []

    @property
    def kept(self) -> torch.nn.Module:
        """The weights that are validated and exported: the moving average when there is one."""
        return self.model if self.ema is None else self.ema.module

    @property
    def path(self) -> Path:
        """``<run>/checkpoint.pt``."""
        return self.folder / "checkpoint.pt"

    def save(self) -> None:
        """Write the checkpoint atomically, plus ``history.json`` and ``history.csv``."""
        state: dict[str, Any] = {
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "history": self.history,
            "torch_rng": torch.get_rng_state(),
            **average_state(self.ema),
        }
        partial = self.path.with_suffix(".partial")
        torch.save(state, partial)
        partial.replace(self.path)
        (self.folder / "history.json").write_text(json.dumps(self.history, indent=2))
        with (self.folder / "history.csv").open("w", newline="") as f:
            columns = list(dict.fromkeys(key for record in self.history for key in record)) or ["epoch"]
            writer = csv.DictWriter(f, fieldnames=columns)  # a resumed run may have gained columns
            writer.writeheader()
            writer.writerows(self.history)

    def resume(self) -> bool:
        """Load the checkpoint if there is one; True when it was loaded."""
        if not self.path.exists():
            return False
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        restore_average(self.ema, state, self.path)
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.history = state["history"]
        torch.set_rng_state(state["torch_rng"])
        logger.info("resumed from %s after epoch %d", self.path, len(self.history))
        return True


def _subset(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` of ``n`` indices in a random order (all of them, shuffled, when ``count`` is 0 or >= n)."""
    order = rng.permutation(n)
    return order if count == 0 or count >= n else order[:count]


def learning_rate(optim: DscOptimConfig, epoch: int) -> float:
    """The rate of ``epoch`` (0-based): ``learning_rate``, divided by 10 from ``drop_at`` of the epochs on."""
    return tenfold_drop(optim.learning_rate, optim.drop_at, optim.epochs, epoch)


def _epoch(run: Run, cases: list[dict[str, np.ndarray]], index: StripIndex, epoch: int) -> tuple[float, int]:
    o = run.config.optim
    members = _subset(len(index), o.strips_per_epoch, np.random.default_rng([o.seed, epoch]))
    for group in run.optimiser.param_groups:  # also after a resume, whose optimiser state holds the old rate
        group["lr"] = learning_rate(o, epoch)
    run.model.train()
    losses = []
    batches = range(0, len(members), o.batch_size)
    with tqdm(batches, desc=f"epoch {epoch + 1}/{o.epochs}", unit="batch", leave=False) as bar:
        for start in bar:
            batch = index.batch(cases, members[start : start + o.batch_size])
            losses.append(train_step(run.model, run.optimiser, batch, o.precision))
            if run.ema is not None:
                run.ema.update_parameters(run.model)
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.4f}")
    return float(np.mean(losses)), len(members)


def _over_budget(run: Run, started: float, max_minutes: float | None) -> bool:
    """Whether another epoch at the last one's pace would end after ``max_minutes`` since ``started``."""
    if max_minutes is None or not run.history:
        return False
    return time.perf_counter() - started + run.history[-1]["seconds"] > 60.0 * max_minutes


def train(config: DscConfig, folder: Path, *, stop_after: int | None = None, max_minutes: float | None = None) -> Run:
    """Train (or resume) into ``folder``; returns the run.

    ``stop_after``: stop once this many epochs are done in all.  ``max_minutes``: do not start an
    epoch that would, at the last epoch's pace, end after this many minutes of this call.  Running again
    resumes.
    """
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.optim.threads)
    split = split_cases(config.data)
    (folder / "split.json").write_text(json.dumps({k: v.tolist() for k, v in split.items()}, indent=2))
    (folder / "config.json").write_text(json.dumps(asdict(config), indent=2, default=str))
    train_cases, val_cases = load_split(config, "train"), load_split(config, "val")
    p = config.preprocessing
    train_index = StripIndex.of(train_cases, p.strip_shape, p.train_stride)
    val_index = StripIndex.of(val_cases, p.strip_shape, p.train_stride)
    val_members = np.sort(_subset(len(val_index), config.optim.val_strips, np.random.default_rng(config.optim.seed)))
    logger.info("%d training strips, %d validation strips scored", len(train_index), len(val_members))
    run = Run(config, folder)
    run.resume()
    last = config.optim.epochs if stop_after is None else min(stop_after, config.optim.epochs)
    for epoch in range(len(run.history), last):
        if _over_budget(run, started, max_minutes):
            logger.info("stopping before epoch %d: the time budget of %s min would be exceeded", epoch + 1, max_minutes)
            break
        t0 = time.perf_counter()
        train_loss, strips = _epoch(run, train_cases, train_index, epoch)
        train_seconds = time.perf_counter() - t0
        record: dict = {"epoch": epoch + 1, "train_loss": train_loss}
        record["learning_rate"] = learning_rate(config.optim, epoch)
        record |= validate(run.kept, val_cases, val_index, val_members, config)
        if run.ema is not None:  # the plain weights too, to see what the average gives
            raw = validate(run.model, val_cases, val_index, val_members, config)
            record |= {f"raw_{key}": value for key, value in raw.items()}
        record |= {"strips": strips, "strips_per_s": strips / train_seconds, "seconds": time.perf_counter() - t0}
        run.history.append(record)
        print(json.dumps(record), flush=True)
        run.save()
    return run


def load_trained(config: DscConfig, folder: Path, *, plain: bool = False) -> tuple[StUNet | FrameChannelCnn, dict]:
    """The network of ``folder``'s checkpoint in eval mode, and the checkpoint.

    The weights are the moving average when the run kept one, unless ``plain``: then the last step's.
    """
    model = build_network(config)
    state = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(state[exported_weights(state, plain=plain)])
    return model.eval(), state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.dsc.train", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="TOML configuration")
    parser.add_argument("--run", type=Path, required=True, help="run folder (checkpoint, split, history)")
    parser.add_argument("--stop-after", type=int, help="stop after this many epochs in all (resume later)")
    parser.add_argument("--max-minutes", type=float, help="do not start an epoch that would end after this")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run = train(load_dsc_config(args.config), args.run, stop_after=args.stop_after, max_minutes=args.max_minutes)
    print(f"trained {len(run.history)} epoch(s); checkpoint {run.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
