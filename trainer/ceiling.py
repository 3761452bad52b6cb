"""How far a plain CT can take synthetic perfusion and ventilation on the phantom: the metrics' ceiling.

    python -m trainer.ceiling --config trainer/configs/ddran_cpu_small.toml \\
        --model models/ddran_lung --out models/ddran_lung/report/ceiling.md

The phantom draws part of each function field from noise the CT never shows (the perfusion
heterogeneity not shared with ventilation, the ventilation heterogeneity not shared with the
density texture; :mod:`core.simulation.physiology`).  No network can predict that part, so the
papers' figures (measured on patients) are not a given on the phantom.  This tool measures what
is reachable.  It rebuilds every held-out phantom of the trainer's split from its seed and scores
two predictors, exactly as :mod:`trainer.evaluate` scores the network against the simulated SPECT
(the lung crop, Eq. 2 range [0, 1], the SPECT's own voxels):

* ``truth``: the phantom's true function field (perfect knowledge);
* ``ct_visible``: its expectation given what the CT shows (``perfusion_given_ct`` of
  :func:`core.simulation.thorax.make_thorax_phantom`): gravity gradients, density texture and the
  pathologies.  Pathologies count as fully visible, even the subtle ones (embolism, obstruction),
  so this bounds a CT-only predictor from above.

The SPECT sees a field through its resolution: ``E[SPECT | CT] = H E[f | CT]`` with ``H`` the
system blur.  Each predictor is therefore also scored after a Gaussian blur of the field (zero
outside the lung, as counts spill out of it) of each FWHM in ``--fwhm-mm``; the ceiling of a
metric is the best mean over those widths (picked on the test lungs, hence again an upper bound).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from core.geometry import Grid
from core.metrics import METRIC_KEYS, evaluate_on_spect
from core.simulation.spect.collimator import FWHM_PER_SIGMA
from core.simulation.study import PRESETS, StudySpec
from core.simulation.thorax import ThoraxPhantom, make_thorax_phantom
from trainer.config import load_config
from trainer.data import LungSample, load_sample, samples_from_volumes
from trainer.split import case_of, split_cases

logger = logging.getLogger(__name__)

FUNCTIONS = ("perfusion", "ventilation")
PREDICTORS = ("truth", "ct_visible")
DEFAULT_FWHM_MM = (0.0, 8.0, 12.0, 16.0)
SEED_001_PATIENTS = {
    "perfusion": {"spearman": 0.836, "ssim": 0.871, "dice_high": 0.857, "dice_low": 0.795},
    "ventilation": {"spearman": 0.732},
}
"""Seed 001's DDRAN figures on its patients, for context (the paper's Table; not a phantom figure)."""
_CASE = re.compile(r"^phantom(\d+)$")


def phantom_seed(case: str) -> int:
    """The generator seed of a phantom case id (``phantom10002`` -> 10002)."""
    match = _CASE.match(case)
    if match is None:
        raise ValueError(f"case {case!r} is not a phantom case (phantomNNNNN); the ceiling needs the phantom's seed")
    return int(match.group(1))


def predictor_fields(phantom: ThoraxPhantom, fwhm_mm: Sequence[float]) -> dict[str, tuple[np.ndarray, Grid]]:
    """``'<function>/<predictor>/<fwhm>'`` -> (field on the function grid, 0 outside the lung, its grid)."""
    if phantom.perfusion_given_ct is None or phantom.ventilation_given_ct is None:
        raise ValueError(
            "the phantom has no CT-visible fields; make it with core.simulation.thorax.make_thorax_phantom"
        )
    inside = phantom.function_lung_mask > 0
    spacing = phantom.function_grid.spacing_mm
    sources = {
        ("perfusion", "truth"): phantom.perfusion,
        ("perfusion", "ct_visible"): phantom.perfusion_given_ct,
        ("ventilation", "truth"): phantom.ventilation,
        ("ventilation", "ct_visible"): phantom.ventilation_given_ct,
    }
    out = {}
    for (function, predictor), values in sources.items():
        field = np.where(inside, values, 0.0).astype(np.float32)
        for fwhm in fwhm_mm:
            sigma = [fwhm / FWHM_PER_SIGMA / s for s in spacing]
            blurred = ndimage.gaussian_filter(field, sigma) if fwhm > 0 else field
            out[f"{function}/{predictor}/{fwhm:g}"] = (blurred.astype(np.float32), phantom.function_grid)
    return out


def case_rows(case: str, stored: Sequence[LungSample], spec: StudySpec, fwhm_mm: Sequence[float]) -> list[dict]:
    """Rebuild one phantom, check it is the one the samples were cut from, and score every predictor field."""
    grid = Grid.centred(spec.ct_shape, spec.ct_spacing_mm)
    phantom = make_thorax_phantom(
        grid,
        phantom_seed(case),
        ct_noise_hu=spec.ct_noise_hu,
        large_embolism_probability=spec.large_embolism_probability,
    )
    rebuilt = {
        s.side: s
        for s in samples_from_volumes(case, phantom.hu.astype(np.float32), grid, {}, predictor_fields(phantom, fwhm_mm))
    }
    rows = []
    for sample in stored:
        again = rebuilt.get(sample.side)
        if again is None or not _same_crop(again.hu, sample.hu):
            raise ValueError(
                f"{sample.name}: the phantom rebuilt from seed {phantom_seed(case)} does not give the stored CT crop; "
                "pass the --preset (and --large-embolism-probability) the cohort was made with"
            )
        assert sample.crop_grid is not None
        for key, field in again.truth.items():
            function, predictor, fwhm = key.split("/")
            if function not in sample.native:
                continue
            metrics = evaluate_on_spect(
                np.clip(field, 0.0, 1.0), sample.mask, sample.crop_grid, sample.native[function]
            )
            rows.append(
                {"sample": sample.name, "function": function, "predictor": predictor, "fwhm_mm": float(fwhm), **metrics}
            )
    return rows


def _same_crop(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Whether two HU crops are equal as stored (float16)."""
    if a is None or b is None or a.shape != b.shape:
        return False
    return bool(np.array_equal(a.astype(np.float16), b.astype(np.float16)))


