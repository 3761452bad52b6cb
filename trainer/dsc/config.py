"""Configuration of a DSC run (seed 004): a TOML file loaded into frozen dataclasses.

Defaults are seed 004's where it gives them (sections 3 and 4.2): 49 cases split 25/12/12, slices resampled
to 256 x 256, strips sampled with a stride of 8 in training and 1 at test time, Adam with its default
hyper-parameters (learning rate 1e-3), an L2 loss, 200 epochs.  What the paper leaves open has a stated
choice (network widths in :mod:`trainer.networks.stunet`; strips of 32 rows across the whole width; batches
of 16; one model for every dose, trained on doses drawn in ``[0.25, 1]``).
``trainer/configs/stunet_cpu.toml`` scales this down for two CPU threads.

The network is the ``[model]`` table's ``kind``: ``"stunet"`` (the default, :class:`DscModelConfig`) or
``"frame_channel_cnn"`` (the 2D CNN baseline with the frames as channels, :class:`DscFrameCnnConfig`,
``trainer/configs/frame_cnn_cpu.toml``); the other keys of the table are the keywords of that kind's
network, and a key of the other kind is an error.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from trainer.config import config_section
from trainer.networks.frame_channel_cnn import POOL
from trainer.networks.stunet import SPATIAL_STRIDE

DOSE_SAMPLINGS = ("uniform", "reciprocal")


@dataclass(frozen=True)
class DscDataConfig:
    """Which phantoms (seeded), where their preprocessed arrays are cached, how cases and doses are split."""

    cases: int = 49
    preset: str = "training"
    """Key of :data:`core.simulation.dsc_params.DSC_PRESETS`."""
    seed: int = 4000
    """Case ``i`` is the phantom of seed ``seed + i``."""
    split: tuple[int, int, int] = (25, 12, 12)
    """Train / validation / test ratios (seed 004: 25, 12 and 12 of 49 patients), scaled to ``cases``."""
    split_seed: int = 0
    cache: Path = Path("data/dsc_cases")
    doses_per_case: int = 4
    """Versions of every training case: the full dose and ``doses_per_case - 1`` doses drawn in ``dose_range``."""
    dose_range: tuple[float, float] = (0.25, 1.0)
    dose_sampling: str = "uniform"
    """How the training doses are drawn in ``dose_range``: ``uniform`` in the dose, or ``reciprocal``:
    uniform in 1/dose, which puts half the draws of ``(0.25, 1)`` under 0.4 (the noise grows as 1/dose)."""
    eval_doses: tuple[float, ...] = (1.0, 0.5, 0.25)
    """Doses of the validation and test cases (seed 004 Table 1: full, half and quarter dose)."""

    def __post_init__(self) -> None:
        if self.cases < 3 or len(self.split) != 3 or min(self.split) <= 0:
            raise ValueError(f"data.cases must be >= 3 and data.split three positive ratios, got {self}")
        low, high = self.dose_range
        if not 0.0 < low <= high <= 1.0 or self.doses_per_case < 1:
            raise ValueError(f"data.dose_range must lie in (0, 1] and doses_per_case >= 1, got {self}")
        if self.dose_sampling not in DOSE_SAMPLINGS:
            raise ValueError(f"data.dose_sampling must be one of {DOSE_SAMPLINGS}, got {self.dose_sampling!r}")
        if not self.eval_doses or not all(0.0 < d <= 1.0 for d in self.eval_doses) or self.eval_doses[0] != 1.0:
            raise ValueError(f"data.eval_doses must start with the full dose 1.0, all in (0, 1]: {self.eval_doses}")


@dataclass(frozen=True)
class DscPreprocessingConfig:
    """Seed 004 section 4.2 (:mod:`core.perfusion.stunet_preprocessing`) and the strips of section 3."""

    size: int = 256
    """Side of the resampled slices (seed 004: 256)."""
    frames: int = 64
    frame_step_s: float = 1.0
    margin_voxels: int = 4
    strip_height: int = 32
    strip_width: int = 0
    """0: the whole width (``size``)."""
    train_stride: int = 8
    test_stride: int = 1

    def __post_init__(self) -> None:
        if self.size < 1 or self.frames < 1 or not self.frame_step_s > 0 or self.margin_voxels < 0:
            raise ValueError(f"preprocessing.size and frames must be >= 1, frame_step_s > 0, margin >= 0: {self}")
        if not 0 < self.strip_height <= self.size or not 0 <= self.strip_width <= self.size:
            raise ValueError(f"preprocessing strips must fit the {self.size} grid, got {self.strip_shape}")
        if self.train_stride < 1 or self.test_stride < 1:
            raise ValueError("preprocessing.train_stride and test_stride must be >= 1")

    @property
    def strip_shape(self) -> tuple[int, int]:
        """``(height, width)`` of a strip."""
        return self.strip_height, self.strip_width or self.size


@dataclass(frozen=True)
class DscModelConfig:
    """Keywords of :class:`trainer.networks.stunet.StUNet` (``frames`` comes from the preprocessing)."""

    kind: str = "stunet"
    """Always ``"stunet"``; a ``[model]`` table without ``kind`` is this one."""
    levels: int = 3
    base_channels: int = 16
    convs_per_level: int = 2
    norm: str = "batch"
    activation: str = "relu"
    spatial_kernel: int = 3
    temporal_kernel: int = 7
    temporal_stride: int = 4
    decoder_kernel: int = 5

    def __post_init__(self) -> None:
        _check_kind(self, "stunet")

    @property
    def size_multiple(self) -> int:
        """What the strip's height and width must be multiples of."""
        return SPATIAL_STRIDE**self.levels

    @property
    def frames_multiple(self) -> int:
        """What the number of frames must be a multiple of."""
        return self.temporal_stride**self.levels

    def network_keywords(self) -> dict[str, Any]:
        """The keywords of the network's constructor (every field but ``kind``)."""
        return {k: v for k, v in asdict(self).items() if k != "kind"}


