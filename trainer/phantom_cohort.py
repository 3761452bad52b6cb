"""Training samples from digital phantoms: ``python -m trainer.phantom_cohort --out DIR --cases N``.

Each case is a thorax phantom (``training`` preset: 256x256x128 CT) with simulated Tc-99m MAA
perfusion and Technegas ventilation SPECT (60 views x 30 s, OSEM onto 128^3 at 4.42 mm), turned
into two per-lung samples by :func:`trainer.data.samples_from_volumes`; the phantom's true
function fields go along for evaluation.  Existing samples are kept, so a run can be resumed.
"""

from __future__ import annotations

import argparse
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.geometry import Grid
from core.simulation.spect import hu_to_mu_per_mm, simulate_spect
from core.simulation.study import PRESETS, StudySpec, spect_acquisitions
from core.simulation.thorax import make_thorax_phantom
from core.simulation.tracers import mu_source_hu
from trainer.data import LungSample, samples_from_volumes, save_sample

logger = logging.getLogger(__name__)


def phantom_case_samples(seed: int, spec: StudySpec) -> list[LungSample]:
    """Simulate one lung study (CT, perfusion and ventilation SPECT) and cut it into per-lung samples."""
    grid = Grid.centred(spec.ct_shape, spec.ct_spacing_mm)
    phantom = make_thorax_phantom(
        grid, seed, ct_noise_hu=spec.ct_noise_hu, large_embolism_probability=spec.large_embolism_probability
    )
    rng = np.random.default_rng([seed, 7])
    mu = hu_to_mu_per_mm(mu_source_hu(phantom))
    spects = {}
    for name, activity, acquisition, _ in spect_acquisitions(phantom, spec, "lung", rng, {}):
        result = simulate_spect(activity, mu, phantom.function_grid, acquisition, spec.recon, rng)
        spects[name] = (result.recon, result.spect_grid)
    truths = {
        "perfusion": (phantom.perfusion, phantom.function_grid),
        "ventilation": (phantom.ventilation, phantom.function_grid),
    }
    return samples_from_volumes(f"phantom{seed:05d}", phantom.hu.astype(np.float32), grid, spects, truths)


def _write_case(seed: int, out: Path, spec: StudySpec) -> int:
    """Simulate and save one case unless its samples exist; returns the seed."""
    if not list(out.glob(f"phantom{seed:05d}_*.npz")):
        for sample in phantom_case_samples(seed, spec):
            save_sample(out, sample)
    return seed


def build_cohort(out: Path, seeds: range, spec: StudySpec, *, workers: int = 1) -> list[Path]:
    """Write the samples of every seed into ``out`` (skipping cases already there); returns all sample paths.

    ``workers`` > 1 simulates cases in that many processes; each case depends on its seed only,
    so the samples are the same for any number of workers.
    """
    out.mkdir(parents=True, exist_ok=True)
    job = partial(_write_case, out=out, spec=spec)
    if workers <= 1:
        for seed in tqdm(seeds, unit="case", desc="phantom cohort"):
            job(seed)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for _ in tqdm(pool.map(job, seeds), total=len(seeds), unit="case", desc="phantom cohort"):
                pass
    return sorted(out.glob("phantom*.npz"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.phantom_cohort", description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=10000)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="training")
    parser.add_argument("--workers", type=int, default=1, help="cases simulated in parallel (processes)")
    parser.add_argument(
        "--large-embolism-probability",
        type=float,
        default=None,
        help="share of cases with an extra lobar-size embolus (default: the preset's, 0 for training)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    seeds = range(args.first_seed, args.first_seed + args.cases)
    spec = PRESETS[args.preset]
    if args.large_embolism_probability is not None:
        spec = replace(spec, large_embolism_probability=args.large_embolism_probability)
    paths = build_cohort(args.out, seeds, spec, workers=args.workers)
    print(f"{len(paths)} samples in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
