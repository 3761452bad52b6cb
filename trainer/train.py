"""Training of ARNN / DDRAN on per-lung samples: masked BCE (seed 000 Eq. 3), Adam, resumable checkpoints.

    python -m trainer.train --config trainer/configs/ddran_cpu.toml --out runs/ddran --stage final

Stages: ``cv`` trains one model per cross-validation fold and reports validation metrics;
``evaluate`` tests the last checkpoint of ``final`` (also while it is still training);
``final`` fits on the whole training part, evaluates on the held-out test cases (network and
the HU baseline, ``metrics.md``) and, with ``--export models/<name>``, writes the TorchScript
model and its metadata.  A run
directory holds ``checkpoint.pt`` (model, optimiser, epoch, history, RNG states: an interrupted
run resumes from the last finished epoch), ``history.json`` and, for ``final``, ``model_eager.pt``.

With ``optim.ema_decay`` > 0 the run also keeps an exponential moving average of the weights and
batch-norm statistics (``torch.optim.swa_utils.AveragedModel``), updated after every step; that
average is what the monitor lungs score, what the test metrics are of and what is exported.  The last
epoch's history also scores the plain weights on the monitor lungs (``raw_*`` keys), for comparison.

Data-parallel on several processes (DDP, :mod:`trainer.distributed`; ``batch_size`` is per process)::

    torchrun --standalone --nproc_per_node 2 -m trainer.train --config ... --out runs/ddran --stage final

Each rank trains on its own share of every epoch's samples and scores its share of the lungs; rank 0
alone writes the run directory, which then also holds ``distributed.json`` (the samples each rank
trained on and the checksum of the parameters, which all ranks agree on).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from core.metrics import METRIC_KEYS
from trainer.averaging import average_state, exported_weights, moving_average, restore_average
from trainer.config import TrainConfig, load_config
from trainer.data import LungSample, load_sample
from trainer.distributed import SINGLE, Distributed, init_distributed
from trainer.evaluate import evaluate, write_report
from trainer.export import display_path, export_model
from trainer.report import write_training_report
from trainer.split import case_of, split_cases

logger = logging.getLogger(__name__)

TORCH_THREADS = 2


def build_model(config: TrainConfig) -> nn.Module:
    """The configured network (imported here so that data preparation does not need it)."""
    from trainer.networks.arnn import ARNN
    from trainer.networks.ddran import DDRAN

    kwargs = {"channels": config.model.channels, "dropout": config.model.dropout}
    model = DDRAN(**kwargs) if config.model.kind == "ddran" else ARNN(**kwargs)
    # channels-last 3-D layout: oneDNN's faster convolution path, 1.9x per training step measured on 2 CPU cores
    return model.to(memory_format=torch.channels_last_3d)


def outputs_of(config: TrainConfig) -> tuple[str, ...]:
    """Function names predicted by the configured model, in output order."""
    return ("perfusion", "ventilation") if config.model.kind == "ddran" else (config.model.function,)


def masked_bce(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged over the lung voxels only (seed 000 Eq. 3, N = voxels in the lung).

    The paper averages over the non-zero voxels; here that is the lung mask of the crop, so that
    zero-valued defects inside the lung still count.
    """
    loss = nn.functional.binary_cross_entropy(prediction.clamp(1e-6, 1 - 1e-6), target, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp(min=1.0)


def seed_everything(seed: int, threads: int = TORCH_THREADS) -> None:
    """Python and torch RNGs, deterministic torch kernels and ``threads`` intra-op threads.

    numpy code here takes explicit Generators.
    """
    random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(threads)


def _batch(samples: list[LungSample], names: tuple[str, ...]) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    ct = torch.from_numpy(np.stack([s.ct for s in samples])[:, None]).to(memory_format=torch.channels_last_3d)
    mask = torch.from_numpy(np.stack([s.mask for s in samples])[:, None].astype(np.float32))
    targets = [torch.from_numpy(np.stack([s.targets[n] for s in samples])[:, None]) for n in names]
    return ct, targets, mask


def device_of(config: TrainConfig) -> torch.device:
    """The configured device; ``auto`` is CUDA when present (a lent GPU), else the CPU."""
    if config.optim.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.optim.device)