@dataclass(frozen=True)
class DscFrameCnnConfig:
    """Keywords of :class:`trainer.networks.frame_channel_cnn.FrameChannelCnn`, the 2D CNN baseline."""

    kind: str = "frame_channel_cnn"
    """Always ``"frame_channel_cnn"``."""
    levels: int = 3
    base_channels: int = 32
    convs_per_level: int = 2
    kernel: int = 3
    norm: str = "batch"
    activation: str = "relu"

    def __post_init__(self) -> None:
        _check_kind(self, "frame_channel_cnn")

    @property
    def size_multiple(self) -> int:
        """What the strip's height and width must be multiples of."""
        return POOL**self.levels

    @property
    def frames_multiple(self) -> int:
        """What the number of frames must be a multiple of (any number: the frames are channels)."""
        return 1

    def network_keywords(self) -> dict[str, Any]:
        """The keywords of the network's constructor (every field but ``kind``)."""
        return {k: v for k, v in asdict(self).items() if k != "kind"}


MODEL_KINDS: dict[str, type[DscModelConfig] | type[DscFrameCnnConfig]] = {
    "stunet": DscModelConfig,
    "frame_channel_cnn": DscFrameCnnConfig,
}
"""The ``[model]`` table of each ``kind``; its allowed keys are the fields of that dataclass."""


def _check_kind(model: DscModelConfig | DscFrameCnnConfig, expected: str) -> None:
    if model.kind != expected:
        raise ValueError(
            f"{type(model).__name__}.kind must be {expected!r}, got {model.kind!r}; "
            f"each of the kinds {sorted(MODEL_KINDS)} has its own dataclass (MODEL_KINDS)"
        )


