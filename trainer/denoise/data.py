"""Paired fast / standard bone SPECT cases with the CT on the SPECT grid, and the slices the network sees.

A case is read from a study folder through the app's own readers (NM volumes by
:func:`core.dicom.nm_writer.read_nm_volume`, the CT by :func:`core.dicom.ct_reader.read_ct_volume`,
the CT put on the SPECT grid by :func:`core.nm.denoising.ct_on_spect_grid`), so training sees
exactly what the application feeds the model.  Phantom studies (``python -m core.simulation
--kind bone``) also carry lesion masks in ``ground_truth/truth.npz``; the lesion-attention loss of
seed 003 needs them (seed 003: contoured by physicians on the standard SPECT).

Cached per case as ``<cache>/<case>.npz`` (fast, standard, ct_hu, lesions, grid), so that training
and evaluation do not decode DICOM again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from core.dicom.ct_reader import read_ct_volume
from core.dicom.nm_writer import read_nm_volume
from core.geometry import Grid
from core.nm.denoising import ct_on_spect_grid, network_inputs, normalisation_support, target_of
from core.resample import resample_to_grid

logger = logging.getLogger(__name__)

LESION_FRACTION = 0.3
"""A SPECT voxel belongs to a lesion when at least this share of it (linear resampling) does."""

BODY_FRACTION = 0.01
"""Slices whose standard SPECT sum is below this share of the largest slice sum are not trained on."""


@dataclass
class BoneCase:
    """One paired acquisition on the SPECT grid: fast and standard counts, CT in HU, lesion mask."""

    name: str
    fast: np.ndarray
    standard: np.ndarray
    ct_hu: np.ndarray
    lesions: np.ndarray
    grid: Grid


def case_from_study(folder: Path) -> BoneCase:
    """Read a phantom bone study (``dicom/`` and ``ground_truth/``) into a :class:`BoneCase`."""
    folder = Path(folder)
    dicom = folder / "dicom"
    fast, grid = read_nm_volume(dicom / "NM_BONE_FAST.dcm")
    standard, standard_grid = read_nm_volume(dicom / "NM_BONE_STANDARD.dcm")
    if standard_grid != grid:
        raise ValueError(f"{folder.name}: the standard and fast SPECT grids differ")
    ct_hu, ct_grid = read_ct_volume(sorted(dicom.glob("CT_*.dcm")))
    truth = np.load(folder / "ground_truth" / "truth.npz")
    lesion_fraction = resample_to_grid((truth["bone_lesion_mask"] > 0).astype(np.float32), ct_grid, grid)
    return BoneCase(
        name=folder.name,
        fast=fast,
        standard=standard,
        ct_hu=ct_on_spect_grid(ct_hu, ct_grid, grid),
        lesions=lesion_fraction >= LESION_FRACTION,
        grid=grid,
    )


def save_case(path: Path, case: BoneCase) -> None:
    """Write ``case`` to ``path`` (npz), via a temporary file."""
    partial = path.with_suffix(".partial.npz")
    np.savez_compressed(
        partial,
        fast=case.fast,
        standard=case.standard,
        ct_hu=case.ct_hu.astype(np.float32),
        lesions=case.lesions,
        shape=np.asarray(case.grid.shape),
        spacing=np.asarray(case.grid.spacing_mm),
        origin=np.asarray(case.grid.origin_lps_mm),
    )
    partial.rename(path)


def load_case(path: Path) -> BoneCase:
    """Read a case written by :func:`save_case`."""
    with np.load(path) as z:
        (nz, ny, nx), (dz, dy, dx), (x0, y0, z0) = z["shape"].tolist(), z["spacing"].tolist(), z["origin"].tolist()
        grid = Grid((int(nz), int(ny), int(nx)), (float(dz), float(dy), float(dx)), (float(x0), float(y0), float(z0)))
        return BoneCase(Path(path).stem, z["fast"], z["standard"], z["ct_hu"], z["lesions"].astype(bool), grid)


def cache_cases(studies: Path, cache: Path) -> list[Path]:
    """Cache every ``studies/case_*`` folder as ``cache/case_*.npz`` (existing files are kept)."""
    cache.mkdir(parents=True, exist_ok=True)
    paths = []
    for folder in sorted(p for p in Path(studies).glob("case_*") if p.is_dir()):
        path = cache / f"{folder.name}.npz"
        if not path.exists():
            save_case(path, case_from_study(folder))
            logger.info("cached %s", path)
        paths.append(path)
    if not paths:
        raise FileNotFoundError(f"no case_* study folders in {studies}; generate them with python -m core.simulation")
    return paths


def body_slices(case: BoneCase) -> np.ndarray:
    """Indices of the slices holding activity (see :data:`BODY_FRACTION`)."""
    sums = case.standard.sum(axis=(1, 2))
    return np.flatnonzero(sums >= BODY_FRACTION * sums.max())


class SliceDataset(Dataset):
    """Axial slices of several cases: ``(inputs (C, crop, crop), target (1, crop, crop), lesions (1, crop, crop))``.

    Inputs and targets are normalised per case (:func:`core.nm.denoising.network_inputs`,
    :func:`core.nm.denoising.target_of`), over the whole volume or, with ``normalisation="body"``, over
    the body (:func:`core.nm.denoising.body_support`).  Each item is a ``crop x crop`` window centred on the
    slice's activity centroid, shifted by up to ``jitter`` pixels (random, from ``seed`` and the
    epoch set by :meth:`set_epoch`) and, with ``flip``, mirrored left-right at random.  A slice
    smaller than ``crop`` is given whole (the window is clipped to the slice).
    """

    def __init__(
        self,
        cases: list[BoneCase],
        *,
        use_ct: bool = True,
        normalisation: str = "volume",
        crop: int = 96,
        jitter: int = 8,
        flip: bool = True,
        seed: int = 0,
    ) -> None:
        self.inputs: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []
        self.lesions: list[np.ndarray] = []
        self.index: list[tuple[int, int]] = []
        for k, case in enumerate(cases):
            support = normalisation_support(normalisation, case.ct_hu)
            inputs, _ = network_inputs(case.fast, case.ct_hu if use_ct else None, support=support)
            self.inputs.append(inputs)
            self.targets.append(target_of(case.standard, support=support))
            self.lesions.append(case.lesions)
            self.index.extend((k, int(z)) for z in body_slices(case))
        self.crop, self.jitter, self.flip, self.seed = crop, jitter, flip, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw other crops and flips in every epoch (deterministically)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k, z = self.index[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        target = self.targets[k][z]
        ny, nx = target.shape
        weights = np.clip(target, 0.0, None)
        total = float(weights.sum()) or 1.0
        cy = float((weights.sum(axis=1) * np.arange(ny)).sum() / total)
        cx = float((weights.sum(axis=0) * np.arange(nx)).sum() / total)
        half = self.crop // 2
        y0 = int(np.clip(round(cy) - half + rng.integers(-self.jitter, self.jitter + 1), 0, max(ny - self.crop, 0)))
        x0 = int(np.clip(round(cx) - half + rng.integers(-self.jitter, self.jitter + 1), 0, max(nx - self.crop, 0)))
        window = (slice(y0, y0 + self.crop), slice(x0, x0 + self.crop))
        x = self.inputs[k][:, z][(slice(None), *window)]
        y = target[window][None]
        m = self.lesions[k][z][window][None].astype(np.float32)
        if self.flip and rng.random() < 0.5:
            x, y, m = x[..., ::-1], y[..., ::-1], m[..., ::-1]
        return (
            torch.from_numpy(np.ascontiguousarray(x)),
            torch.from_numpy(np.ascontiguousarray(y)),
            torch.from_numpy(np.ascontiguousarray(m)),
        )
