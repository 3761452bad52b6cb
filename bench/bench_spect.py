"""Benchmark of :func:`core.simulation.spect.simulate_spect` on a 128^3 lung perfusion case.

Prints the median wall-clock time of three runs (target: <= 8 s on the 2-core reference
machine) for the seed-000 protocol: 60 views x 30 s, 128^3 at 4.42 mm, default OSEM.  The
object is a 340 x 240 mm elliptic thorax, 375 mm long (the extent of a 300-slice CT), with
two lungs holding 111 MBq of MAA.  ``--ct`` starts instead from a 512 x 512 x 300 CT grid
(0.7 x 0.7 x 1.25 mm), so the resampling onto the SPECT grid is timed as well.

Usage: ``python bench/bench_spect.py [--ct] [--runs N]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.geometry import Grid
from core.simulation.spect import ReconParams, SpectAcquisition, linear_attenuation_per_mm, simulate_spect


def thorax(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Activity (MBq per voxel, 111 MBq in the lungs) and mu (1/mm) of an elliptic thorax."""
    z = (grid.axis_mm("z") - grid.axis_mm("z").mean()).reshape(-1, 1, 1)
    y = (grid.axis_mm("y") - grid.axis_mm("y").mean()).reshape(1, -1, 1)
    x = (grid.axis_mm("x") - grid.axis_mm("x").mean()).reshape(1, 1, -1)
    mu_water = linear_attenuation_per_mm("water", 140.5)
    body = ((x / 170.0) ** 2 + (y / 120.0) ** 2 < 1.0) & (np.abs(z) < 187.0)
    lungs = (((np.abs(x) - 70.0) / 55.0) ** 2 + ((y + 5.0) / 80.0) ** 2 + (z / 130.0) ** 2) < 1.0
    mu = np.where(body, np.float32(mu_water), np.float32(0.0))
    mu = np.where(lungs, np.float32(0.3 * mu_water), mu).astype(np.float32)
    gradient = 1.0 + 0.004 * (y + 80.0)  # supine gravity gradient: more perfusion posteriorly
    activity = np.where(lungs, gradient, 0.0).astype(np.float32)
    activity *= np.float32(111.0 / activity.sum(dtype=np.float64))
    return activity, mu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", action="store_true", help="start from a 512x512x300 CT grid")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.ct:
        grid = Grid.centred((300, 512, 512), (1.25, 0.7, 0.7))
    else:
        grid = Grid.centred((128, 128, 128), (4.42, 4.42, 4.42))
    activity, mu = thorax(grid)
    acquisition, recon = SpectAcquisition(), ReconParams()
    wall, cpu = [], []
    for run in range(args.runs):
        t0, c0 = time.perf_counter(), time.process_time()
        result = simulate_spect(activity, mu, grid, acquisition, recon, np.random.default_rng(run))
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(
        f"simulate_spect {'CT 512x512x300' if args.ct else '128^3'} -> 128^3, {acquisition.n_views} views, "
        f"OSEM {recon.iterations}x{recon.subsets}: {result.total_counts / 1e6:.2f} Mcounts; "
        f"median of {args.runs}: {statistics.median(wall):.2f} s wall ({statistics.median(cpu):.2f} s CPU)"
    )


if __name__ == "__main__":
    main()