def summarise(rows: list[dict]) -> dict:
    """Per function and predictor: the mean of every metric at each FWHM, and its best over the FWHMs."""
    out: dict = {}
    for function in FUNCTIONS:
        for predictor in PREDICTORS:
            chosen = [r for r in rows if r["function"] == function and r["predictor"] == predictor]
            if not chosen:
                continue
            by_fwhm = {}
            for fwhm in sorted({r["fwhm_mm"] for r in chosen}):
                at = [r for r in chosen if r["fwhm_mm"] == fwhm]
                by_fwhm[f"{fwhm:g}"] = {k: float(np.nanmean([r[k] for r in at])) for k in METRIC_KEYS}
            best = {k: max((v[k], float(f)) for f, v in by_fwhm.items() if np.isfinite(v[k])) for k in METRIC_KEYS}
            out[f"{function}/{predictor}"] = {
                "lungs": len({r["sample"] for r in chosen}),
                "by_fwhm": by_fwhm,
                "ceiling": {k: value for k, (value, _) in best.items()},
                "ceiling_fwhm_mm": {k: fwhm for k, (_, fwhm) in best.items()},
            }
    return out


def network_means(metadata: Path, split_of: dict, test_cases: int) -> dict[str, dict[str, float]]:
    """``function -> metric -> mean`` of the exported network against the SPECT (its metadata.json).

    Raises ``ValueError`` unless the model was tested on the split of ``split_of`` (``test_fraction``,
    ``folds``, ``seed``) with ``test_cases`` held-out cases: its figures would be of other lungs.
    """
    meta = json.loads(metadata.read_text())
    training = meta.get("training", {})
    used = {
        "test_fraction": training.get("data", {}).get("test_fraction"),
        "folds": training.get("data", {}).get("folds"),
        "seed": training.get("optim", {}).get("seed"),
        "test_cases": meta.get("trained_on", {}).get("test_cases"),
    }
    wanted = {**split_of, "test_cases": test_cases}
    if used != wanted:
        raise ValueError(
            f"{metadata} was tested on another split ({used}) than the configuration's ({wanted}); "
            "pass the configuration it was trained with, and no --cases"
        )
    metrics = meta.get("test_metrics", {})
    return {
        function: {k: v["mean"] for k, v in metrics[f"{function}/network/spect"].items()}
        for function in FUNCTIONS
        if f"{function}/network/spect" in metrics
    }


