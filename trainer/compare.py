"""DDRAN against the single-decoder ARNN (seed 001's DDRAN vs RAN comparison), in one table.

    python -m trainer.compare --ddran runs/ddran_lung/final \\
        --arnn runs/arnn_perfusion/final runs/arnn_ventilation/final --out runs/comparison.md

Reads the ``metrics.json`` that ``trainer.train`` writes for each run (same split, same test
lungs) and prints, per function and reference (SPECT, phantom truth), the mean +- sd of every
metric for DDRAN, ARNN and the HU baseline.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.metrics import METRIC_KEYS


def _summary(run: Path) -> dict:
    path = run / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run python -m trainer.train --stage final first")
    return json.loads(path.read_text())["summary"]


def comparison_table(ddran: Path, arnns: list[Path]) -> str:
    """Markdown table: DDRAN, ARNN (the run that predicts that function) and the HU baseline."""
    ddran_summary = _summary(ddran)
    arnn_summary: dict = {}
    for run in arnns:
        arnn_summary.update(_summary(run))
    lines = [
        "| function | reference | method | n | " + " | ".join(METRIC_KEYS) + " |",
        "|---|---|---|---|" + "---|" * len(METRIC_KEYS),
    ]
    for function in ("perfusion", "ventilation"):
        for reference in ("spect", "truth"):
            entries = (
                ("DDRAN", ddran_summary.get(f"{function}/network/{reference}")),
                ("ARNN", arnn_summary.get(f"{function}/network/{reference}")),
                ("HU baseline", ddran_summary.get(f"{function}/hu_baseline/{reference}")),
            )
            for method, metrics in entries:
                if metrics is None:
                    continue
                n = next(iter(metrics.values()))["n"]
                cells = " | ".join(f"{metrics[k]['mean']:.3f} +- {metrics[k]['sd']:.3f}" for k in METRIC_KEYS)
                lines.append(f"| {function} | {reference} | {method} | {n} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.compare", description=__doc__)
    parser.add_argument("--ddran", type=Path, required=True, help="final run folder of the DDRAN")
    parser.add_argument("--arnn", type=Path, nargs="+", required=True, help="final run folders of the ARNNs")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    text = comparison_table(args.ddran, args.arnn)
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
