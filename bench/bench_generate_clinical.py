"""Time to generate one clinical-size phantom study (target <= 60 s on the 2-core reference machine).

CT 512x512x300 at 0.8 x 0.8 x 1.25 mm plus Tc-99m MAA perfusion and Technegas ventilation SPECT
(60 views, 128^3 OSEM), all written as DICOM.  Prints the phases and the total of each run and
the median over runs.

    python bench/bench_generate_clinical.py [--runs 1] [--kind lung]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.simulation.study import PRESETS, generate_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--kind", default="lung", choices=["lung", "bone"])
    parser.add_argument("--preset", default="clinical", choices=sorted(PRESETS))
    args = parser.parse_args()
    spec = PRESETS[args.preset]
    print(f"{args.kind} study, CT {spec.ct_shape} at {spec.ct_spacing_mm} mm, SPECT {spec.recon}")
    totals = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            record = generate_study(Path(tmp) / "case", spec, seed=500 + run, kind=args.kind)
            total = time.perf_counter() - t0
        phases = ", ".join(f"{k} {v:.1f}" for k, v in record["timings"].items() if k != "total_s")
        print(f"  run {run}: {total:.1f} s ({phases})")
        totals.append(total)
    median = statistics.median(totals)
    verdict = "MET" if median <= 60 else "MISSED"
    print(f"median wall time {median:.1f} s over {len(totals)} run(s); target <= 60 s -> {verdict}")


if __name__ == "__main__":
    main()
