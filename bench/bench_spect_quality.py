"""Figures of merit of the simulated SPECT on the thorax and NEMA phantoms (printed, not asserted).

- lung perfusion (MAA): total counts, Pearson r of the OSEM image against the true activity
  blurred by the system resolution (LEHR FWHM at 150 mm), inside the lungs;
- bone (MDP) and NEMA IEC: coefficient of variation in a uniform region at 20 s/view and
  3 s/view, and their ratio (the 1/7-time penalty, ~sqrt(20/3) = 2.6 for pure Poisson).

    python bench/bench_spect_quality.py [--cases 3]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.geometry import Grid
from core.simulation.nema import nema_iec_body_phantom
from core.simulation.spect import (
    GE_DISCOVERY_670_LEHR,
    ReconParams,
    SpectAcquisition,
    hu_to_mu_per_mm,
    simulate_spect,
)
from core.simulation.study import PRESETS
from core.simulation.thorax import make_thorax_phantom
from core.simulation.tracers import bone_activity, mu_source_hu, perfusion_activity


def uniform_cov(recon: np.ndarray, truth: np.ndarray) -> float:
    """CoV of the reconstruction where the truth is within 10 % of its median non-zero level, eroded twice."""
    level = np.median(truth[truth > 0])
    region = ndimage.binary_erosion(np.abs(truth - level) < 0.1 * level, iterations=2)
    values = recon[region]
    return float(values.std() / values.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=3)
    args = parser.parse_args()
    spec = PRESETS["sample"]
    grid = Grid.centred(spec.ct_shape, spec.ct_spacing_mm)
    recon = ReconParams()
    sigma_mm = float(GE_DISCOVERY_670_LEHR.sigma_mm(150.0))
    for seed in range(300, 300 + args.cases):
        rng = np.random.default_rng(seed)
        phantom = make_thorax_phantom(grid, seed)
        mu = hu_to_mu_per_mm(mu_source_hu(phantom))
        q = simulate_spect(perfusion_activity(phantom), mu, phantom.function_grid, SpectAcquisition(), recon, rng)
        blurred = ndimage.gaussian_filter(q.activity_on_spect_grid, [sigma_mm / s for s in q.spect_grid.spacing_mm])
        lungs = blurred > 0.2 * blurred.max()
        r = np.corrcoef(q.recon[lungs], blurred[lungs])[0, 1]
        bone = bone_activity(phantom, rng, n_lesions=3)
        cov = {}
        for seconds in (20.0, 3.0):
            b = simulate_spect(
                bone.activity_mbq, mu, phantom.function_grid, SpectAcquisition(time_per_view_s=seconds), recon, rng
            )
            cov[seconds] = uniform_cov(b.recon, b.activity_on_spect_grid)
        print(
            f"thorax seed {seed}: perfusion {q.total_counts / 1e6:.2f} Mcounts, Pearson r {r:.3f}; "
            f"bone CoV 20 s {cov[20.0]:.3f}, 3 s {cov[3.0]:.3f}, ratio {cov[3.0] / cov[20.0]:.2f}"
        )
    nema = nema_iec_body_phantom(grid)
    cov = {}
    for seconds in (20.0, 3.0):
        n = simulate_spect(
            nema.activity_mbq(),
            nema.mu_per_mm,
            grid,
            SpectAcquisition(time_per_view_s=seconds),
            recon,
            np.random.default_rng(1),
        )
        cov[seconds] = uniform_cov(n.recon, n.activity_on_spect_grid)
    print(f"NEMA IEC: CoV 20 s {cov[20.0]:.3f}, 3 s {cov[3.0]:.3f}, ratio {cov[3.0] / cov[20.0]:.2f}")


if __name__ == "__main__":
    main()
