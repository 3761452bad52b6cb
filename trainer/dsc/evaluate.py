"""Seed 004's Table 1 and Fig. 1 on held-out DSC phantoms: SVD and the stU-Net at full, half and quarter dose.

``python -m trainer.dsc.evaluate --model models/stunet_dsc --out runs/stunet_eval [--test-stride 1]
[--baseline runs/frame_cnn_dsc_model]``

The test cases are those of the model's own training configuration (``metadata.json``), never seen in
training.  For every dose (1, 0.5, 0.25) and method -- SVD on the low-dose signal
(:func:`core.perfusion.dsc.reference_cbv` of seed 004 Eq. 1's degraded signal) and the stU-Net
(:class:`core.perfusion.stunet_model.StUNetModel`) -- the maps are compared with two references on the
network's grid, both standardised over the brain and clipped to ``[-5, 5]`` as in the paper:

- ``reference``: the SVD map of the full-dose signal (the training target, the paper's Verbena maps; SVD
  at full dose is the reference itself, "n/a" as in the paper);
- ``truth``: the phantom's true CBV, standardised the same way.

Metrics (seed 004 Table 1): L1 (mean absolute error), L2 (mean squared error), t-L1 and t-L2 (the same
over the enhancing tumour), SSIM (:func:`core.metrics.ssim` of each slice, a 2D Gaussian window,
``data_range`` 10, the range of ``[-5, 5]``; maps set to 0 outside the brain, the SSIM map averaged over
the brain voxels).  Each metric is computed over the brain (tumour) voxels of every slice that has some,
averaged across those slices for a case, and reported as mean (SD) over the test cases.  Outputs:
``results.json`` (per case and summary), ``table.md`` and ``table.csv``, and ``figure1_cbv.png`` (CBV maps of one
test case: true, reference, SVD and stU-Net at every dose).

With ``--baseline`` (a model folder of ``network.kind`` ``"frame_channel_cnn"``, the 2D CNN with the frames as
channels; :mod:`trainer.networks.frame_channel_cnn`), a third method ``cnn2d`` is scored exactly like the
stU-Net and added to the per-case metrics, the summary, the tables (beside the paper's Hess et al. [8]
column, a different architecture) and the figure.  The baseline must have been trained with the same phantom
preset, test cases and preprocessing as the model (checked).  Without it the outputs are the two methods above.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.metrics import ssim
from core.perfusion.stunet_model import StUNetModel
from core.perfusion.stunet_preprocessing import CLIP
from trainer.dsc.config import DscConfig, dsc_config_from_dict
from trainer.dsc.data import load_split, split_cases

logger = logging.getLogger(__name__)

METRICS = ("l2", "t_l2", "l1", "t_l1", "ssim")
SCALES = {"l2": 100.0, "t_l2": 100.0, "l1": 100.0, "t_l1": 100.0, "ssim": 100.0}
"""Reported units as in seed 004 Table 1: L1 and L2 in 1e-2, SSIM in %."""
METHODS = ("svd", "stunet")
BASELINE = "cnn2d"
"""The method of ``--baseline``."""
LABELS = {"svd": "SVD", "stunet": "stU-Net", BASELINE: "2D CNN (frames as channels)"}
PAPER_LABELS = {"svd": "paper Verbena", "stunet": "paper stU-Net", BASELINE: "paper Hess [8]"}
REFERENCES = ("reference", "truth")
SSIM_DATA_RANGE = 2 * CLIP
PAPER_TABLE1 = {
    "1": {"stunet": ((8.38, 3.52), (5.93, 6.44), (17.58, 4.05), (16.52, 9.37), (82.08, 5.02))},
    "0.5": {
        "svd": ((15.97, 3.70), (11.24, 15.50), (22.69, 3.70), (20.62, 14.59), (77.90, 4.22)),
        "stunet": ((8.86, 2.98), (3.95, 4.17), (18.97, 3.76), (13.96, 7.07), (79.19, 5.17)),
    },
    "0.25": {
        "svd": ((70.90, 74.47), (38.67, 43.45), (46.16, 19.11), (41.66, 24.32), (59.08, 6.57)),
        "stunet": ((9.68, 2.72), (6.26, 7.48), (18.22, 2.35), (17.53, 10.89), (81.36, 3.91)),
    },
}
"""Seed 004 Table 1: mean (SD) over its 12 test patients of each of :data:`METRICS` in the table's units,
against Verbena's full-dose maps (Verbena is our ``svd``)."""
PAPER_HESS = {
    "1": ((38.71, 15.06), (26.30, 67.29), (34.01, 5.49), (26.89, 21.51), (63.16, 5.71)),
    "0.5": ((39.00, 15.95), (28.09, 72.44), (33.87, 6.04), (27.31, 22.47), (63.67, 5.47)),
    "0.25": ((39.82, 15.86), (30.06, 70.35), (34.72, 6.09), (30.07, 22.32), (62.78, 5.37)),
}
"""Seed 004 Table 1's column of Hess et al. [8], as :data:`PAPER_TABLE1`: shown beside our ``cnn2d``, which
follows the per-frame-channel 2D approach, not Hess et al.'s architecture."""


