"""Train the U2-Net of seed 003 on paired fast / standard bone SPECT phantoms.

``python -m trainer.denoise.train --config trainer/configs/u2net_spect_cpu.toml --run runs/u2net_spect``

Cases are split by case (seed 003: half for training, half for testing; the split is saved as
``<run>/split.json``); training slices are drawn from the training cases only.  A checkpoint is
written after every epoch (``<run>/checkpoint.pt``) and an interrupted run resumes from it when
started again with the same arguments.  Deterministic for a given seed on one machine and device.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler
from tqdm import tqdm

from trainer.denoise.config import DenoiseConfig, load_denoise_config
from trainer.denoise.data import SliceDataset, cache_cases, load_case
from trainer.denoise.losses import deep_supervision_loss
from trainer.networks.u2net import U2Net
from trainer.schedules import tenfold_drop
from trainer.split import split_cases

logger = logging.getLogger(__name__)


def build_u2net(config: DenoiseConfig) -> U2Net:
    """The configured U2-Net (2 input channels with the CT, 1 without)."""
    m = config.model
    return U2Net(2 if m.use_ct else 1, m.mid_channels, m.out_channels, m.decoder_mid_channels)


def split_of(config: DenoiseConfig) -> tuple[list[Path], list[Path]]:
    """Cached case files of the training and the test part (by case, seeded)."""
    paths = cache_cases(config.data.studies, config.data.cache)
    if config.data.max_cases:
        paths = paths[: config.data.max_cases]
    split = split_cases(
        [p.stem for p in paths], test_fraction=config.data.test_fraction, folds=1, seed=config.optim.seed
    )
    by_name = {p.stem: p for p in paths}
    return [by_name[c] for c in split.train], [by_name[c] for c in split.test]


def learning_rate(config: DenoiseConfig, epoch: int) -> float:
    """Seed 003's schedule: the initial rate, divided by 10 from ``drop_at`` of the epochs on."""
    o = config.optim
    return tenfold_drop(o.learning_rate, o.drop_at, o.epochs, epoch)


def device_of(config: DenoiseConfig) -> torch.device:
    """``auto``: CUDA when present, else the CPU."""
    if config.optim.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.optim.device)


def train(config: DenoiseConfig, run: Path, *, stop_after: int | None = None) -> tuple[nn.Module, list[dict]]:
    """Train (or resume) into ``run``; returns the model and the per-epoch history.

    ``stop_after``: stop once this many epochs are done in all (the schedule is still the one of
    ``config.optim.epochs``); running again resumes from there.
    """
    run.mkdir(parents=True, exist_ok=True)
    random.seed(config.optim.seed)
    torch.manual_seed(config.optim.seed)
    torch.set_num_threads(config.optim.threads)
    device = device_of(config)
    train_paths, test_paths = split_of(config)
    (run / "split.json").write_text(
        json.dumps({"train": [p.stem for p in train_paths], "test": [p.stem for p in test_paths]}, indent=2)
    )
    (run / "config.json").write_text(json.dumps(asdict(config), indent=2, default=str))
    dataset = SliceDataset(
        [load_case(p) for p in train_paths],
        use_ct=config.model.use_ct,
        normalisation=config.model.normalisation,
        crop=config.optim.crop,
        seed=config.optim.seed,
    )
    model = build_u2net(config).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.optim.learning_rate)
    history: list[dict] = []
    start = _resume(run / "checkpoint.pt", model, optimiser, history)
    generator = torch.Generator().manual_seed(config.optim.seed)
    steps = config.optim.steps_per_epoch
    last = config.optim.epochs if stop_after is None else min(stop_after, config.optim.epochs)
    for epoch in range(start, last):
        dataset.set_epoch(epoch)
        generator.manual_seed(config.optim.seed * 1000 + epoch)
        sampler = RandomSampler(
            dataset,
            replacement=bool(steps),
            num_samples=steps * config.optim.batch_size if steps else None,
            generator=generator,
        )
        loader = DataLoader(dataset, batch_size=config.optim.batch_size, sampler=sampler, drop_last=True)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(config, epoch)
        model.train()
        losses = []
        t0 = time.perf_counter()
        with tqdm(loader, desc=f"epoch {epoch + 1}/{config.optim.epochs}", unit="batch", leave=False) as bar:
            for x, y, m in bar:
                x, y, m = x.to(device), y.to(device), m.to(device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.optim.precision == "bf16"):
                    outputs = model(x)
                loss = deep_supervision_loss(
                    tuple(o.float() for o in outputs),
                    y,
                    m,
                    alpha=config.loss.alpha,
                    beta=config.loss.beta,
                    w_final=config.loss.w_final,
                    w_side=config.loss.w_side,
                )
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                losses.append(float(loss.detach()))
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        history.append(
            {
                "epoch": epoch + 1,
                "loss": float(np.mean(losses)),
                "lr": learning_rate(config, epoch),
                "seconds": time.perf_counter() - t0,
            }
        )
        logger.info("epoch %d: loss %.4f (%.0f s)", epoch + 1, history[-1]["loss"], history[-1]["seconds"])
        print(json.dumps(history[-1]), flush=True)
        _checkpoint(run / "checkpoint.pt", model, optimiser, history)
    return model, history


def _checkpoint(path: Path, model: nn.Module, optimiser: torch.optim.Optimizer, history: list[dict]) -> None:
    partial = path.with_suffix(".partial")
    torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "history": history}, partial)
    partial.replace(path)


def _resume(path: Path, model: nn.Module, optimiser: torch.optim.Optimizer, history: list[dict]) -> int:
    if not path.exists():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    history.extend(state["history"])
    logger.info("resumed from %s after epoch %d", path, len(history))
    return len(history)


def load_trained(config: DenoiseConfig, run: Path) -> nn.Module:
    """The model of ``run``'s last checkpoint, in eval mode on the CPU."""
    model = build_u2net(config)
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.denoise.train", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="TOML configuration")
    parser.add_argument("--run", type=Path, required=True, help="run folder (checkpoint, split, history)")
    parser.add_argument("--stop-after", type=int, help="stop after this many epochs in all (resume later)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = load_denoise_config(args.config)
    _, history = train(config, args.run, stop_after=args.stop_after)
    print(f"trained {len(history)} epoch(s); checkpoint {args.run / 'checkpoint.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
