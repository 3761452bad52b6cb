"""Configuration of a CTP Transformer run: a TOML file loaded into frozen dataclasses.

Defaults are seed 002's (section 2.2-2.3): 500,000 simulated curves split 0.8/0.2, Adam, batch 1024,
100 epochs, learning rate warmed up to 3e-5 over the first 10 % then cosine-annealed, loss term
contributions 1:1:7:1.  ``trainer/configs/ctp_transformer_cpu.toml`` scales this down for one CPU thread.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import config_section


@dataclass(frozen=True)
class CtpDataConfig:
    """How many curves are simulated (seeded), where they are cached and how they are split."""

    curves: int = 500_000
    seed: int = 0
    cache: Path = Path("data/ctp_curves")
    val_fraction: float = 0.2
    chunk: int = 2_000
    """Curves simulated at a time (memory of the 0.1 s grid)."""

    def __post_init__(self) -> None:
        if self.curves < 2 or not 0.0 < self.val_fraction < 1.0:
            raise ValueError("data.curves must be >= 2 and data.val_fraction in (0, 1)")


@dataclass(frozen=True)
class CtpModelConfig:
    """Keywords of :class:`trainer.networks.ctp_transformer.CtpTransformer` (paper: 3 layers, 64, 16 heads)."""

    d_model: int = 64
    n_heads: int = 16
    n_encoder_layers: int = 3
    n_decoder_layers: int = 3
    dim_feedforward: int = 256
    dropout: float = 0.1
    kernel_size: int = 3


@dataclass(frozen=True)
class CtpLossConfig:
    """Eq. 2: relative contributions of the BAD, local AIF, CTC and smoothness terms at calibration."""

    ratios: tuple[float, ...] = (1.0, 1.0, 7.0, 1.0)
    calibration_batches: int = 4
    """Training batches on which the untrained network's term means fix the lambdas."""

    def __post_init__(self) -> None:
        if len(self.ratios) != 4 or min(self.ratios) <= 0:
            raise ValueError(f"loss.ratios must be four positive numbers, got {self.ratios}")


@dataclass(frozen=True)
class CtpOptimConfig:
    """Adam with linear warm-up over ``warmup_fraction`` of the steps, then cosine annealing to 0."""

    epochs: int = 100
    batch_size: int = 1024
    micro_batch: int = 128
    """Curves per forward pass; gradients are accumulated up to ``batch_size`` (memory: 16 heads x N^2)."""
    learning_rate: float = 3e-5
    warmup_fraction: float = 0.1
    bucket_batches: int = 50
    """Batches drawn at random, then sorted by curve length, so a batch holds curves of similar length."""
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise ValueError("optim.epochs and optim.batch_size must be >= 1 and optim.learning_rate > 0")
        if self.batch_size % self.micro_batch:
            raise ValueError(f"optim.batch_size {self.batch_size} must be a multiple of micro_batch {self.micro_batch}")


@dataclass(frozen=True)
class CtpConfig:
    """A whole CTP Transformer run."""

    data: CtpDataConfig = field(default_factory=CtpDataConfig)
    model: CtpModelConfig = field(default_factory=CtpModelConfig)
    loss: CtpLossConfig = field(default_factory=CtpLossConfig)
    optim: CtpOptimConfig = field(default_factory=CtpOptimConfig)


SECTIONS: dict[str, type] = {
    "data": CtpDataConfig,
    "model": CtpModelConfig,
    "loss": CtpLossConfig,
    "optim": CtpOptimConfig,
}


def load_ctp_config(path: Path) -> CtpConfig:
    """Read a TOML file; a relative ``data.cache`` is taken relative to the working directory."""
    path = Path(path)
    raw = tomllib.loads(path.read_text())
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ValueError(f"{path}: unknown sections {unknown}; known: {sorted(SECTIONS)}")
    return ctp_config_from_dict(raw)


def ctp_config_from_dict(values: dict[str, Any]) -> CtpConfig:
    """The inverse of ``dataclasses.asdict`` (a run's ``config.json``); paths stay as written."""
    return CtpConfig(**{k: config_section(cls, values.get(k, {}), k) for k, cls in SECTIONS.items()})