def slice_metrics(prediction: np.ndarray, reference: np.ndarray, brain: np.ndarray, tumour: np.ndarray) -> dict:
    """Every metric of one ``(H, W)`` slice; the tumour ones are ``nan`` without tumour voxels."""
    error = prediction.astype(np.float64) - reference.astype(np.float64)
    values = {"l1": float(np.abs(error[brain]).mean()), "l2": float((error[brain] ** 2).mean())}
    inside = tumour & brain
    values["t_l1"] = float(np.abs(error[inside]).mean()) if inside.any() else math.nan
    values["t_l2"] = float((error[inside] ** 2).mean()) if inside.any() else math.nan
    values["ssim"] = ssim(
        np.where(brain, prediction, 0.0), np.where(brain, reference, 0.0), data_range=SSIM_DATA_RANGE, mask=brain
    )
    return values


def case_metrics(prediction: np.ndarray, reference: np.ndarray, brain: np.ndarray, tumour: np.ndarray) -> dict:
    """Each metric averaged over the slices of a ``(nz, H, W)`` case that hold brain (tumour) voxels."""
    per_slice = [
        slice_metrics(prediction[z], reference[z], brain[z], tumour[z]) for z in range(len(brain)) if brain[z].any()
    ]
    out = {}
    for key in METRICS:
        values = [s[key] for s in per_slice if not math.isnan(s[key])]
        out[key] = float(np.mean(values)) if values else math.nan
    return out


def _summary(per_case: list[dict[str, float]]) -> dict[str, list[float]]:
    """``[mean, SD]`` over cases of every metric (cases with ``nan`` left out; population SD)."""
    out = {}
    for key in METRICS:
        values = np.array([c[key] for c in per_case if not math.isnan(c[key])])
        out[key] = [float(values.mean()), float(values.std())] if len(values) else [math.nan, math.nan]
    return out


def _cell(summary: dict[str, list[float]] | None, key: str) -> str:
    if summary is None:
        return "(n/a)"
    mean, sd = summary[key]
    return f"{SCALES[key] * mean:.2f} ({SCALES[key] * sd:.2f})"


def _paper_cell(method: str, dose: str, k: int) -> str:
    """The paper's Table 1 entry of ``method`` (Hess et al. for ``cnn2d``), dose and ``METRICS[k]``."""
    column = PAPER_HESS.get(dose) if method == BASELINE else PAPER_TABLE1.get(dose, {}).get(method)
    return "(n/a)" if column is None else f"{column[k][0]:.2f} ({column[k][1]:.2f})"


def _methods(results: dict[str, Any]) -> list[str]:
    """The methods of ``results`` in order: :data:`METHODS`, then :data:`BASELINE` when it was scored."""
    return list(next(iter(results.values())))


