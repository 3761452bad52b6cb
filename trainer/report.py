"""Training report: PNG plots of a run, as the papers show their training (seed 000, Figs. 4 and 5).

``write_training_report`` writes into ``<run>/report/``:

- ``curves.png``: training loss and learning rate per epoch, and the network's metrics on the
  monitored held-out lungs per epoch (Spearman, SSIM, Dice against SPECT);
- ``test_boxplots.png``: box plots of the test metrics per function, network and HU baseline;
- ``examples.png``: coronal slices of a few test lungs: enhanced CT, SPECT / P75 and the prediction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a training server

import matplotlib.pyplot as plt
import numpy as np

from trainer.data import LungSample

CURVE_METRICS = ("spearman", "ssim", "dice_high", "dice_low")
BOX_METRICS = ("spearman", "ssim", "ssim_lung", "dice_high", "dice_low")


def plot_curves(history: Sequence[dict], path: Path) -> Path:
    """Loss, learning rate and monitored metrics against the epoch."""
    epochs = [h["epoch"] for h in history]
    functions = sorted({key.rsplit("_", 1)[0] for h in history for key in h if key.endswith("_spearman")})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(epochs, [h["train_loss"] for h in history], "o-", label="training loss (masked BCE)")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    if all("learning_rate" in h for h in history):
        twin = axes[0].twinx()
        twin.plot(epochs, [h["learning_rate"] for h in history], color="grey", ls="--", label="learning rate")
        twin.set_ylabel("learning rate")
    axes[0].legend(loc="upper right")
    for function in functions:
        for metric in CURVE_METRICS:
            key = f"{function}_{metric}"
            values = [h.get(key, np.nan) for h in history]
            axes[1].plot(epochs, values, "o-", ms=3, label=f"{function} {metric}")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("held-out lungs, vs SPECT")
    axes[1].set_ylim(0, 1)
    if functions:
        axes[1].legend(fontsize=7, ncol=2, loc="lower right")
    fig.suptitle("Training on digital phantoms (research use only)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_test_boxes(rows: Sequence[dict], path: Path) -> Path:
    """Box plots of the test metrics against SPECT: network and HU baseline side by side, per function."""
    functions = sorted({r["function"] for r in rows})
    fig, axes = plt.subplots(1, len(functions), figsize=(6 * len(functions), 4), squeeze=False)
    for ax, function in zip(axes[0], functions):
        data, labels, colours = [], [], []
        for metric in BOX_METRICS:
            for method, colour in (("network", "tab:blue"), ("hu_baseline", "tab:orange")):
                values = [
                    r[metric]
                    for r in rows
                    if r["function"] == function and r["method"] == method and r["reference"] == "spect"
                ]
                data.append([v for v in values if np.isfinite(v)])
                labels.append(f"{metric}\n{'net' if method == 'network' else 'HU'}")
                colours.append(colour)
        boxes = ax.boxplot(data, patch_artist=True)
        for patch, colour in zip(boxes["boxes"], colours):
            patch.set_facecolor(colour)
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=7)
        ax.set_title(f"{function}: test lungs vs SPECT")
        ax.set_ylim(-1.0, 1.0)
        ax.axhline(0.0, color="black", lw=0.5)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_examples(
    samples: Sequence[LungSample],
    predict: Callable[[LungSample], dict[str, np.ndarray]],
    names: Sequence[str],
    path: Path,
) -> Path:
    """Coronal mid-slices: enhanced CT, then SPECT / P75 and the prediction of each function."""
    columns = 1 + 2 * len(names)
    fig, axes = plt.subplots(len(samples), columns, figsize=(2.2 * columns, 3.2 * len(samples)), squeeze=False)
    for row, sample in zip(axes, samples):
        predictions = predict(sample)
        y = int(np.argmax(sample.mask.sum(axis=(0, 2))))  # the coronal plane with the most lung

        def show(ax, image, title, cmap="inferno", vmax=1.0, y=y):
            ax.imshow(image[:, y, :][::-1], cmap=cmap, vmin=0.0, vmax=vmax, aspect="auto")
            ax.set_title(title, fontsize=8)
            ax.axis("off")

        show(row[0], sample.ct, f"{sample.name}\nCT (Eq. 1)", cmap="gray")
        for k, name in enumerate(names):
            show(row[1 + 2 * k], np.clip(sample.spect[name], 0, 1.5), f"{name}\nSPECT / P75", vmax=1.5)
            show(row[2 + 2 * k], np.where(sample.mask, predictions[name], 0.0), f"{name}\nprediction")
    fig.suptitle("SYNTHETIC - research use", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_training_report(
    out_dir: Path,
    history: Sequence[dict],
    rows: Sequence[dict],
    examples: Sequence[LungSample],
    predict: Callable[[LungSample], dict[str, np.ndarray]],
    names: Sequence[str],
) -> list[Path]:
    """All plots into ``out_dir`` (created); returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    if history:
        paths.append(plot_curves(history, out_dir / "curves.png"))
    if rows:
        paths.append(plot_test_boxes(rows, out_dir / "test_boxplots.png"))
    if examples:
        paths.append(plot_examples(examples, predict, names, out_dir / "examples.png"))
    return paths
