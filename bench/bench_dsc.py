"""DSC-MRI perfusion time on this CPU: the SVD pipeline and the stU-Net on a clinical-size DSC series.

Builds the DSC phantom's ``bench`` preset (20 slices of 128 x 128 at 1.8 x 1.8 x 5 mm, 80 frames at
1 s) in memory, then times ``--runs`` times :func:`core.perfusion.dsc.analyse_dsc` (brain mask,
baseline, Delta R2*, automatic AIF, oSVD deconvolution of every brain voxel, CBV/CBF/MTT) and, when
``models/stunet_dsc`` exists, the stU-Net's CBV (:class:`core.perfusion.stunet_model.StUNetModel`) at
the metadata's test stride and at the paper's stride 1.  Prints each wall time and the medians.

    python bench/bench_dsc.py [--runs 3] [--stride1]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.perfusion.dsc import analyse_dsc
from core.perfusion.stunet_model import StUNetModel
from core.simulation.dsc_params import DSC_PRESETS
from core.simulation.dsc_phantom import make_dsc_phantom

MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "stunet_dsc"


def _timed(label: str, runs: int, work) -> float:  # type: ignore[no-untyped-def]
    seconds = []
    for run in range(runs):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
        print(f"{label} run {run + 1}: {seconds[-1]:.2f} s")
    median = statistics.median(seconds)
    print(f"{label}: median {median:.2f} s over {runs} runs")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1301)
    parser.add_argument("--stride1", action="store_true", help="also time the stU-Net at the paper's stride 1")
    args = parser.parse_args()
    spec = DSC_PRESETS["bench"]
    started = time.perf_counter()
    phantom = make_dsc_phantom(spec, args.seed)
    print(f"phantom {spec.shape} x {spec.n_frames} frames built in {time.perf_counter() - started:.1f} s")
    result = analyse_dsc(phantom.signal, phantom.times_s, phantom.grid, spec.te_s)
    print(f"{int(result.brain_mask.sum())} brain voxels deconvolved per run")
    _timed("oSVD pipeline", args.runs, lambda: analyse_dsc(phantom.signal, phantom.times_s, phantom.grid, spec.te_s))
    if not (MODEL_DIR / "model.ts").exists():
        print(f"no model in {MODEL_DIR}: stU-Net not timed")
        return
    model = StUNetModel(MODEL_DIR)
    strides = [model.test_stride, 1] if args.stride1 and model.test_stride != 1 else [model.test_stride]
    for stride in strides:
        _timed(
            f"stU-Net CBV, stride {stride}",
            args.runs,
            lambda s=stride: model.predict(phantom.signal, phantom.times_s, result.brain_mask, test_stride=s),
        )


if __name__ == "__main__":
    main()