def markdown_table(results: dict[str, Any], n_cases: int) -> str:
    """Our Table 1 against both references, next to the paper's numbers."""
    methods = _methods(results)
    columns = [f"{LABELS[m]} vs {r}" for r in REFERENCES for m in methods] + [PAPER_LABELS[m] for m in methods]
    lines = [
        f"Seed 004 Table 1 on {n_cases} held-out DSC phantoms: mean (SD) over cases; L1, L2 in 1e-2, SSIM in %.",
        "Standardised CBV over the brain, clipped to [-5, 5]; metrics per slice, averaged over slices.",
        "",
        "| dose | metric | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for dose, by_method in results.items():
        for key in METRICS:
            cells = [_cell(by_method[m][r], key) for r in REFERENCES for m in methods]
            k = METRICS.index(key)
            papers = [_paper_cell(m, dose, k) for m in methods]
            lines.append(f"| {dose} | {key.replace('_', '-').upper()} | " + " | ".join(cells + papers) + " |")
    if BASELINE in methods:
        note = f"{LABELS[BASELINE]}: the per-frame-channel 2D approach, not the architecture of Hess et al. [8]."
        lines += ["", note]
    return "\n".join(lines) + "\n"


def write_csv(results: dict[str, Any], path: Path) -> None:
    """One row per dose, method, reference and metric: mean and SD in the table's units."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["dose", "method", "reference", "metric", "mean", "sd", "unit"])
        for dose, by_method in results.items():
            for method in by_method:
                for reference in REFERENCES:
                    summary = by_method[method][reference]
                    for key in METRICS:
                        mean, sd = (math.nan, math.nan) if summary is None else summary[key]
                        unit = "%" if key == "ssim" else "1e-2"
                        writer.writerow([dose, method, reference, key, SCALES[key] * mean, SCALES[key] * sd, unit])


def plot_figure1(
    maps: dict[str, np.ndarray], brain: np.ndarray, doses: list[float], path: Path, methods: Sequence[str] = METHODS
) -> Path:
    """Fig. 1 of seed 004 for one slice: true and reference CBV, then each of ``methods`` at every dose, with L1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 2 + len(methods)
    fig, axes = plt.subplots(
        len(doses), columns, figsize=(3 * columns, 3 * len(doses)), constrained_layout=True, squeeze=False
    )
    shown = {"vmin": -2.0, "vmax": CLIP, "cmap": "magma"}
    image = None
    for row, dose in enumerate(doses):
        panels = [("true CBV", maps["truth"]), ("SVD full dose (reference)", maps["reference"])] if row == 0 else []
        panels += [(f"{LABELS[m]}, dose {dose:g}", maps[f"{m}_{dose:g}"]) for m in methods]
        for col, ax in enumerate(axes[row]):
            ax.axis("off")
            index = col if row == 0 else col - 2
            if not 0 <= index < len(panels):
                continue
            title, values = panels[index]
            if col >= 2:
                title += f"\nL1 vs reference {np.abs(values - maps['reference'])[brain].mean():.3f}"
            image = ax.imshow(np.where(brain, values, np.nan), **shown)
            ax.set_title(title, fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="standardised CBV")
    fig.suptitle("CBV of a held-out DSC phantom (synthetic data; seed 004 Fig. 1 layout)")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _figure_slice(case: dict[str, np.ndarray]) -> int:
    """The slice with the most tumour voxels (the most brain voxels when there is no tumour)."""
    tumour = case["tumour"].sum(axis=(1, 2))
    return int(np.argmax(tumour if tumour.any() else case["brain"].sum(axis=(1, 2))))


PerCase = dict[str, dict[str, dict[str, list[dict[str, float]]]]]


def score_cases(
    networks: dict[str, StUNetModel], cases: list[dict[str, np.ndarray]], doses: list[float], test_stride: int | None
) -> tuple[PerCase, dict[str, np.ndarray]]:
    """Metrics of every case, dose, method and reference, and the maps of the first case's figure slice.

    The methods are SVD and each of ``networks`` (method name -> model), in that order.
    """
    methods = ["svd", *networks]
    per_case: PerCase = {f"{d:g}": {m: {r: [] for r in REFERENCES} for m in methods} for d in doses}
    figure_maps: dict[str, np.ndarray] = {}
    for c, case in enumerate(cases):
        z = _figure_slice(case)
        references = {"reference": case["target"], "truth": case["truth"]}
        for d, dose in enumerate(doses):
            dsc = case["dsc"][d].astype(np.float32)
            maps = {"svd": case["svd"][d]}
            maps |= {m: network.predict_prepared(dsc, case["brain"], test_stride) for m, network in networks.items()}
            for method, values in maps.items():
                for name, reference in references.items():
                    scores = case_metrics(values, reference, case["brain"], case["tumour"])
                    per_case[f"{dose:g}"][method][name].append(scores)
                if c == 0:
                    figure_maps[f"{method}_{dose:g}"] = values[z]
        if c == 0:
            figure_maps |= {"reference": case["target"][z], "truth": case["truth"][z], "brain": case["brain"][z]}
        logger.info("test case %d of %d done", c + 1, len(cases))
    return per_case, figure_maps


def load_baseline(folder: Path, config: DscConfig, mirror: bool = True) -> StUNetModel:
    """The 2D CNN baseline of ``folder``, checked against the evaluated model's ``config``.

    Raises
    ------
    ValueError
        If the baseline is not a ``frame_channel_cnn``, or was trained with another phantom preset, other test
        cases or another preprocessing of the DSC (it could then have seen the test cases, or read other inputs).
    """
    baseline = StUNetModel(folder, mirror=mirror)
    if baseline.network_kind != "frame_channel_cnn":
        raise ValueError(f"--baseline {folder} must be a frame_channel_cnn model, got {baseline.network_kind!r}")
    theirs = dsc_config_from_dict(baseline.metadata["training"]["config"])
    compared = [
        ("data.preset", config.data.preset, theirs.data.preset),
        ("test cases", split_cases(config.data)["test"].tolist(), split_cases(theirs.data)["test"].tolist()),
    ]
    compared += [
        (f"preprocessing.{k}", getattr(config.preprocessing, k), getattr(theirs.preprocessing, k))
        for k in ("size", "frames", "frame_step_s", "margin_voxels")
    ]
    differences = [f"{name} ({other!r}, the model: {ours!r})" for name, ours, other in compared if ours != other]
    if differences:
        raise ValueError(
            f"the baseline {folder} was trained with another {'; '.join(differences)}; "
            "train it with the model's [data] and [preprocessing] tables"
        )
    return baseline


def evaluate(
    model_dir: Path,
    out: Path,
    *,
    test_stride: int | None = None,
    progress: bool = True,
    baseline_dir: Path | None = None,
    mirror: bool = True,
) -> dict[str, Any]:
    """Table 1 and Fig. 1 of the model in ``model_dir`` on its configuration's test cases, written into ``out``.

    ``baseline_dir``: a 2D CNN baseline (:func:`load_baseline`) scored as the method ``cnn2d``.
    """
    out.mkdir(parents=True, exist_ok=True)
    model = StUNetModel(model_dir, mirror=mirror)
    config: DscConfig = dsc_config_from_dict(model.metadata["training"]["config"])
    networks = {"stunet": model}
    if baseline_dir is not None:
        networks[BASELINE] = load_baseline(baseline_dir, config, mirror)
    for network in networks.values():
        network.threads = config.optim.threads
    cases = load_split(config, "test", progress)
    doses = [float(d) for d in config.data.eval_doses]
    per_case, figure_maps = score_cases(networks, cases, doses, test_stride)
    results: dict[str, Any] = {}
    for dose_key, by_method in per_case.items():
        results[dose_key] = {m: {r: _summary(v) for r, v in refs.items()} for m, refs in by_method.items()}
    results["1"]["svd"]["reference"] = None  # SVD at full dose is the reference itself (n/a in the paper)
    record = {
        "model": model.identity,
        "test_cases": split_cases(config.data)["test"].tolist(),
        "test_stride": model.test_stride if test_stride is None else test_stride,
        "mirror": mirror,
        "summary": results,
        "per_case": per_case,
        "paper": PAPER_TABLE1,
    }
    if baseline_dir is not None:
        baseline = networks[BASELINE]
        record |= {
            "baseline": baseline.identity,
            "baseline_test_stride": baseline.test_stride if test_stride is None else test_stride,
            "paper_hess": PAPER_HESS,
        }
    (out / "results.json").write_text(json.dumps(record, indent=2))
    (out / "table.md").write_text(markdown_table(results, len(cases)))
    write_csv(results, out / "table.csv")
    brain = figure_maps.pop("brain").astype(bool)
    plot_figure1(figure_maps, brain, doses, out / "figure1_cbv.png", ["svd", *networks])
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.dsc.evaluate", description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="model folder (model.ts + metadata.json)")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.json, table.md/csv, figure")
    parser.add_argument("--test-stride", type=int, default=None, help="strip stride (default: the metadata's)")
    parser.add_argument(
        "--baseline", type=Path, metavar="MODEL_DIR", help="a frame_channel_cnn model folder, scored as cnn2d"
    )
    parser.add_argument(
        "--no-mirror", action="store_true", help="one pass per slice (the paper), without the mirror-image average"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    evaluate(args.model, args.out, test_stride=args.test_stride, baseline_dir=args.baseline, mirror=not args.no_mirror)
    print((args.out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
