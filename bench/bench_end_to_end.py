"""The whole app on a clinical-size study: wall time, peak memory, per-operator breakdown, read floor.

The study is the phantom generator's ``clinical`` preset of kind ``lung_bone``: a 512 x 512 x 300
chest CT at 0.8 x 0.8 x 1.25 mm plus Tc-99m MAA perfusion, Technegas ventilation and 1/7-time bone
SPECT (128^3 at 4.42 mm), all in one study and one Frame of Reference.  It is generated once into
``output/bench_study`` (about three minutes) and reused.

Each run starts ``python -m app`` in a fresh process, as a site would, and reads from it:

* wall time of the whole process and its peak resident memory (``ru_maxrss`` of the child);
* from ``run_record.json``: the time before the first operator started (the framework's start-up:
  Holoscan, the SDK, the graph), each operator's time, the rest of the process's wall time
  (interpreter start, imports, tear-down), and the memory peak when each operator ended;

and, in the same run of this script, the *read floor*: the time to read every file of the study
with pydicom and decode all its pixel data, which no pipeline can beat.  Targets on the 2-core
reference machine: <= 20 s end to end, at most 2.5 x the read floor plus the start-up, peak
memory <= 4 GB.  Prints every run and the medians.

    python bench/bench_end_to_end.py [--runs 3] [--study DIR]
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pydicom

from core.simulation.study import PRESETS, generate_study

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STUDY = ROOT / "output" / "bench_study"
SEED = 900
TARGET_WALL_S = 20.0
TARGET_FLOOR_RATIO = 2.5
TARGET_PEAK_GB = 4.0

# Runs the app as a grandchild and reports its wall time and peak RSS (kB), so that each run is
# measured on its own: RUSAGE_CHILDREN covers only the processes this small wrapper waited for.
_MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wall = time.perf_counter() - started
print(json.dumps({"rc": code, "wall_s": wall, "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def ensure_study(study: Path) -> Path:
    """The study's DICOM folder, generated first when ``study`` does not exist yet."""
    if not study.exists():
        print(f"generating the clinical lung_bone study into {study} (seed {SEED}) ...", flush=True)
        started = time.perf_counter()
        generate_study(study, PRESETS["clinical"], seed=SEED, kind="lung_bone")
        print(f"  generated in {time.perf_counter() - started:.1f} s")
    dicom = study / "dicom"
    if not dicom.is_dir():
        raise SystemExit(f"{study} has no dicom/ folder; remove it to have it generated again")
    return dicom


def read_floor_s(dicom: Path) -> tuple[float, int, int]:
    """Seconds to read every file with pydicom and decode its pixel data; files and bytes decoded."""
    started = time.perf_counter()
    files = 0
    decoded = 0
    for path in sorted(dicom.iterdir()):
        dataset = pydicom.dcmread(path)
        decoded += dataset.pixel_array.nbytes
        files += 1
    return time.perf_counter() - started, files, decoded


def run_app(dicom: Path, out: Path) -> dict:
    """One app run in a fresh process: its measurements and the run record."""
    app = [sys.executable, "-m", "app", "-i", str(dicom), "-o", str(out), "-l", "WARNING"]
    done = subprocess.run([sys.executable, "-c", _MEASURE, *app], cwd=ROOT, capture_output=True, text=True, check=True)
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    if measured["rc"] != 0:
        raise SystemExit(f"the app exited with {measured['rc']}; run it by hand to see why: {' '.join(app)}")
    record = json.loads((out / "run_record.json").read_text())
    return {**measured, "record": record}


def summarise(run: dict) -> dict[str, float]:
    timings = run["record"]["timings_s"]
    operators = sum(timings["operators"].values())
    return {
        "wall_s": run["wall_s"],
        "peak_gb": run["maxrss_kb"] / 1024**2,
        "startup_s": timings["before_first_operator"],
        "operators_s": operators,
        "outside_record_s": run["wall_s"] - timings["total_wall"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--study", type=Path, default=DEFAULT_STUDY, help="study folder (generated if absent)")
    args = parser.parse_args()
    dicom = ensure_study(args.study)
    read_floor_s(dicom)  # warm the page cache, as the app's runs will find it
    runs, floors = [], []
    with tempfile.TemporaryDirectory(dir=ROOT / "output") as tmp:
        for index in range(args.runs):
            floor, files, decoded = read_floor_s(dicom)
            floors.append(floor)
            out = Path(tmp) / f"run{index}"
            run = run_app(dicom, out)
            runs.append(run)
            shutil.rmtree(out)
            row = summarise(run)
            print(
                f"run {index + 1}: wall {row['wall_s']:.2f} s, peak {row['peak_gb']:.2f} GB, framework start-up "
                f"{row['startup_s']:.2f} s, operators {row['operators_s']:.2f} s, interpreter/imports/tear-down "
                f"{row['outside_record_s']:.2f} s; read floor {floor:.2f} s ({files} files, {decoded / 1e6:.0f} MB)"
            )
    rows = [summarise(run) for run in runs]
    median = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
    floor = statistics.median(floors)
    print(f"\nmedians over {args.runs} runs:")
    names = runs[0]["record"]["timings_s"]["operators"]
    for name in sorted(names, key=lambda n: -names[n]):
        seconds = statistics.median(run["record"]["timings_s"]["operators"].get(name, 0.0) for run in runs)
        print(f"  {name:<36} {seconds:7.2f} s  {100 * seconds / median['wall_s']:5.1f} %")
    after = runs[0]["record"]["peak_memory_mib"]["after_operator"]
    raised = [f"{name} {mib} MiB" for name, mib in after.items()]
    print(f"  process peak (MiB) when each operator ended, run 1: {', '.join(raised)}")
    startup = median["startup_s"] + median["outside_record_s"]
    print(f"  {'start-up and tear-down (all)':<36} {startup:7.2f} s  {100 * startup / median['wall_s']:5.1f} %")
    limit = TARGET_FLOOR_RATIO * floor + startup
    checks = [
        (f"wall {median['wall_s']:.2f} s <= {TARGET_WALL_S:g} s", median["wall_s"] <= TARGET_WALL_S),
        (
            f"wall {median['wall_s']:.2f} s <= {TARGET_FLOOR_RATIO:g} x read floor {floor:.2f} s + start-up "
            f"{startup:.2f} s = {limit:.2f} s (ratio {(median['wall_s'] - startup) / floor:.2f})",
            median["wall_s"] <= limit,
        ),
        (f"peak memory {median['peak_gb']:.2f} GB <= {TARGET_PEAK_GB:g} GB", median["peak_gb"] <= TARGET_PEAK_GB),
    ]
    for text, met in checks:
        print(f"{text} -> {'MET' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
