"""Evaluate SPECT denoising as seed 003 does, on held-out phantoms and on the NEMA IEC phantom.

``python -m trainer.denoise.evaluate --run runs/u2net_spect --ablation runs/u2net_spect_noct --nema data/spect_nema``

Methods in one table: the 1/7-time input, a Gaussian post-filter whose width is tuned on the
training cases (the classical baseline), the U2-Net without the CT (the paper's ablation) and the
U2-Net with the CT.

Metrics (seed 003's definitions, computed over the body, ``CT > -500 HU`` on the SPECT grid, so that
the air around the patient does not dominate them):

* ``PSNR = 10 log10(MAX_gt^2 / MSE)``, ``MAX_gt`` the maximum of the standard SPECT;
* SSIM (scikit-image, Gaussian window, k1 0.01, k2 0.03, ``L`` the range of the standard SPECT),
  :func:`core.metrics.ssim` in 3-D;
* the count ratio output / input (total counts preserved), and for the networks their own ratio
  before the app's count-preserving rescale;
* against the phantom's true activity on the SPECT grid too (the papers could not).

NEMA IEC phantom (evaluation only; never trained on): for each sphere, the contrast-to-noise
ratio ``CNR = (mean_sphere - mean_bg) / sd_bg`` over the SPECT voxels whose centres lie inside
the sphere and the background region of the phantom (15 mm from walls, insert and spheres); a
sphere is detectable when ``CNR >= 5`` (the Rose criterion).  SUVmean = mean sphere concentration x
phantom mass / activity (9.7 kg of water, seed 003) for each method.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import torch
from torch import nn

from core.dicom.ct_reader import read_ct_volume
from core.dicom.nm_writer import read_nm_volume
from core.metrics import ssim
from core.nm.denoising import (
    count_ratio,
    ct_on_spect_grid,
    denoise_volume,
    normalisation_support,
    preserve_total_counts,
)
from core.resample import resample_to_grid
from trainer.denoise.config import DenoiseConfig, config_from_dict
from trainer.denoise.data import BoneCase, load_case
from trainer.denoise.train import load_trained

logger = logging.getLogger(__name__)

BODY_HU = -500.0
"""SPECT voxels whose CT is above this belong to the body (the region the metrics cover)."""

ROSE_CNR = 5.0
"""Rose criterion: an object is detectable when its contrast-to-noise ratio is at least 5."""

NEMA_MASS_G = 9700.0
"""Seed 003: the NEMA IEC body phantom holds 9700 ml of water."""

GAUSSIAN_SIGMAS_VOXELS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
"""Widths searched for the Gaussian baseline, in SPECT voxels (4.42 mm: FWHM 5.2 to 20.8 mm)."""

Method = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(fast counts, CT HU on the SPECT grid) -> denoised counts."""