def table(summary: dict, network: dict[str, dict[str, float]] | None = None) -> str:
    """Markdown: per function and metric, the network, the CT-only ceiling, perfect knowledge and seed 001."""
    metrics = ("spearman", "ssim", "dice_high", "dice_low")
    lines = [
        "| function | metric | network | ceiling, CT only (FWHM mm) | ceiling, true field (FWHM mm) "
        "| seed 001, patients |",
        "|---|---|---|---|---|---|",
    ]
    for function in FUNCTIONS:
        visible, truth = summary.get(f"{function}/ct_visible"), summary.get(f"{function}/truth")
        if visible is None or truth is None:
            continue
        for k in metrics:
            net = (network or {}).get(function, {}).get(k)
            paper = SEED_001_PATIENTS.get(function, {}).get(k)
            lines.append(
                f"| {function} | {k} | {'' if net is None else f'{net:.3f}'} "
                f"| {visible['ceiling'][k]:.3f} ({visible['ceiling_fwhm_mm'][k]:g}) "
                f"| {truth['ceiling'][k]:.3f} ({truth['ceiling_fwhm_mm'][k]:g}) | {'' if paper is None else paper} |"
            )
    lungs = next(iter(summary.values()))["lungs"] if summary else 0
    return "\n".join(lines) + f"\n\n{lungs} held-out lungs, against the simulated SPECT.\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.ceiling", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, required=True, help="the training configuration (samples and split)")
    parser.add_argument("--model", type=Path, help="an exported models/<name> folder whose test metrics to show beside")
    parser.add_argument(
        "--preset", default="training", choices=sorted(PRESETS), help="the preset the cohort was made with"
    )
    parser.add_argument(
        "--large-embolism-probability", type=float, help="as given to trainer.phantom_cohort, if it was"
    )
    parser.add_argument("--fwhm-mm", type=float, nargs="+", default=list(DEFAULT_FWHM_MM), help="system blurs to try")
    parser.add_argument("--cases", type=int, default=0, help="only the first N held-out cases (0: all)")
    parser.add_argument("--out", type=Path, help="write the table here (and the figures beside it, .json)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    config = load_config(args.config)
    spec = PRESETS[args.preset]
    if args.large_embolism_probability is not None:
        spec = replace(spec, large_embolism_probability=args.large_embolism_probability)
    paths = sorted(config.data.samples.glob("*.npz"))
    if not paths:
        parser.error(f"no samples in {config.data.samples}; make them with python -m trainer.phantom_cohort")
    cases = sorted({case_of(p) for p in paths})
    if config.data.max_cases:
        cases = cases[: config.data.max_cases]
    split = split_cases(cases, test_fraction=config.data.test_fraction, folds=config.data.folds, seed=config.optim.seed)
    test = sorted(split.test)[: args.cases or None]
    network = None
    if args.model is not None:
        if not (args.model / "metadata.json").exists():
            parser.error(f"{args.model / 'metadata.json'} does not exist; pass an exported models/<name> folder")
        split_of = {"test_fraction": config.data.test_fraction, "folds": config.data.folds, "seed": config.optim.seed}
        try:
            network = network_means(args.model / "metadata.json", split_of, len(test))
        except ValueError as error:
            parser.error(str(error))

    rows: list[dict] = []
    for case in tqdm(test, desc="held-out phantoms", unit="case"):
        stored = [load_sample(p) for p in paths if case_of(p) == case]
        rows.extend(case_rows(case, stored, spec, args.fwhm_mm))
    summary = summarise(rows)
    text = table(summary, network)
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"cases": test, "fwhm_mm": args.fwhm_mm, "summary": summary, "rows": rows}
        for path, content in ((args.out, text), (args.out.with_suffix(".json"), json.dumps(payload, indent=1))):
            partial = path.with_name(path.name + ".partial")
            partial.write_text(content)
            partial.replace(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
