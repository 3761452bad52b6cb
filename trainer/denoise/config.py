"""Configuration of a denoising run: a TOML file loaded into frozen dataclasses.

Example (``trainer/configs/u2net_spect_cpu.toml``)::

    [data]
    studies = "../../data/spect_bone"      # case_* bone studies from python -m core.simulation --kind bone
    cache = "../../data/spect_bone_cache"  # per-case npz (fast, standard, CT on the SPECT grid, lesions)
    test_fraction = 0.5                    # seed 003: 10 patients for training, 10 for testing

    [model]
    use_ct = true                          # false: the paper's no-CT ablation
    mid_channels = [16, 16, 16, 16, 16, 16]

    [optim]
    epochs = 20
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.nm.denoising import NORMALISATIONS
from trainer.config import config_section


@dataclass(frozen=True)
class DenoiseDataConfig:
    """Where the studies are, the cache of decoded cases, and the split by case."""

    studies: Path = Path("data/spect_bone")
    cache: Path = Path("data/spect_bone_cache")
    test_fraction: float = 0.5
    max_cases: int = 0
    """0 = all cases."""


@dataclass(frozen=True)
class DenoiseModelConfig:
    """U2-Net widths (default: Qin et al.'s full U2-Net) and whether the CT is an input."""

    use_ct: bool = True
    mid_channels: tuple[int, ...] = (32, 32, 64, 128, 256, 256)
    out_channels: tuple[int, ...] = (64, 128, 256, 512, 512, 512)
    decoder_mid_channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    normalisation: str = "volume"
    """Where the input and target averages are taken (:data:`core.nm.denoising.NORMALISATIONS`): ``volume``
    (seed 003, the shipped 1.0.0) or ``body`` (CT above -500 HU: the same scale whatever the field of view)."""

    def __post_init__(self) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"model.normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}")


@dataclass(frozen=True)
class DenoiseLossConfig:
    """Seed 003: alpha 0.5 (SSIM loss), beta 100 (lesion attention), deep supervision weights 1."""

    alpha: float = 0.5
    beta: float = 100.0
    w_final: float = 1.0
    w_side: float = 1.0


@dataclass(frozen=True)
class DenoiseOptimConfig:
    """Seed 003: Adam, learning rate 2e-4 divided by 10 after 80 % of the epochs, batch 4, axial slices."""

    epochs: int = 100
    batch_size: int = 4
    learning_rate: float = 2e-4
    drop_at: float = 0.8
    """Fraction of the epochs after which the learning rate is divided by 10."""
    steps_per_epoch: int = 0
    """0 = every training slice once per epoch; > 0: that many batches of randomly drawn slices."""
    crop: int = 96
    """Training window (a multiple of 32); inference runs on whole slices."""
    seed: int = 0
    precision: str = "fp32"
    """``fp32`` or ``bf16`` (autocast)."""
    threads: int = 2
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.crop % 32:
            raise ValueError(f"optim.crop must be a multiple of 32 (U2-Net pools five times), got {self.crop}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"optim.precision must be fp32 or bf16, got {self.precision!r}")


@dataclass(frozen=True)
class DenoiseConfig:
    """A whole denoising run."""

    data: DenoiseDataConfig = field(default_factory=DenoiseDataConfig)
    model: DenoiseModelConfig = field(default_factory=DenoiseModelConfig)
    loss: DenoiseLossConfig = field(default_factory=DenoiseLossConfig)
    optim: DenoiseOptimConfig = field(default_factory=DenoiseOptimConfig)


def load_denoise_config(path: Path) -> DenoiseConfig:
    """Read a TOML file; relative data paths are relative to the file's folder."""
    path = Path(path)
    raw = tomllib.loads(path.read_text())
    sections = {"data": DenoiseDataConfig, "model": DenoiseModelConfig, "loss": DenoiseLossConfig}
    sections["optim"] = DenoiseOptimConfig
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ValueError(f"{path}: unknown sections {unknown}; known: {sorted(sections)}")
    return DenoiseConfig(**{k: config_section(cls, raw.get(k, {}), k, path.parent) for k, cls in sections.items()})


def config_from_dict(values: dict[str, Any]) -> DenoiseConfig:
    """The inverse of ``dataclasses.asdict`` (a run's ``config.json``); paths stay as written."""
    sections = {"data": DenoiseDataConfig, "model": DenoiseModelConfig, "loss": DenoiseLossConfig}
    sections["optim"] = DenoiseOptimConfig
    return DenoiseConfig(**{k: config_section(cls, values.get(k, {}), k, Path("/")) for k, cls in sections.items()})
