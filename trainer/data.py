"""Per-lung training samples: CT through Eq. 1, SPECT through Eq. 2, on the 128x64x64 crop.

The same functions the application uses make every sample: :func:`core.lung.segmentation.segment_lungs`
for the lungs, :func:`core.lung.enhancement.enhance_lung` for the CT (seed 000 Eq. 1) and
:func:`core.nm.standardisation.standardise_spect` for the targets (Eq. 2), after the SPECT is
resampled onto the CT grid (:func:`core.resample.resample_to_grid`).  Left and right lungs are
separate samples, as in seed 000.

A sample file ``<case>_<side>.npz`` holds (all ``(128, 64, 64)``, float16 unless stated):

- ``ct``: enhanced CT in [0, 1];
- ``hu``: the CT in HU on the same crop (for the classical HU-based baseline);
- ``mask``: bool lung mask of the crop;
- ``target_<name>``: Eq. 2 (11 levels) of the SPECT, the training target;
- ``spect_<name>``: SPECT / P75 inside the lung (not discretised), the papers' evaluation truth;
- ``truth_<name>``: for phantoms, the true function field / P75, which the papers could not have;
- ``cropgrid``: float64 ``(6,)``, spacing ``(dz, dy, dx)`` and origin ``(x, y, z)`` of the crop grid;
- ``native_<name>``: the SPECT's own voxels that cover the crop (:func:`core.metrics.spect_voxels_covering`),
  divided by their P75 in the lung, 0 outside: seed 000 evaluates at SPECT resolution;
- ``nativemask_<name>``: bool lung mask on those voxels (the crop mask resampled, at least half lung);
- ``nativegrid_<name>``: float64 ``(6,)``, the grid of those voxels (as ``cropgrid``).

``<name>`` is ``perfusion`` and/or ``ventilation``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.geometry import Grid
from core.labels import LungLabel
from core.lung.enhancement import enhance_lung
from core.lung.segmentation import segment_lungs
from core.metrics import NativeSpect, native_spect
from core.nm.standardisation import normalise_spect, standardise_spect
from core.orientation import grid_affine_lps
from core.resample import resample_to_grid

logger = logging.getLogger(__name__)

FUNCTIONS = ("perfusion", "ventilation")
SIDES = {LungLabel.RIGHT_LUNG: "right", LungLabel.LEFT_LUNG: "left"}


def _grid_vector(grid: Grid) -> np.ndarray:
    return np.array([*grid.spacing_mm, *grid.origin_lps_mm], dtype=np.float64)


def _grid_from(vector: np.ndarray, shape: tuple[int, ...]) -> Grid:
    values = [float(v) for v in vector]
    return Grid(shape, tuple(values[:3]), tuple(values[3:]))  # type: ignore[arg-type]


@dataclass
class LungSample:
    """One lung of one case, on the 128x64x64 crop."""

    case_id: str
    side: str
    ct: np.ndarray
    mask: np.ndarray
    hu: np.ndarray | None = None
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    spect: dict[str, np.ndarray] = field(default_factory=dict)
    truth: dict[str, np.ndarray] = field(default_factory=dict)
    crop_grid: Grid | None = None
    native: dict[str, NativeSpect] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """File stem ``<case>_<side>``."""
        return f"{self.case_id}_{self.side}"


def samples_from_volumes(
    case_id: str,
    hu: np.ndarray,
    grid: Grid,
    spects: Mapping[str, tuple[np.ndarray, Grid]],
    truths: Mapping[str, tuple[np.ndarray, Grid]] | None = None,
) -> list[LungSample]:
    """Both lungs of one case as samples.

    Parameters
    ----------
    hu
        ``grid.shape`` CT in HU (canonical LPS).
    spects
        name -> (SPECT volume, its grid) in the CT's Frame of Reference.
    truths
        name -> (true function field, its grid), phantoms only.
    """
    lung_mask = segment_lungs(hu, grid_affine_lps(grid))
    on_ct = {name: resample_to_grid(v, g, grid) for name, (v, g) in spects.items()}
    truth_on_ct = {name: resample_to_grid(v, g, grid) for name, (v, g) in (truths or {}).items()}
    samples = []
    for label, side in SIDES.items():
        if not (lung_mask == label).any():
            logger.warning("case %s: no %s lung found; skipped", case_id, side)
            continue
        ct, mask, crop = enhance_lung(hu, lung_mask, label, grid)
        sample = LungSample(case_id, side, ct.astype(np.float32), mask.astype(bool), crop.crop(hu), crop_grid=crop.grid)
        for name, volume in on_ct.items():
            cropped = crop.crop(volume)
            sample.targets[name] = standardise_spect(cropped, mask)
            sample.spect[name] = normalise_spect(cropped, mask)
            sample.native[name] = native_spect(*spects[name], mask, crop.grid)
        for name, volume in truth_on_ct.items():
            sample.truth[name] = normalise_spect(crop.crop(volume), mask)
        samples.append(sample)
    return samples


def save_sample(folder: Path, sample: LungSample) -> Path:
    """Write ``<folder>/<case>_<side>.npz`` atomically (temporary name, then rename)."""
    arrays: dict[str, np.ndarray] = {"ct": sample.ct.astype(np.float16), "mask": sample.mask}
    if sample.hu is not None:
        arrays["hu"] = sample.hu.astype(np.float16)
    for prefix, values in (("target", sample.targets), ("spect", sample.spect), ("truth", sample.truth)):
        for name, array in values.items():
            arrays[f"{prefix}_{name}"] = array.astype(np.float16)
    if sample.crop_grid is not None:
        arrays["cropgrid"] = _grid_vector(sample.crop_grid)
    for name, native in sample.native.items():
        arrays[f"native_{name}"] = native.values.astype(np.float32)
        arrays[f"nativemask_{name}"] = native.mask
        arrays[f"nativegrid_{name}"] = _grid_vector(native.grid)
    path = folder / f"{sample.name}.npz"
    partial = folder / f".{sample.name}.partial.npz"
    np.savez_compressed(partial, **arrays)  # type: ignore[arg-type]
    partial.rename(path)
    return path


def load_sample(path: Path) -> LungSample:
    """Read a sample written by :func:`save_sample` (float32 arrays)."""
    case_id, side = path.stem.rsplit("_", 1)
    with np.load(path) as data:
        hu = data["hu"].astype(np.float32) if "hu" in data.files else None
        sample = LungSample(case_id, side, data["ct"].astype(np.float32), data["mask"].astype(bool), hu)
        for key in data.files:
            prefix, _, name = key.partition("_")
            store = {"target": sample.targets, "spect": sample.spect, "truth": sample.truth}.get(prefix)
            if store is not None:
                store[name] = data[key].astype(np.float32)
            if prefix == "native":
                values = data[key].astype(np.float32)
                grid = _grid_from(data[f"nativegrid_{name}"], values.shape)
                sample.native[name] = NativeSpect(values, data[f"nativemask_{name}"].astype(bool), grid)
        if "cropgrid" in data.files:
            sample.crop_grid = _grid_from(data["cropgrid"], sample.ct.shape)
    return sample
