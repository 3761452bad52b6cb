"""Lung segmentation time on a clinical-size CT (target <= 3 s on the 2-core reference machine).

A 512x512x300 phantom CT (0.8 x 0.8 x 1.25 mm) is segmented ``--runs`` times; prints each wall
time, the median and the Dice of each lung against the phantom truth.

    python bench/bench_lung_segmentation.py [--runs 5]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.geometry import Grid
from core.labels import LungLabel
from core.lung.segmentation import segment_lungs
from core.orientation import grid_affine_lps
from core.simulation.study import PRESETS
from core.simulation.thorax import make_thorax_phantom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=500)
    args = parser.parse_args()
    spec = PRESETS["clinical"]
    grid = Grid.centred(spec.ct_shape, spec.ct_spacing_mm)
    phantom = make_thorax_phantom(grid, args.seed, ct_noise_hu=spec.ct_noise_hu)
    kinds = ",".join(p.kind for p in phantom.pathologies) or "healthy"
    print(f"CT {grid.shape} at {grid.spacing_mm} mm, phantom seed {args.seed} ({kinds})")
    times = []
    for run in range(args.runs):
        start = time.perf_counter()
        mask = segment_lungs(phantom.hu, grid_affine_lps(grid))
        times.append(time.perf_counter() - start)
        print(f"  run {run}: {times[-1]:.2f} s")
    dice = [
        2.0
        * float(((mask == s) & (phantom.lung_mask == s)).sum())
        / float((mask == s).sum() + (phantom.lung_mask == s).sum())
        for s in (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG)
    ]
    median = statistics.median(times)
    verdict = "MET" if median <= 3.0 else "MISSED"
    print(f"median {median:.2f} s over {len(times)} runs (target <= 3 s -> {verdict})")
    print(f"Dice right {dice[0]:.4f}, left {dice[1]:.4f}")


if __name__ == "__main__":
    main()
