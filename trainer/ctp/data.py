"""Simulated training curves of seed 002 (section 2.3), cached as one ``.npz``, and length-bucketed batches.

Curves come from :func:`core.perfusion.datasets.training_parameters` and
:func:`core.perfusion.simulation.simulate_curves` (45-120 frames at 1-2 s), simulated in chunks from
one seeded generator and zero-padded to 120 frames.  The cache ``<cache>/curves_<n>_seed<seed>.npz``
holds float32 arrays ``(n, 120)`` (``t_s``, ``global_aif``, ``local_aif``, ``tissue``, ``residue``)
and per-curve ``lengths``, ``dt_s``, ``delay_s`` (BAD, s) and ``cbf_ml_100g_min``.

Batches: the training curves are shuffled every epoch, cut into groups of ``bucket_batches``
batches, each group sorted by length and cut into batches, and the batch order shuffled; a batch
is cropped to its longest curve and the network masks the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.perfusion.datasets import TRAINING_RANGES, training_parameters
from core.perfusion.simulation import simulate_curves

logger = logging.getLogger(__name__)

MAX_FRAMES = int(TRAINING_RANGES["n_frames"][1])
CURVE_FIELDS = ("t_s", "global_aif", "local_aif", "tissue", "residue")
SCALAR_FIELDS = ("lengths", "dt_s", "delay_s", "cbf_ml_100g_min")


def generate_curves(n: int, seed: int, chunk: int = 2_000, progress: bool = True) -> dict[str, np.ndarray]:
    """``n`` training curves, ``(n, 120)`` float32 arrays plus per-curve scalars (see the module docstring)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {k: np.zeros((n, MAX_FRAMES), np.float32) for k in CURVE_FIELDS}
    out |= {k: np.zeros(n, np.int64 if k == "lengths" else np.float32) for k in SCALAR_FIELDS}
    for start in tqdm(range(0, n, chunk), desc="simulating curves", unit="chunk", disable=not progress):
        stop = min(start + chunk, n)
        sim = simulate_curves(training_parameters(rng, stop - start), rng)
        width = sim.t_s.shape[1]
        for k in CURVE_FIELDS:
            out[k][start:stop, :width] = getattr(sim, k)
        out["lengths"][start:stop] = sim.lengths
        out["dt_s"][start:stop] = sim.params.dt_s
        out["delay_s"][start:stop] = sim.params.delay_s
        out["cbf_ml_100g_min"][start:stop] = sim.params.cbf_ml_100g_min
    return out


def cached_curves(cache: Path, n: int, seed: int, chunk: int = 2_000) -> dict[str, np.ndarray]:
    """The curves of :func:`generate_curves`, read from or written to ``<cache>/curves_<n>_seed<seed>.npz``."""
    path = Path(cache) / f"curves_{n}_seed{seed}.npz"
    if path.exists():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    curves = generate_curves(n, seed, chunk)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.npz")
    np.savez(partial, **curves)
    partial.replace(path)
    logger.info("cached %d curves in %s", n, path)
    return curves


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random train / validation indices (validation: ``round(val_fraction n)`` curves)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = round(val_fraction * n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, bucket_batches: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Index arrays (into ``lengths``) of one epoch's batches, each of similar curve lengths; the last may be short."""
    order = rng.permutation(len(lengths))
    group = batch_size * bucket_batches
    batches = []
    for start in range(0, len(order), group):
        members = order[start : start + group]
        members = members[np.argsort(lengths[members], kind="stable")]
        batches.extend(members[i : i + batch_size] for i in range(0, len(members), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(curves: dict[str, np.ndarray], index: np.ndarray) -> dict[str, torch.Tensor]:
    """Tensors of the curves at ``index``, cropped to the longest of them."""
    n = int(curves["lengths"][index].max())
    batch = {k: torch.from_numpy(np.ascontiguousarray(curves[k][index, :n])) for k in CURVE_FIELDS}
    return batch | {k: torch.from_numpy(curves[k][index]) for k in SCALAR_FIELDS}


def in_order(curves: dict[str, np.ndarray], index: np.ndarray, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of ``index`` sorted by length (validation; deterministic)."""
    ordered = index[np.argsort(curves["lengths"][index], kind="stable")]
    for start in range(0, len(ordered), batch_size):
        yield collate(curves, ordered[start : start + batch_size])
