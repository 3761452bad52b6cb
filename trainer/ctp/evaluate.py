"""Seed 002's simulation study: RMSE of CBF and BAD per method on the six Table 1 datasets, Figures 4-5.

``python -m trainer.ctp.evaluate --out runs/ctp_eval [--curves 10000] [--model models/ctp_transformer]``

For every dataset (10,000 curves by default, the seed's count) and method (sSVD, cSVD, oSVD and, when a
model folder is given, the Transformer) it writes the per-curve estimates (``estimates.npz``), the
RMSE of CBF (ml/100 g/min) and BAD (s) per dataset and per level of the dataset's variable, the mean
and SD of the CBF ratio estimate/true (``results.json``), a Markdown table next to the paper's
figures (``table.md``) and PNG plots of RMSE against each variable (``figure4_cbf.png``,
``figure5_bad.png``).  For the network it adds the local-AIF Pearson correlation and the errors of the
AIF's peak magnitude, time to peak and FWHM, as the paper's section 3.1 reports them.

The SVD methods' BAD estimate is Tmax, the time of the residue's maximum.  Curves reach the SVD
methods with the global AIF; every curve has its own AIF (own scaling), so the SVD of each AIF
matrix is computed per curve.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.perfusion.datasets import TABLE1, TestDataset, dataset_levels, table1_parameters
from core.perfusion.deconvolution import METHODS
from core.perfusion.parameters import perfusion_parameters
from core.perfusion.simulation import SimulatedCurves, simulate_curves

logger = logging.getLogger(__name__)

PAPER_RMSE = {
    "ssvd": {"cbf": 7.95, "bad": 3.07},
    "csvd": {"cbf": 7.18, "bad": 3.27},
    "osvd": {"cbf": 7.03, "bad": 2.82},
    "network": {"cbf": 4.95, "bad": 0.51},
}
"""Seed 002 section 3.1: mean RMSE over the six datasets."""
PAPER_CBF_RATIO = {"ssvd": (0.85, 0.13), "csvd": (0.90, 0.15), "osvd": (0.85, 0.11), "network": (0.95, 0.15)}


def _by_length(curves: SimulatedCurves) -> list[np.ndarray]:
    return [np.flatnonzero(curves.lengths == n) for n in np.unique(curves.lengths)]


def svd_estimates(curves: SimulatedCurves, method: str) -> dict[str, np.ndarray]:
    """CBF and BAD (Tmax) of every curve by one SVD method."""
    n = len(curves.lengths)
    cbf, bad = np.empty(n), np.empty(n)
    for index in _by_length(curves):
        length = int(curves.lengths[index[0]])
        for dt in np.unique(curves.params.dt_s[index]):
            rows = index[curves.params.dt_s[index] == dt]
            p = perfusion_parameters(
                curves.tissue[rows, :length],
                curves.global_aif[rows, :length],
                float(dt),
                method,  # type: ignore[arg-type]
            )
            cbf[rows], bad[rows] = p.cbf_ml_100g_min, p.tmax_s
    return {"cbf": cbf, "bad": bad}


def network_estimates(model: Any, curves: SimulatedCurves) -> dict[str, np.ndarray]:
    """CBF, BAD and the local-AIF figures of every curve by the Transformer."""
    n = len(curves.lengths)
    out = {k: np.empty(n) for k in ("cbf", "bad", "aif_r", "aif_peak_error", "aif_tpeak_error_s", "aif_fwhm_error_s")}
    for index in _by_length(curves):
        length = int(curves.lengths[index[0]])
        for dt in np.unique(curves.params.dt_s[index]):
            rows = index[curves.params.dt_s[index] == dt]
            p = model.predict(curves.tissue[rows, :length], curves.global_aif[rows, :length], float(dt))
            out["cbf"][rows], out["bad"][rows] = p.cbf_ml_100g_min, p.bad_s
            figures = local_aif_figures(p.local_aif, curves.local_aif[rows, :length], float(dt))
            for key, values in figures.items():
                out[key][rows] = values
    return out


def _fwhm_s(curves: np.ndarray, dt_s: float) -> np.ndarray:
    above = curves >= 0.5 * curves.max(axis=1, keepdims=True)
    first = np.argmax(above, axis=1)
    last = curves.shape[1] - 1 - np.argmax(above[:, ::-1], axis=1)
    return (last - first + 1) * dt_s


def local_aif_figures(estimate: np.ndarray, truth: np.ndarray, dt_s: float) -> dict[str, np.ndarray]:
    """Pearson r, and errors of peak magnitude (relative to the true peak), time to peak and FWHM (s)."""
    e = estimate - estimate.mean(axis=1, keepdims=True)
    t = truth - truth.mean(axis=1, keepdims=True)
    r = (e * t).sum(axis=1) / np.sqrt((e**2).sum(axis=1) * (t**2).sum(axis=1) + 1e-30)
    peak_t = truth.max(axis=1)
    return {
        "aif_r": r,
        "aif_peak_error": (estimate.max(axis=1) - peak_t) / peak_t,
        "aif_tpeak_error_s": (np.argmax(estimate, axis=1) - np.argmax(truth, axis=1)) * dt_s,
        "aif_fwhm_error_s": _fwhm_s(estimate, dt_s) - _fwhm_s(truth, dt_s),
    }


def summarise(dataset: TestDataset, curves: SimulatedCurves, est: dict[str, np.ndarray]) -> dict[str, Any]:
    """RMSEs over the dataset and per level, and the CBF ratio."""
    true_cbf, true_bad = curves.params.cbf_ml_100g_min, curves.params.delay_s
    levels = dataset_levels(dataset, curves.params)
    per_level = {}
    for level in dataset.levels:
        sel = levels == level
        per_level[str(level)] = {
            "cbf_rmse": float(np.sqrt(np.mean((est["cbf"][sel] - true_cbf[sel]) ** 2))),
            "bad_rmse": float(np.sqrt(np.mean((est["bad"][sel] - true_bad[sel]) ** 2))),
        }
    ratio = est["cbf"] / true_cbf
    return {
        "cbf_rmse": float(np.sqrt(np.mean((est["cbf"] - true_cbf) ** 2))),
        "bad_rmse": float(np.sqrt(np.mean((est["bad"] - true_bad) ** 2))),
        "cbf_ratio_mean": float(ratio.mean()),
        "cbf_ratio_sd": float(ratio.std()),
        "per_level": per_level,
    }


def markdown_table(results: dict[str, dict[str, dict[str, Any]]], n_curves: int) -> str:
    """Our RMSEs per dataset and their mean, next to the paper's means."""
    methods = list(next(iter(results.values())))
    head = (
        "| method | " + " | ".join(f"#{d.number} CBF / BAD" for d in TABLE1) + " | mean CBF / BAD | paper CBF / BAD |"
    )
    lines = [
        f"Seed 002 Table 1 datasets, {n_curves} curves each; RMSE of CBF (ml/100 g/min) / BAD (s).",
        "",
        head,
        "|" + "---|" * (len(TABLE1) + 3),
    ]
    for method in methods:
        cells = [
            f"{results[str(d.number)][method]['cbf_rmse']:.2f} / {results[str(d.number)][method]['bad_rmse']:.2f}"
            for d in TABLE1
        ]
        mean_cbf = np.mean([results[str(d.number)][method]["cbf_rmse"] for d in TABLE1])
        mean_bad = np.mean([results[str(d.number)][method]["bad_rmse"] for d in TABLE1])
        paper = PAPER_RMSE[method]
        lines.append(
            f"| {method} | "
            + " | ".join(cells)
            + f" | {mean_cbf:.2f} / {mean_bad:.2f} | {paper['cbf']} / {paper['bad']} |"
        )
    lines += ["", "| method | CBF ratio estimate/true (mean ± SD over all curves) | paper |", "|---|---|---|"]
    for method in methods:
        ratios = [results[str(d.number)][method] for d in TABLE1]
        mean = np.mean([r["cbf_ratio_mean"] for r in ratios])
        sd = np.mean([r["cbf_ratio_sd"] for r in ratios])
        paper_mean, paper_sd = PAPER_CBF_RATIO[method]
        lines.append(f"| {method} | {mean:.2f} ± {sd:.2f} | {paper_mean} ± {paper_sd} |")
    return "\n".join(lines) + "\n"


