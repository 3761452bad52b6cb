"""DSC phantoms for the stU-Net (seed 004 section 4.2): cases, doses, targets, the on-disk cache, the strips.

Every case is a phantom of :func:`core.simulation.dsc_phantom.make_dsc_phantom` at full dose.  Its
low-dose versions follow seed 004 Eq. 1 (:func:`core.perfusion.dsc.low_dose_signal`).  The training
target is the CBV computed by SVD from the FULL-dose signal (:func:`core.perfusion.dsc.reference_cbv`,
the role of Verbena in the paper); the phantom's true CBV is kept for the evaluation.  Both go through
the preprocessing of :mod:`core.perfusion.stunet_preprocessing`.

Doses: the paper does not say how its network met the low doses.  Our choice, so that one model
serves every dose: each training case comes at the full dose and at ``doses_per_case - 1`` doses drawn
in ``dose_range`` (seeded per case; uniform in the dose or in its reciprocal, ``dose_sampling``), all with
the same full-dose target.  Validation and test cases come at ``eval_doses`` (1, 0.5, 0.25), with the SVD
map of every dose for the evaluation.

Cache: ``<cache>/<preset>_s<size>_t<frames>_dt<step>_m<margin>/case_<seed>.npz`` holds ``dsc``
``(n_doses, frames, nz, size, size)`` float16 (standardised values in ``[-5, 5]``: float16's 0.004 step at 5 is
far below the noise; half the memory), ``doses``, ``brain``, ``tumour`` ``(nz, size, size)`` bool, and
float32 ``target`` (standardised full-dose SVD CBV), ``truth`` (standardised true CBV) and ``svd``
``(n_doses, nz, size, size)`` (empty for training cases).  A file whose doses differ is rebuilt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.perfusion.dsc import low_dose_signal, reference_cbv
from core.perfusion.stunet_preprocessing import extract_strips, prepare_dsc, prepare_map, strip_positions
from core.simulation.dsc_params import DSC_PRESETS
from core.simulation.dsc_phantom import make_dsc_phantom
from trainer.dsc.config import DscConfig, DscDataConfig, DscPreprocessingConfig

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
ARRAYS = ("dsc", "doses", "brain", "tumour", "target", "truth", "svd")


def split_cases(data: DscDataConfig) -> dict[str, np.ndarray]:
    """Seeds of the train, validation and test cases: ``data.split`` ratios of ``data.cases``, at least one each.

    A seeded permutation of the case indices; the test cases are held out from training and validation.
    """
    total = sum(data.split)
    n_val = max(1, round(data.cases * data.split[1] / total))
    n_test = max(1, round(data.cases * data.split[2] / total))
    n_train = data.cases - n_val - n_test
    if n_train < 1:
        raise ValueError(f"{data.cases} cases leave no training case after {n_val} validation and {n_test} test")
    order = np.random.default_rng(data.split_seed).permutation(data.cases) + data.seed
    return {
        "train": np.sort(order[:n_train]),
        "val": np.sort(order[n_train : n_train + n_val]),
        "test": np.sort(order[n_train + n_val :]),
    }


def case_doses(data: DscDataConfig, seed: int, split: str) -> np.ndarray:
    """Doses of one case: ``eval_doses`` for validation and test, else 1.0 and draws in ``dose_range``
    (``dose_sampling``)."""
    if split != "train":
        return np.asarray(data.eval_doses, dtype=np.float64)
    rng = np.random.default_rng([data.split_seed, seed])
    low, high = data.dose_range
    if data.dose_sampling == "reciprocal":
        drawn = 1.0 / rng.uniform(1.0 / high, 1.0 / low, data.doses_per_case - 1)
    else:
        drawn = rng.uniform(low, high, data.doses_per_case - 1)
    return np.concatenate([[1.0], drawn])


def build_case(seed: int, doses: np.ndarray, preset: str, prep: DscPreprocessingConfig, with_svd: bool) -> dict:
    """The arrays of one case (see the module docstring) from its phantom."""
    spec = DSC_PRESETS[preset]
    phantom = make_dsc_phantom(spec, seed)
    brain_mask = phantom.brain_mask
    reference = reference_cbv(phantom.signal, phantom.times_s, phantom.grid, spec.te_s, brain_mask)
    dsc, svd = [], []
    brain = crop = None
    for dose in doses:
        signal = phantom.signal if dose == 1.0 else low_dose_signal(phantom.signal, float(dose))
        prepared = prepare_dsc(
            signal,
            phantom.times_s,
            brain_mask,
            size=prep.size,
            frames=prep.frames,
            frame_step_s=prep.frame_step_s,
            margin_voxels=prep.margin_voxels,
        )
        brain, crop = prepared.brain, prepared.crop
        dsc.append(prepared.dsc.astype(np.float16))
        if with_svd and dose == 1.0:
            svd.append(prepare_map(reference, crop, brain))
        elif with_svd:
            cbv = reference_cbv(signal, phantom.times_s, phantom.grid, spec.te_s, brain_mask)
            svd.append(prepare_map(cbv, crop, brain))
    assert brain is not None and crop is not None
    empty = np.zeros((0, *brain.shape), np.float32)
    return {
        "dsc": np.stack(dsc),
        "doses": np.asarray(doses, dtype=np.float64),
        "brain": brain,
        "tumour": crop.apply_mask(phantom.tumour_mask) & brain,
        "target": prepare_map(reference, crop, brain),
        "truth": prepare_map(phantom.truth["cbv_ml_100g"], crop, brain),
        "svd": np.stack(svd) if svd else empty,
    }


def cache_folder(config: DscConfig) -> Path:
    """The cache folder of ``config``'s phantom preset and preprocessing."""
    p = config.preprocessing
    name = f"{config.data.preset}_s{p.size}_t{p.frames}_dt{p.frame_step_s:g}_m{p.margin_voxels}"
    return Path(config.data.cache) / name