def _autocast(config: TrainConfig | None, device: torch.device) -> torch.autocast:
    """bfloat16 autocast when the configuration asks for it; fp32 without a configuration."""
    enabled = config is not None and config.optim.precision == "bf16"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def _loss(
    model: nn.Module, samples: list[LungSample], names: tuple[str, ...], config: TrainConfig, device: torch.device
) -> torch.Tensor:
    ct, targets, mask = _batch(samples, names)
    ct, mask = ct.to(device), mask.to(device)
    with _autocast(config, device):
        output = model(ct)
    predictions = output if isinstance(output, tuple) else (output,)
    losses = (masked_bce(p.float(), t.to(device), mask) for p, t in zip(predictions, targets))
    return sum(losses, torch.zeros((), device=device))


def _learning_rate(config: TrainConfig, epoch: int) -> float:
    """Learning rate of ``epoch`` (0-based): constant, or a cosine from the configured rate to 0."""
    if config.optim.schedule == "constant":
        return config.optim.learning_rate
    return 0.5 * config.optim.learning_rate * (1.0 + math.cos(math.pi * epoch / config.optim.epochs))


def monitor_metrics(
    model: nn.Module, config: TrainConfig, samples: list[LungSample], world: Distributed = SINGLE
) -> dict[str, float]:
    """Mean metrics of the network against SPECT over ``samples``: ``<function>_<metric>`` keys.

    Under DDP every rank scores its share of ``samples`` and the rows of all ranks are pooled.
    """
    if not samples:
        return {}
    names = outputs_of(config)
    rows = [
        row
        for row in world.gather(evaluate(world.split(samples), predictor(model, names, config), names))
        if row["method"] == "network" and row["reference"] == "spect"
    ]
    return {
        f"{name}_{metric}": float(np.nanmean([r[metric] for r in rows if r["function"] == name]))
        for name in names
        for metric in METRIC_KEYS
    }


