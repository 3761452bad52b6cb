"""Training configuration: a TOML file loaded into frozen dataclasses.

Example (``trainer/configs/ddran_cpu.toml``)::

    [data]
    samples = "data/phantom_training"     # folder of <case>_<side>.npz from trainer.phantom_cohort
    test_fraction = 0.4                   # seed 000: 84 train / 62 test lungs (about 60/40, by patient)
    folds = 4                             # cross-validation folds on the training part

    [model]
    kind = "ddran"                        # "ddran" (perfusion + ventilation) or "arnn" (one function)
    function = "perfusion"                # for "arnn": which function
    channels = [8, 16, 32, 64]            # paper: up to 128; smaller for CPU

    [optim]
    epochs = 30
    batch_size = 2
    learning_rate = 1e-3
    seed = 0
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

MODEL_KINDS = ("ddran", "arnn")


@dataclass(frozen=True)
class DataConfig:
    """Where the samples are and how cases are split (by patient: both lungs of a case stay together)."""

    samples: Path = Path("data/phantom_training")
    test_fraction: float = 0.4
    folds: int = 4
    max_cases: int = 0
    """0 = all cases in ``samples``."""


@dataclass(frozen=True)
class ModelConfig:
    """Network and its width; the paper's full width is ``channels = (16, 32, 64, 128)``."""

    kind: str = "ddran"
    function: str = "perfusion"
    channels: tuple[int, ...] = (16, 32, 64, 128)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model.kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        if self.function not in ("perfusion", "ventilation"):
            raise ValueError(f"model.function must be 'perfusion' or 'ventilation', got {self.function!r}")


@dataclass(frozen=True)
class OptimConfig:
    """Adam (seed 000: Adam, BCE), deterministic from ``seed`` on one machine and device."""

    epochs: int = 30
    batch_size: int = 2
    learning_rate: float = 1e-3
    seed: int = 0
    max_steps_per_epoch: int = 0
    """0 = one pass over the training samples per epoch; > 0 caps it (for quick runs and CI)."""
    schedule: str = "constant"
    """Learning rate over the epochs: ``constant`` (the papers) or ``cosine`` (decays to 0 at the last epoch)."""
    precision: str = "fp32"
    """``fp32``, or ``bf16``: autocast to bfloat16 (1.7x faster per step on this CPU, which has AVX512-BF16)."""
    device: str = "auto"
    """``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``."""
    monitor_lungs: int = 8
    """Held-out lungs scored after every epoch (the metric curves of the report); 0 = none."""
    ema_decay: float = 0.0
    """Keep an exponential moving average of the weights and batch-norm statistics, updated after every
    step with this decay; it is the model that is monitored, tested and exported.  0: off (the papers'
    plain weights)."""

    def __post_init__(self) -> None:
        choices = {"schedule": ("constant", "cosine"), "precision": ("fp32", "bf16"), "device": ("auto", "cpu", "cuda")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"optim.{key} must be one of {allowed}, got {getattr(self, key)!r}")
        if self.epochs < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise ValueError("optim.epochs and optim.batch_size must be >= 1 and optim.learning_rate > 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"optim.ema_decay must be in [0, 1), got {self.ema_decay}")


@dataclass(frozen=True)
class TrainConfig:
    """The whole configuration."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


def config_section(cls: type, values: dict[str, Any], name: str, base: Path | None = None) -> Any:
    """The dataclass ``cls`` from the TOML table ``[name]``: lists become tuples, Path fields Paths.

    With ``base``, relative Path fields are taken relative to it (the configuration file's folder).
    """
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown keys in [{name}]: {sorted(unknown)}; expected some of {sorted(known)}")
    converted = {}
    for key, value in values.items():
        default = getattr(cls(), key)
        if isinstance(default, Path):
            value = Path(value) if base is None else (base / value).resolve()
        elif isinstance(default, tuple):
            value = tuple(value)
        converted[key] = value
    return cls(**converted)


def load_config(path: Path) -> TrainConfig:
    """Read a TOML file; relative ``data.samples`` paths are taken relative to the file's folder."""
    raw = tomllib.loads(Path(path).read_text())
    unknown = set(raw) - {"data", "model", "optim"}
    if unknown:
        raise ValueError(f"unknown sections in {path}: {sorted(unknown)}; expected [data], [model], [optim]")
    data = config_section(DataConfig, raw.get("data", {}), "data")
    if not data.samples.is_absolute():
        data = DataConfig(**{**data.__dict__, "samples": (Path(path).parent / data.samples).resolve()})
    return TrainConfig(
        data,
        config_section(ModelConfig, raw.get("model", {}), "model"),
        config_section(OptimConfig, raw.get("optim", {}), "optim"),
    )
