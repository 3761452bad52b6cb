"""oSVD CT perfusion analysis time for a 256 x 256 x 16-slice x 60-frame CTP on this CPU (target <= 10 s).

Builds the brain CTP phantom's ``bench`` preset (256 x 256 x 16 at 0.9 x 0.9 x 5 mm, 60 frames at 1 s)
in memory, then times :func:`core.perfusion.ctp.analyse_ctp` (brain mask, baseline, AIF/VOF,
smoothing, oSVD deconvolution of every parenchyma voxel, maps and lesions) ``--runs`` times and prints
each wall time, the median, the deconvolution part and the voxel count, and the lesion volumes next
to the phantom's truth.

    python bench/bench_ctp_osvd.py [--runs 3] [--method osvd]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.perfusion.ctp import CTP_METHODS, CtpSettings, analyse_ctp
from core.simulation.ctp_params import CTP_PRESETS
from core.simulation.ctp_phantom import make_ctp_phantom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--method", choices=[m for m in CTP_METHODS if m != "network"], default="osvd")
    parser.add_argument("--seed", type=int, default=1201)
    args = parser.parse_args()
    started = time.perf_counter()
    phantom = make_ctp_phantom(CTP_PRESETS["bench"], args.seed)
    n_frames, *shape = phantom.hu.shape
    print(f"phantom {shape} x {n_frames} frames built in {time.perf_counter() - started:.1f} s")
    totals, deconvolution = [], []
    for run in range(args.runs):
        result = analyse_ctp(phantom.hu, phantom.times_s, phantom.grid, CtpSettings(method=args.method))
        totals.append(result.seconds["total_s"])
        deconvolution.append(result.seconds["deconvolve_s"])
        print(
            f"run {run + 1}: {result.seconds['total_s']:.2f} s total, {result.seconds['deconvolve_s']:.2f} s "
            f"deconvolution of {int(result.tissue_mask.sum())} voxels"
        )
    volumes = result.lesions.volumes_ml(phantom.grid.voxel_volume_ml)
    truth = phantom.volumes_ml()
    print(
        f"{args.method}: median {statistics.median(totals):.2f} s total "
        f"({statistics.median(deconvolution):.2f} s deconvolution) over {args.runs} runs; target <= 10 s"
    )
    print(
        f"core {volumes['core_ml']:.1f} ml (truth {truth['core_ml']:.1f}), hypoperfusion "
        f"{volumes['hypoperfusion_ml']:.1f} ml (truth {truth['hypoperfusion_ml']:.1f})"
    )


if __name__ == "__main__":
    main()