def train_model(
    config: TrainConfig,
    samples: list[LungSample],
    run_dir: Path,
    monitor: list[LungSample] | None = None,
    world: Distributed = SINGLE,
) -> tuple[nn.Module, list[dict]]:
    """Train on ``samples`` for ``config.optim.epochs`` epochs, resuming from ``run_dir/checkpoint.pt``.

    After every epoch the history gets the mean training loss, the learning rate, the epoch's
    seconds and, when ``monitor`` lungs are given, the network's metrics on them.  Under DDP
    (``world`` from :func:`trainer.distributed.init_distributed`) each rank trains on its share of the
    epoch's samples, the loss is averaged over the ranks and only rank 0 writes files; the model
    returned is the bare network on every rank, or its moving average when the run keeps one.
    """
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(config.optim.seed, max(1, TORCH_THREADS // world.local_world_size))
    device = world.device(device_of(config))
    network = build_model(config).to(device)
    optimiser = torch.optim.Adam(network.parameters(), lr=config.optim.learning_rate)
    ema = moving_average(network, config.optim.ema_decay)
    kept = network if ema is None else ema.module
    history: list[dict] = []
    start = _resume(run_dir / "checkpoint.pt", network, optimiser, history, ema)
    model = world.wrap(network)
    order_rng = np.random.default_rng(config.optim.seed)
    for _ in range(start):  # replay the shuffles of finished epochs, so a resumed run continues identically
        order_rng.permutation(len(samples))
    shards: list[list[str]] = []
    for epoch in range(start, config.optim.epochs):
        order = world.shard(order_rng.permutation(len(samples)))
        batches = [order[i : i + config.optim.batch_size] for i in range(0, len(order), config.optim.batch_size)]
        if config.optim.max_steps_per_epoch:
            batches = batches[: config.optim.max_steps_per_epoch]
        shards.append([samples[i].name for batch in batches for i in batch])
        if world.enabled:  # each rank its own dropout masks, reproducible per epoch (also after a resume)
            torch.manual_seed(int(np.random.SeedSequence([config.optim.seed, epoch, world.rank]).generate_state(1)[0]))
        started = time.perf_counter()
        losses = _train_epoch(model, optimiser, [[samples[i] for i in b] for b in batches], config, epoch, world, ema)
        world.average_buffers(network)
        if ema is not None:  # each rank averaged its own batch-norm statistics
            world.average_buffers(ema.module)
        entry = {
            "epoch": epoch + 1,
            "train_loss": world.mean(float(np.mean(losses))),
            "learning_rate": _learning_rate(config, epoch),
            "seconds": time.perf_counter() - started,
        }
        entry.update(monitor_metrics(kept, config, monitor or [], world))
        if ema is not None and epoch == config.optim.epochs - 1:
            raw = monitor_metrics(network, config, monitor or [], world)
            entry.update({f"raw_{key}": value for key, value in raw.items()})
        history.append(entry)
        if world.is_main:
            _checkpoint(run_dir / "checkpoint.pt", network, optimiser, history, ema)
            logger.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4g}" for k, v in entry.items() if k != "epoch"))
    if world.is_main:
        (run_dir / "history.json").write_text(json.dumps(history, indent=2))
    if world.enabled:
        _record_ranks(run_dir / "distributed.json", network, world, start, shards)
    return kept, history


def _train_epoch(
    model: nn.Module,
    optimiser: torch.optim.Optimizer,
    batches: list[list[LungSample]],
    config: TrainConfig,
    epoch: int,
    world: Distributed,
    ema: AveragedModel | None = None,
) -> list[float]:
    """One epoch of optimiser steps at the epoch's learning rate, each followed by the ``ema`` update; the losses."""
    model.train()
    for group in optimiser.param_groups:
        group["lr"] = _learning_rate(config, epoch)
    device = next(model.parameters()).device
    names = outputs_of(config)
    losses = []
    progress = tqdm(
        batches, desc=f"epoch {epoch + 1}/{config.optim.epochs}", unit="batch", leave=False, disable=not world.is_main
    )
    for batch in progress:
        optimiser.zero_grad()
        loss = _loss(model, batch, names, config, device)
        loss.backward()
        optimiser.step()
        if ema is not None:
            ema.update_parameters(model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model)
        losses.append(loss.detach().item())
    return losses


def _record_ranks(path: Path, model: nn.Module, world: Distributed, start: int, shards: list[list[str]]) -> None:
    """Check that the ranks' parameters agree and let rank 0 write which rank trained on which samples."""
    digest = world.check_in_sync(model)
    logger.info(
        "rank %d/%d: trained on %d samples, parameters sha256 %s",
        world.rank,
        world.world_size,
        sum(len(s) for s in shards),
        digest,
    )
    by_rank = world.gather([shards])
    if world.is_main:
        record = {
            "world_size": world.world_size,
            "backend": world.backend,
            "parameters_sha256": digest,
            "first_epoch": start + 1,
            "samples_by_rank": by_rank,
        }
        path.write_text(json.dumps(record, indent=2))


def _checkpoint(
    path: Path, model: nn.Module, optimiser: torch.optim.Optimizer, history: list[dict], ema: AveragedModel | None
) -> None:
    state: dict[str, Any] = {
        "model": model.state_dict(),
        "optimiser": optimiser.state_dict(),
        "history": history,
        "torch_rng": torch.get_rng_state(),
        **average_state(ema),
    }
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    partial.replace(path)


def _resume(
    path: Path, model: nn.Module, optimiser: torch.optim.Optimizer, history: list[dict], ema: AveragedModel | None
) -> int:
    if not path.exists():
        return 0
    state = torch.load(path, weights_only=False, map_location=next(model.parameters()).device)
    restore_average(ema, state, path)
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    history.extend(state["history"])
    torch.set_rng_state(state["torch_rng"])
    logger.info("resumed %s after epoch %d", path, len(history))
    return len(history)


@torch.no_grad()
def predict(model: nn.Module, sample: LungSample, config: TrainConfig | None = None) -> tuple[np.ndarray, ...]:
    """Model outputs for one sample, each ``(128, 64, 64)`` float32 in (0, 1)."""
    model.eval()
    device = next(model.parameters()).device
    ct = torch.from_numpy(sample.ct[None, None]).to(device, memory_format=torch.channels_last_3d)
    with _autocast(config, device):
        output = model(ct)
    outputs = output if isinstance(output, tuple) else (output,)
    return tuple(o[0, 0].float().cpu().numpy() for o in outputs)


def predictor(
    model: nn.Module, names: tuple[str, ...], config: TrainConfig | None = None
) -> Callable[[LungSample], dict[str, np.ndarray]]:
    """``sample -> {function name: prediction}`` for :func:`trainer.evaluate.evaluate`."""
    return lambda sample: dict(zip(names, predict(model, sample, config)))


def load_checkpoint_model(config: TrainConfig, path: Path) -> tuple[nn.Module, list[dict]]:
    """The configured network with the weights of a training checkpoint (their moving average when the run
    kept one), and its epoch history."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; train first (--stage final)")
    state = torch.load(path, weights_only=False, map_location="cpu")
    model = build_model(config)
    model.load_state_dict(state[exported_weights(state)])
    return model, state["history"]


def load_samples(config: TrainConfig, cases: tuple[str, ...]) -> list[LungSample]:
    """All samples of the given cases."""
    wanted = set(cases)
    return [load_sample(p) for p in sorted(config.data.samples.glob("*.npz")) if case_of(p) in wanted]


def _report_and_export(
    args: argparse.Namespace,
    config: TrainConfig,
    name: str,
    cases: tuple[tuple[str, ...], tuple[str, ...]],
    model: nn.Module,
    history: list[dict],
    rows: list[dict],
    held_out: list[LungSample],
) -> None:
    """Rank 0's part of a run: the metrics table, the training report and, for ``final``, the export."""
    train_cases, eval_cases = cases
    names = outputs_of(config)
    summary = write_report(args.out / name, rows)
    plots = write_training_report(
        args.out / name / "report", history, rows, held_out[:3], predictor(model, names), names
    )
    logger.info(
        "%s: trained on %d cases, evaluated on %d lungs:\n%s",
        name,
        len(train_cases),
        len(held_out),
        (args.out / name / "metrics.md").read_text(),
    )
    if name == "final" and args.export:
        train_set = set(train_cases)
        export_model(
            model,
            config,
            args.export,
            name=args.export.name,
            version=args.version,
            outputs=names,
            trained_on={
                "data": "digital thorax phantoms (core.simulation, training preset)",
                "train_cases": len(train_cases),
                "test_cases": len(eval_cases),
                "train_lungs": sum(1 for p in config.data.samples.glob("*.npz") if case_of(p) in train_set),
                "test_lungs": len(held_out),
                "samples": display_path(config.data.samples),
                "training_seconds": round(sum(h.get("seconds", 0.0) for h in history), 1),
                "epochs": len(history),
            },
            test_metrics=summary,
            extra_files=[args.out / name / "metrics.md", *plots],
        )
        logger.info("exported %s", args.export)


def run_stage(args: argparse.Namespace, config: TrainConfig, cases: list[str], world: Distributed = SINGLE) -> None:
    """Split ``cases``, then train (or load) and evaluate every run of ``args.stage``; rank 0 writes the results."""
    split = split_cases(cases, test_fraction=config.data.test_fraction, folds=config.data.folds, seed=config.optim.seed)
    if world.is_main:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "split.json").write_text(json.dumps(asdict(split), indent=2))
    runs = (
        [(f"fold{k}", *split.fold(k)) for k in range(len(split.folds))]
        if args.stage == "cv"
        else [("final", split.train, split.test)]
    )
    names = outputs_of(config)
    for name, train_cases, eval_cases in runs:
        held_out = load_samples(config, eval_cases)
        if args.stage == "evaluate":
            model, history = load_checkpoint_model(config, args.out / name / "checkpoint.pt")
        else:
            monitor = held_out[: config.optim.monitor_lungs]
            model, history = train_model(config, load_samples(config, train_cases), args.out / name, monitor, world)
        model = model.cpu().float()
        # fp32 on the CPU, as the app runs it; each rank scores its share of the lungs
        rows = world.gather(evaluate(world.split(held_out), predictor(model, names), names))
        if world.is_main:
            _report_and_export(args, config, name, (train_cases, eval_cases), model, history, rows, held_out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.train", description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--stage",
        choices=("cv", "final", "evaluate"),
        default="final",
        help="evaluate: test the last checkpoint of the final fit without training (e.g. while it runs)",
    )
    parser.add_argument("--export", type=Path, help="after the final fit, export to this models/<name> folder")
    parser.add_argument("--version", default="0.1.0", help="version written into metadata.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    cases = sorted({case_of(p) for p in config.data.samples.glob("*.npz")})
    if config.data.max_cases:
        cases = cases[: config.data.max_cases]
    if not cases:
        parser.error(f"no samples in {config.data.samples}; make them with python -m trainer.phantom_cohort")
    world = init_distributed(device_of(config))
    try:
        run_stage(args, config, cases, world)
    finally:
        world.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