def psnr(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """``10 log10(max(reference)^2 / MSE)``, the MSE over ``mask``."""
    mse = float(np.mean((prediction[mask].astype(np.float64) - reference[mask]) ** 2))
    return float(10.0 * np.log10(float(reference.max()) ** 2 / mse))


def image_metrics(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM over ``mask``."""
    return {"psnr": psnr(prediction, reference, mask), "ssim": ssim(prediction, reference, mask=mask)}


def gaussian_method(sigma: float) -> Method:
    """Gaussian post-filter of ``sigma`` voxels (counts preserved up to the edges)."""
    return lambda fast, _ct: ndi.gaussian_filter(fast, sigma, mode="constant")


class NetworkMethod:
    """The network through the app's own path (inference, then total counts set to the input's).

    ``network_count_ratios`` collects the network's own count ratio (before the rescale) per call.
    """

    def __init__(self, model: nn.Module, use_ct: bool, normalisation: str = "volume") -> None:
        self.model, self.use_ct, self.normalisation = model, use_ct, normalisation
        self.network_count_ratios: list[float] = []

    def __call__(self, fast: np.ndarray, ct: np.ndarray) -> np.ndarray:
        support = normalisation_support(self.normalisation, ct)
        raw = denoise_volume(self.model, fast, ct if self.use_ct else None, batch_size=16, support=support)
        self.network_count_ratios.append(count_ratio(raw, fast))
        return preserve_total_counts(raw, fast)


def tune_gaussian(cases: list[BoneCase]) -> tuple[float, dict[str, float]]:
    """The sigma with the best mean PSNR against the standard on ``cases`` (the training part)."""
    scores: dict[str, float] = {}
    for sigma in GAUSSIAN_SIGMAS_VOXELS:
        values = [psnr(gaussian_method(sigma)(c.fast, c.ct_hu), c.standard, c.ct_hu > BODY_HU) for c in cases]
        scores[f"{sigma:g}"] = float(np.mean(values))
    best = max(GAUSSIAN_SIGMAS_VOXELS, key=lambda s: scores[f"{s:g}"])
    return best, scores


def evaluate_cases(cases: list[BoneCase], methods: dict[str, Method], truth: dict[str, np.ndarray]) -> list[dict]:
    """One row per case and method: metrics against the standard SPECT and against the true activity."""
    rows = []
    for case in cases:
        body = case.ct_hu > BODY_HU
        for name, method in methods.items():
            output = method(case.fast, case.ct_hu)
            row = {"case": case.name, "method": name, **image_metrics(output, case.standard, body)}
            row["count_ratio"] = count_ratio(output, case.fast)
            if isinstance(method, NetworkMethod):
                row["network_count_ratio"] = method.network_count_ratios[-1]
            if case.name in truth:
                activity = truth[case.name]
                scaled = output * (activity.sum() / case.fast.sum())
                row.update({f"{k}_truth": v for k, v in image_metrics(scaled, activity, body).items()})
            rows.append(row)
            logger.info("%s %s: PSNR %.2f SSIM %.4f", case.name, name, row["psnr"], row["ssim"])
    return rows


def summarise(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of every metric per method."""
    out: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        keys = [k for k in mine[0] if k not in ("case", "method")]
        out[method] = {f"{k}_mean": float(np.mean([r[k] for r in mine])) for k in keys}
        out[method] |= {f"{k}_sd": float(np.std([r[k] for r in mine])) for k in keys}
    return out


def nema_spheres(study: Path, methods: dict[str, Method]) -> dict:
    """CNR, detectability and SUVmean of each sphere, for the standard image and every method on the fast one."""
    dicom = study / "dicom"
    fast, grid = read_nm_volume(dicom / "NM_NEMA_BONE_FAST.dcm")
    standard, _ = read_nm_volume(dicom / "NM_NEMA_BONE_STANDARD.dcm")
    ct_hu, ct_grid = read_ct_volume(sorted(dicom.glob("CT_*.dcm")))
    ct = ct_on_spect_grid(ct_hu, ct_grid, grid)
    truth = np.load(study / "ground_truth" / "truth.npz")
    record = json.loads((study / "ground_truth" / "truth.json").read_text())
    labels = resample_to_grid(truth["sphere_labels"], ct_grid, grid, interpolation="nearest")
    background = resample_to_grid(truth["background_mask"].astype(np.uint8), ct_grid, grid, interpolation="nearest") > 0
    dose_mbq = float(truth["activity_bone_standard"].sum())
    voxel_ml = float(np.prod(grid.spacing_mm)) / 1000.0
    images = {"standard": standard, **{name: method(fast, ct) for name, method in methods.items()}}
    result: dict = {"study": study.name, "diameters_mm": record["sphere_diameters_mm"], "images": {}}
    for name, image in images.items():
        bg = image[background]
        spheres = []
        for number, diameter in enumerate(record["sphere_diameters_mm"], start=1):
            inside = labels == number
            mean = float(image[inside].mean())
            spheres.append(
                {
                    "diameter_mm": diameter,
                    "voxels": int(inside.sum()),
                    "cnr": (mean - float(bg.mean())) / float(bg.std()),
                    "suv_mean": mean / voxel_ml * NEMA_MASS_G / dose_mbq,
                    "suv_max": float(image[inside].max()) / voxel_ml * NEMA_MASS_G / dose_mbq,
                }
            )
        for sphere in spheres:
            sphere["detectable"] = sphere["cnr"] >= ROSE_CNR
        result["images"][name] = {"spheres": spheres, "detected": sum(s["detectable"] for s in spheres)}
    reference = result["images"]["standard"]["spheres"]
    for image in result["images"].values():
        for sphere, ref in zip(image["spheres"], reference, strict=True):
            sphere["suv_mean_vs_standard"] = sphere["suv_mean"] / ref["suv_mean"] - 1.0
        image["finds_all_standard_spheres"] = all(
            s["detectable"] for s, ref in zip(image["spheres"], reference, strict=True) if ref["detectable"]
        )
        image["suv_within_5_percent"] = all(
            abs(s["suv_mean_vs_standard"]) <= 0.05
            for s, ref in zip(image["spheres"], reference, strict=True)
            if ref["detectable"] and s["detectable"]
        )
    return result


def markdown_table(summary: dict[str, dict[str, float]], sigma: float, nema: list[dict]) -> str:
    """The results as a Markdown table (seed 003's Table 1 layout plus our extra columns)."""
    lines = [
        "| method | PSNR (dB) | SSIM | PSNR vs truth | SSIM vs truth | counts out/in | network alone |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, s in summary.items():
        label = f"{method} (sigma {sigma:g} voxels)" if method == "gaussian" else method
        lines.append(
            f"| {label} | {s['psnr_mean']:.2f} ± {s['psnr_sd']:.2f} | {s['ssim_mean']:.4f} ± {s['ssim_sd']:.4f} | "
            f"{s.get('psnr_truth_mean', float('nan')):.2f} | {s.get('ssim_truth_mean', float('nan')):.4f} | "
            f"{s['count_ratio_mean']:.4f} | {s.get('network_count_ratio_mean', float('nan')):.4f} |"
        )
    for study in nema:
        lines += ["", f"NEMA IEC phantom {study['study']}: CNR per sphere (detectable at >= {ROSE_CNR:g})", ""]
        lines.append("| image | " + " | ".join(f"{d:g} mm" for d in study["diameters_mm"]) + " | detected |")
        lines.append("|---" * (len(study["diameters_mm"]) + 2) + "|")
        for name, image in study["images"].items():
            cells = " | ".join(f"{s['cnr']:.1f}" for s in image["spheres"])
            lines.append(f"| {name} | {cells} | {image['detected']} |")
        lines += ["", "| image | " + " | ".join(f"SUVmean {d:g} mm" for d in study["diameters_mm"]) + " |"]
        lines.append("|---" * (len(study["diameters_mm"]) + 1) + "|")
        for name, image in study["images"].items():
            cells = " | ".join(
                f"{s['suv_mean']:.2f} ({100 * s['suv_mean_vs_standard']:+.1f} %)" for s in image["spheres"]
            )
            lines.append(f"| {name} | {cells} |")
    return "\n".join(lines) + "\n"


def _run_model(run: Path) -> tuple[DenoiseConfig, nn.Module]:
    config = config_from_dict(json.loads((run / "config.json").read_text()))
    return config, load_trained(config, run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.denoise.evaluate", description=__doc__)
    parser.add_argument("--run", type=Path, required=True, help="run folder of the U2-Net with the CT")
    parser.add_argument("--ablation", type=Path, help="run folder of the no-CT U2-Net")
    parser.add_argument("--nema", type=Path, nargs="*", default=[], help="NEMA study folders (case_* with dicom/)")
    parser.add_argument("--out", type=Path, help="folder for evaluation.json and evaluation.md (default: --run)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(2)
    config, model = _run_model(args.run)
    split = json.loads((args.run / "split.json").read_text())
    cache = config.data.cache
    train_cases = [load_case(cache / f"{c}.npz") for c in split["train"]]
    test_cases = [load_case(cache / f"{c}.npz") for c in split["test"]]
    sigma, sigma_scores = tune_gaussian(train_cases)
    methods: dict[str, Method] = {"fast (1/7 time)": lambda fast, _ct: fast, "gaussian": gaussian_method(sigma)}
    if args.ablation:
        ablation_config, ablation = _run_model(args.ablation)
        methods["u2net without CT"] = NetworkMethod(
            ablation, ablation_config.model.use_ct, ablation_config.model.normalisation
        )
    methods["u2net with CT"] = NetworkMethod(model, config.model.use_ct, config.model.normalisation)
    truth = {}
    for case in test_cases:
        study = config.data.studies / case.name / "ground_truth" / "truth.npz"
        if study.exists():
            truth[case.name] = np.load(study)["activity_bone_standard"]
    rows = evaluate_cases(test_cases, methods, truth)
    summary = summarise(rows)
    nema = [nema_spheres(study, {k: v for k, v in methods.items()}) for study in args.nema]
    out = args.out or args.run
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "test_cases": [c.name for c in test_cases],
        "gaussian_sigma_voxels": sigma,
        "gaussian_tuning_psnr": sigma_scores,
        "summary": summary,
        "rows": rows,
        "nema": nema,
    }
    (out / "evaluation.json").write_text(json.dumps(report, indent=2))
    table = markdown_table(summary, sigma, nema)
    (out / "evaluation.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