def plot_figures(results: dict[str, dict[str, dict[str, Any]]], out: Path) -> list[Path]:
    """RMSE against each dataset's variable, one panel per dataset (the paper's Figures 4 and 5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for key, name, unit in (
        ("cbf_rmse", "figure4_cbf.png", "CBF RMSE (ml/100 g/min)"),
        ("bad_rmse", "figure5_bad.png", "BAD RMSE (s)"),
    ):
        fig, axes = plt.subplots(2, 3, figsize=(13, 7), constrained_layout=True)
        for ax, dataset in zip(axes.ravel(), TABLE1):
            per_method = results[str(dataset.number)]
            labels = [str(level) for level in dataset.levels]
            for method, summary in per_method.items():
                ax.plot(labels, [summary["per_level"][label][key] for label in labels], marker="o", label=method)
            ax.set_title(f"#{dataset.number} {dataset.label}")
            ax.set_ylabel(unit)
            ax.grid(alpha=0.3)
        axes.ravel()[0].legend()
        fig.suptitle(f"{unit} per Table 1 dataset (synthetic curves)")
        path = out / name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def evaluate(out: Path, n_curves: int, seed: int, model_dir: Path | None, methods: tuple[str, ...]) -> dict[str, Any]:
    """Run every method on every dataset; write estimates, results, table and figures into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    model = None
    if model_dir is not None:
        from core.perfusion.transformer_model import CtpTransformerModel

        model = CtpTransformerModel(model_dir)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    arrays: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for dataset in TABLE1:
        rng = np.random.default_rng([seed, dataset.number])
        curves = simulate_curves(table1_parameters(dataset, rng, n_curves), rng)
        results[str(dataset.number)] = {}
        for method in (*methods, *(("network",) if model is not None else ())):
            started = time.perf_counter()
            est = network_estimates(model, curves) if method == "network" else svd_estimates(curves, method)
            seconds[f"{dataset.number}/{method}"] = time.perf_counter() - started
            results[str(dataset.number)][method] = summarise(dataset, curves, est)
            if method == "network":
                results[str(dataset.number)][method]["local_aif"] = {
                    k: [float(est[k].mean()), float(est[k].std())] for k in est if k.startswith("aif_")
                }
            for key, values in est.items():
                arrays[f"{dataset.number}_{method}_{key}"] = values
            logger.info(
                "dataset %d %s: %s",
                dataset.number,
                method,
                {k: round(v, 3) for k, v in results[str(dataset.number)][method].items() if isinstance(v, float)},
            )
        arrays[f"{dataset.number}_true_cbf"] = curves.params.cbf_ml_100g_min
        arrays[f"{dataset.number}_true_bad"] = curves.params.delay_s
    np.savez_compressed(out / "estimates.npz", **arrays)
    record = {"curves_per_dataset": n_curves, "seed": seed, "results": results, "seconds": seconds, "paper": PAPER_RMSE}
    (out / "results.json").write_text(json.dumps(record, indent=2))
    (out / "table.md").write_text(markdown_table(results, n_curves))
    plot_figures(results, out)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.ctp.evaluate", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for results.json, table.md, figures")
    parser.add_argument("--curves", type=int, default=10_000, help="curves per dataset (default 10000, the seed's)")
    parser.add_argument("--seed", type=int, default=2002, help="seed of the test curves (default 2002)")
    parser.add_argument("--model", type=Path, default=None, help="model folder of the Transformer (optional)")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS, help="SVD methods to run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    evaluate(args.out, args.curves, args.seed, args.model, tuple(args.methods))
    print((args.out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
