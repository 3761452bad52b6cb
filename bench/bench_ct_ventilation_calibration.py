"""How much of the phantom's ventilation a classical HU-based CT surrogate reveals.

Prints the voxel-wise Spearman R between ``F(1-F)`` (F = air fraction from HU) and the true
ventilation for a cohort of phantoms, per case and its mean/median.  Target: 0.3-0.6 (the
clinical range of CT ventilation vs nuclear-medicine ventilation, VAMPIRE challenge).

    python bench/bench_ct_ventilation_calibration.py [--cases 20] [--preset training]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.geometry import Grid
from core.simulation.calibration import ct_ventilation_spearman
from core.simulation.study import PRESETS
from core.simulation.thorax import make_thorax_phantom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--preset", default="training", choices=sorted(PRESETS))
    args = parser.parse_args()
    spec = PRESETS[args.preset]
    grid = Grid.centred(spec.ct_shape, spec.ct_spacing_mm)
    print(f"CT grid {grid.shape} at {grid.spacing_mm} mm, {args.cases} phantoms (seeds 1000..)")
    values = []
    t0 = time.perf_counter()
    for seed in range(1000, 1000 + args.cases):
        phantom = make_thorax_phantom(grid, seed, ct_noise_hu=spec.ct_noise_hu)
        r = ct_ventilation_spearman(phantom)
        values.append(r)
        kinds = ",".join(p.kind for p in phantom.pathologies) or "healthy"
        print(f"  seed {seed}: Spearman R = {r:.3f}  ({kinds})")
    arr = np.asarray(values)
    print(
        f"Spearman R over {arr.size} phantoms: mean {arr.mean():.3f}, median {np.median(arr):.3f}, "
        f"range {arr.min():.3f}..{arr.max():.3f}; target 0.3-0.6 -> "
        f"{'IN RANGE' if 0.3 <= np.median(arr) <= 0.6 else 'OUT OF RANGE'} ({time.perf_counter() - t0:.0f} s)"
    )


if __name__ == "__main__":
    main()
