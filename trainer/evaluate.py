"""Evaluation of a trained network against the SPECT (the papers' truth) and the phantom's true function.

For every held-out lung: Spearman and Pearson over the lung, SSIM (k1 0.01, k2 0.03) and the
Dice of high- and low-function volumes at 0.66 after 75th-percentile normalisation
(:mod:`core.metrics`).  The papers compared the prediction with SPECT only; the phantom also lets
us compare with the true function field, which SPECT itself only approximates.

Grid: as seed 000, at SPECT resolution.  The prediction (128x64x64 crop, 2-3 mm voxels, set to 0
outside the lung) is resampled linearly onto the SPECT's own voxels that cover the crop, and
compared with those voxels divided by their P75 in the lung (``sample.native``); the phantom's
true field is resampled onto the same voxels.  Samples without native SPECT voxels (made before
they were stored) are evaluated on the crop grid, and the row says so (``grid``).

Baseline (the same table): a classical single-CT, HU-based surrogate: for ventilation
``F (1 - F)`` with the air fraction ``F = -HU/1000`` (the "HU" CT-ventilation metric), for
perfusion the tissue-and-blood fraction ``1 - F`` (denser lung holds more blood), both smoothed
with a 5-voxel uniform filter.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from core.metrics import METRIC_KEYS, evaluate_function_map, to_spect_resolution
from trainer.data import LungSample

BASELINE_SMOOTHING = 5


def hu_baseline(sample: LungSample, name: str) -> np.ndarray:
    """Classical HU-based surrogate of ``name`` on the crop (0 outside the lung)."""
    if sample.hu is None:
        raise ValueError(f"sample {sample.name} has no HU crop; rebuild it with trainer.phantom_cohort")
    air = np.clip(-sample.hu / 1000.0, 0.0, 1.0)
    surrogate = air * (1.0 - air) if name == "ventilation" else 1.0 - air
    smoothed = ndimage.uniform_filter(surrogate.astype(np.float32), BASELINE_SMOOTHING)
    return np.where(sample.mask, smoothed, 0.0).astype(np.float32)


def _on_spect_grid(
    sample: LungSample, name: str, maps: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``maps`` (crop grid, 0 outside the lung) resampled onto the native SPECT voxels, and their lung mask."""
    native = sample.native[name]
    assert sample.crop_grid is not None
    resampled = {
        key: to_spect_resolution(np.where(sample.mask, value, 0.0).astype(np.float32), sample.crop_grid, native.grid)
        for key, value in maps.items()
    }
    return resampled, native.mask


def evaluate(
    samples: Sequence[LungSample],
    predict: Callable[[LungSample], dict[str, np.ndarray]],
    names: Sequence[str],
) -> list[dict]:
    """One row per (sample, function, method, reference) with the metrics of :mod:`core.metrics`."""
    rows = []
    for sample in samples:
        predictions = predict(sample)
        for name in names:
            methods = {"network": predictions[name], "hu_baseline": hu_baseline(sample, name)}
            truth = sample.truth.get(name)
            if name in sample.native and sample.crop_grid is not None:
                grid = "spect"
                extra = {"truth": truth} if truth is not None else {}
                on_spect, mask = _on_spect_grid(sample, name, {**methods, **extra})
                methods = {method: on_spect[method] for method in methods}
                references = {"spect": sample.native[name].values, "truth": on_spect.get("truth")}
            else:
                grid, mask = "crop", sample.mask
                references = {"spect": sample.spect.get(name), "truth": truth}
            for method, prediction in methods.items():
                for reference, values in references.items():
                    if values is None:
                        continue
                    metrics = evaluate_function_map(prediction, values, mask)
                    rows.append(
                        {
                            "sample": sample.name,
                            "function": name,
                            "method": method,
                            "reference": reference,
                            "grid": grid,
                            **metrics,
                        }
                    )
    return rows


def summarise(rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and standard deviation of each metric per ``function/method/reference``."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(f"{row['function']}/{row['method']}/{row['reference']}", []).append(row)
    summary = {}
    for key, members in sorted(groups.items()):
        summary[key] = {
            metric: {
                "mean": float(np.nanmean([m[metric] for m in members])),
                "sd": float(np.nanstd([m[metric] for m in members])),
                "n": len(members),
            }
            for metric in METRIC_KEYS
        }
    return summary


def table(summary: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown table: one line per function/method/reference, mean +- sd per metric."""
    lines = [
        "| function / method / reference | n | " + " | ".join(METRIC_KEYS) + " |",
        "|---|---|" + "---|" * len(METRIC_KEYS),
    ]
    for key, metrics in summary.items():
        n = next(iter(metrics.values()))["n"]
        cells = " | ".join(f"{m['mean']:.3f} +- {m['sd']:.3f}" for m in metrics.values())
        lines.append(f"| {key} | {n} | {cells} |")
    return "\n".join(lines)


def write_report(out_dir: Path, rows: list[dict]) -> dict:
    """``metrics.json`` (per-sample rows and summary) and ``metrics.md`` (the table) in ``out_dir``."""
    summary = summarise(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
    (out_dir / "metrics.md").write_text(table(summary) + "\n")
    return summary