def cached_case(config: DscConfig, seed: int, split: str) -> dict[str, np.ndarray]:
    """The arrays of case ``seed`` in ``split``, read from the cache or built and written to it.

    Training cases whose doses are drawn other than uniformly have a file of their own
    (``case_<seed>_<dose_sampling>.npz``), so that runs with either sampling can share a cache.
    """
    sampled = split == "train" and config.data.dose_sampling != "uniform"  # its own file: runs may share a cache
    path = cache_folder(config) / (f"case_{seed}_{config.data.dose_sampling}.npz" if sampled else f"case_{seed}.npz")
    doses = case_doses(config.data, seed, split)
    with_svd = split != "train"
    if path.exists():
        with np.load(path) as stored:
            case = {k: stored[k] for k in ARRAYS}
        if np.array_equal(case["doses"], doses) and (len(case["svd"]) > 0 or not with_svd):
            return case
    case = build_case(seed, doses, config.data.preset, config.preprocessing, with_svd)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.npz")
    np.savez(partial, **case)
    partial.replace(path)
    return case


def load_split(config: DscConfig, split: str, progress: bool = True) -> list[dict[str, np.ndarray]]:
    """Every case of ``split`` (cached), in seed order."""
    seeds = split_cases(config.data)[split]
    return [
        cached_case(config, int(s), split)
        for s in tqdm(seeds, desc=f"{split} cases", unit="case", disable=not progress, leave=False)
    ]


@dataclass(frozen=True)
class StripIndex:
    """Strips of a list of cases: rows of ``(case, dose, slice, row, column)``, each holding a brain voxel."""

    rows: np.ndarray
    strip_shape: tuple[int, int]

    @classmethod
    def of(cls, cases: list[dict[str, np.ndarray]], strip_shape: tuple[int, int], stride: int) -> StripIndex:
        """Every strip at ``stride`` of every dose version and slice of ``cases`` that holds a brain voxel."""
        rows: list[tuple[int, ...]] = []
        for c, case in enumerate(cases):
            brain = case["brain"]
            positions = strip_positions(brain.shape[1], brain.shape[2], strip_shape, stride)
            for z in range(brain.shape[0]):
                kept = positions[extract_strips(brain[z], positions, strip_shape).any(axis=(1, 2))]
                for d in range(len(case["doses"])):
                    rows.extend((c, d, z, y, x) for y, x in kept)
        return cls(np.asarray(rows, dtype=np.int64).reshape(-1, 5), strip_shape)

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, cases: list[dict[str, np.ndarray]], members: np.ndarray) -> dict[str, torch.Tensor]:
        """``x`` ``(B, 1, frames, h, w)``, ``target`` and ``mask`` ``(B, 1, h, w)`` float32 of rows ``members``."""
        h, w = self.strip_shape
        xs, targets, masks = [], [], []
        for c, d, z, y, x in self.rows[members]:
            case = cases[c]
            xs.append(case["dsc"][d, :, z, y : y + h, x : x + w])
            targets.append(case["target"][z, y : y + h, x : x + w])
            masks.append(case["brain"][z, y : y + h, x : x + w])
        return {
            "x": torch.from_numpy(np.stack(xs).astype(np.float32)[:, None]),
            "target": torch.from_numpy(np.stack(targets).astype(np.float32)[:, None]),
            "mask": torch.from_numpy(np.stack(masks).astype(np.float32)[:, None]),
            "dose": torch.from_numpy(np.array([cases[c]["doses"][d] for c, d in self.rows[members, :2]])),
        }
