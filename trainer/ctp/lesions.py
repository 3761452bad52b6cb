"""Core and hypoperfusion volumes on CTP phantoms against their truth, per smoothing and method.

``python -m trainer.ctp.lesions --seeds 1200,1203-1207 [--smoothing guided gaussian] [--out runs/ctp_lesions]``

Every seed is a brain CTP phantom of the ``sample`` preset (128 x 128 x 8 at 1.8 x 1.8 x 5 mm, 40 frames
at 1.5 s, 7 HU noise; the bundled sample is seed 1200).  For every smoothing it runs the app's analysis
(:func:`core.perfusion.ctp.analyse_ctp`, default settings otherwise) and reports the core and
hypoperfusion volumes, their relative error against the phantom's true lesions, the lesions' Dice and
the reference CBF the core is relative to.  Medians over the seeds close the table.

The guided filter's radius and eps were chosen on seeds 1300-1305; the evaluation seeds are others.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, cast

import numpy as np

from core.metrics import dice
from core.perfusion.ctp import CTP_METHODS, SMOOTHINGS, CtpMethod, CtpSettings, Smoothing, analyse_ctp
from core.simulation.ctp_params import CTP_PRESETS
from core.simulation.ctp_phantom import make_ctp_phantom

logger = logging.getLogger(__name__)


def parse_seeds(text: str) -> list[int]:
    """``"1200,1203-1205"`` -> ``[1200, 1203, 1204, 1205]``."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    if not seeds:
        raise ValueError(f"no seeds in {text!r}")
    return seeds


def lesion_rows(seeds: list[int], smoothings: list[Smoothing], method: CtpMethod = "osvd") -> list[dict[str, Any]]:
    """One row per seed and smoothing: volumes (ml), relative errors, Dice and reference CBF."""
    rows = []
    spec = CTP_PRESETS["sample"]
    for seed in seeds:
        phantom = make_ctp_phantom(spec, seed)
        voxel_ml = phantom.grid.voxel_volume_ml
        truth = phantom.lesions.volumes_ml(voxel_ml)
        for smoothing in smoothings:
            settings = CtpSettings(method=method, smoothing=smoothing)
            result = analyse_ctp(phantom.hu, phantom.times_s, phantom.grid, settings)
            found = result.lesions.volumes_ml(voxel_ml)
            rows.append(
                {
                    "seed": seed,
                    "smoothing": smoothing,
                    "core_ml": found["core_ml"],
                    "true_core_ml": truth["core_ml"],
                    "core_error": found["core_ml"] / truth["core_ml"] - 1.0,
                    "core_dice": dice(result.lesions.core, phantom.lesions.core),
                    "hypoperfusion_ml": found["hypoperfusion_ml"],
                    "true_hypoperfusion_ml": truth["hypoperfusion_ml"],
                    "hypoperfusion_error": found["hypoperfusion_ml"] / truth["hypoperfusion_ml"] - 1.0,
                    "hypoperfusion_dice": dice(result.lesions.hypoperfusion, phantom.lesions.hypoperfusion),
                    "reference_cbf": result.lesions.reference_cbf_ml_100g_min,
                    "true_reference_cbf": phantom.lesions.reference_cbf_ml_100g_min,
                }
            )
            logger.info("seed %d, %s: core %+.0f %%", seed, smoothing, 100 * (found["core_ml"] / truth["core_ml"] - 1))
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table, then the medians per smoothing."""
    lines = [
        "| seed | smoothing | core ml (true) | core error | core Dice | hypoperfusion ml (true) | hypo error "
        "| hypo Dice | reference CBF (true) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['smoothing']} | {r['core_ml']:.1f} ({r['true_core_ml']:.1f}) | "
            f"{100 * r['core_error']:+.0f} % | {r['core_dice']:.2f} | {r['hypoperfusion_ml']:.1f} "
            f"({r['true_hypoperfusion_ml']:.1f}) | {100 * r['hypoperfusion_error']:+.0f} % | "
            f"{r['hypoperfusion_dice']:.2f} | {r['reference_cbf']:.1f} ({r['true_reference_cbf']:.1f}) |"
        )
    for smoothing in dict.fromkeys(r["smoothing"] for r in rows):
        mine = [r for r in rows if r["smoothing"] == smoothing]

        def median(key: str, rows: list[dict[str, Any]] = mine) -> float:
            return float(np.median([r[key] for r in rows]))

        lines.append(
            f"| median of {len(mine)} | {smoothing} | | {100 * median('core_error'):+.0f} % | "
            f"{median('core_dice'):.2f} | | {100 * median('hypoperfusion_error'):+.0f} % | "
            f"{median('hypoperfusion_dice'):.2f} | |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.ctp.lesions", description=__doc__)
    parser.add_argument("--seeds", default="1200,1203-1207", help="phantom seeds, e.g. 1200,1203-1207")
    parser.add_argument("--smoothing", nargs="+", choices=SMOOTHINGS, default=["guided", "gaussian"])
    parser.add_argument("--method", choices=[m for m in CTP_METHODS if m != "network"], default="osvd")
    parser.add_argument("--out", type=Path, help="folder for lesions.json and lesions.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rows = lesion_rows(parse_seeds(args.seeds), cast(list[Smoothing], args.smoothing), cast(CtpMethod, args.method))
    table = markdown(rows)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "lesions.json").write_text(json.dumps(rows, indent=2))
        (args.out / "lesions.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