@dataclass(frozen=True)
class DscOptimConfig:
    """Adam (default hyper-parameters, seed 004), the masked L2 loss, strips per epoch, threads."""

    epochs: int = 200
    batch_size: int = 16
    learning_rate: float = 1e-3
    drop_at: float = 1.0
    """From this fraction of the epochs on, the rate is divided by 10; 1.0 (the paper): constant."""
    strips_per_epoch: int = 0
    """Training strips drawn (without replacement) every epoch; 0: all of them."""
    val_strips: int = 0
    """Validation strips scored after every epoch (a fixed seeded subset); 0: all of them."""
    ema_decay: float = 0.0
    """Keep an exponential moving average of the weights (and batch-norm statistics), updated after every
    step with this decay, and validate and export it; 0: off (the paper's plain weights)."""
    precision: str = "fp32"
    """``fp32``, or ``bf16``: autocast to bfloat16 (faster 3D convolutions on CPUs with AVX512-BF16)."""
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise ValueError("optim.epochs and optim.batch_size must be >= 1 and optim.learning_rate > 0")
        if not 0.0 < self.drop_at <= 1.0:
            raise ValueError(f"optim.drop_at must be in (0, 1], got {self.drop_at}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"optim.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.strips_per_epoch < 0 or self.val_strips < 0 or self.threads < 1:
            raise ValueError("optim.strips_per_epoch and val_strips must be >= 0, threads >= 1")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"optim.precision must be 'fp32' or 'bf16', got {self.precision!r}")


@dataclass(frozen=True)
class DscConfig:
    """A whole stU-Net run."""

    data: DscDataConfig = field(default_factory=DscDataConfig)
    preprocessing: DscPreprocessingConfig = field(default_factory=DscPreprocessingConfig)
    model: DscModelConfig | DscFrameCnnConfig = field(default_factory=DscModelConfig)
    optim: DscOptimConfig = field(default_factory=DscOptimConfig)

    def __post_init__(self) -> None:
        multiple = self.model.size_multiple
        if any(s % multiple for s in self.preprocessing.strip_shape):
            raise ValueError(
                f"strips {self.preprocessing.strip_shape} must be multiples of 2**model.levels = {multiple}"
            )
        if self.preprocessing.frames % self.model.frames_multiple:
            raise ValueError(
                f"preprocessing.frames {self.preprocessing.frames} must be a multiple of "
                f"model.temporal_stride**model.levels = {self.model.frames_multiple}"
            )


SECTIONS: dict[str, type] = {
    "data": DscDataConfig,
    "preprocessing": DscPreprocessingConfig,
    "optim": DscOptimConfig,
}
"""The tables whose dataclass is fixed; ``[model]``'s depends on its ``kind`` (:data:`MODEL_KINDS`)."""


def load_dsc_config(path: Path) -> DscConfig:
    """Read a TOML file; a relative ``data.cache`` is taken relative to the working directory."""
    path = Path(path)
    raw = tomllib.loads(path.read_text())
    known = sorted([*SECTIONS, "model"])
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"{path}: unknown sections {unknown}; known: {known}")
    return dsc_config_from_dict(raw)


def model_config(values: dict[str, Any]) -> DscModelConfig | DscFrameCnnConfig:
    """The ``[model]`` table: the dataclass of its ``kind`` (``"stunet"`` when absent), keys checked against it."""
    kind = values.get("kind", "stunet")
    if kind not in MODEL_KINDS:
        raise ValueError(f"model.kind must be one of {sorted(MODEL_KINDS)}, got {kind!r}")
    cls = MODEL_KINDS[kind]
    allowed = sorted(f.name for f in fields(cls))
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"unknown keys in [model] for kind = {kind!r}: {unknown}; expected some of {allowed}")
    return config_section(cls, values, "model")


def dsc_config_from_dict(values: dict[str, Any]) -> DscConfig:
    """The inverse of ``dataclasses.asdict`` (a run's ``config.json``); paths stay as written.

    A ``model`` without ``kind`` (runs and configurations older than the 2D CNN baseline) is a stU-Net.
    """
    sections = {k: config_section(cls, values.get(k, {}), k) for k, cls in SECTIONS.items()}
    return DscConfig(model=model_config(values.get("model", {})), **sections)
