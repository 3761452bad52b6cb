"""Generate phantom studies: ``python -m core.simulation --out DIR --cases N [--preset P] [--kind K]``.

Kinds ``lung``, ``bone`` and ``nema`` take the thorax presets (default ``training``); kind ``ctp``
(brain CT perfusion) takes the CTP presets ``sample`` and ``bench``, kind ``dsc`` (brain-tumour
DSC-MRI perfusion) the DSC presets ``sample``, ``training`` and ``bench`` (both default ``sample``).

Each case goes to ``DIR/case_<seed>/`` (DICOM in ``dicom/``, ground truth in ``ground_truth/``);
existing cases are skipped, so an interrupted run can simply be started again.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Mapping
from pathlib import Path

from tqdm import tqdm

from core.simulation.ctp_params import CTP_PRESETS
from core.simulation.ctp_study import CTP_KIND, generate_ctp_study
from core.simulation.dsc_params import DSC_PRESETS
from core.simulation.dsc_study import DSC_KIND, generate_dsc_study
from core.simulation.study import PRESETS, STUDY_KINDS, generate_study

DEFAULT_PRESETS = {CTP_KIND: "sample", DSC_KIND: "sample"}
"""Default preset per kind; the others default to ``training``."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.simulation", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder receiving one sub-folder per case")
    parser.add_argument("--cases", type=int, default=1, help="number of cases (default 1)")
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first case (default 0)")
    parser.add_argument(
        "--preset",
        choices=sorted(set(PRESETS) | set(CTP_PRESETS) | set(DSC_PRESETS)),
        default=None,
        help="image size (default training; sample for ctp and dsc)",
    )
    parser.add_argument(
        "--kind",
        choices=(*STUDY_KINDS, CTP_KIND, DSC_KIND),
        default="lung",
        help="lung: CT+Q+V SPECT; bone: CT+MDP SPECT; lung_bone: CT+Q+V+1/7-time MDP SPECT; nema: NEMA IEC "
        "phantom; ctp: brain CT perfusion; "
        "dsc: brain-tumour DSC-MRI perfusion",
    )
    parser.add_argument(
        "--soft-tissue-lesions",
        type=int,
        default=0,
        help="bone studies: up to N extra-osseous hot lesions the CT does not show (default 0)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.cases < 1:
        parser.error("--cases must be at least 1")
    preset = args.preset or DEFAULT_PRESETS.get(args.kind, "training")
    kind_presets: dict[str, Mapping[str, object]] = {CTP_KIND: CTP_PRESETS, DSC_KIND: DSC_PRESETS}
    presets = kind_presets.get(args.kind, PRESETS)
    if preset not in presets:
        parser.error(f"--preset {preset} does not apply to --kind {args.kind}; choose one of {sorted(presets)}")
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = range(args.first_seed, args.first_seed + args.cases)
    with tqdm(seeds, unit="case", desc=f"{args.kind} {preset}") as bar:
        for seed in bar:
            target = args.out / f"case_{seed:05d}"
            if target.exists():
                continue
            if args.kind == CTP_KIND:
                generate_ctp_study(target, CTP_PRESETS[preset], seed, progress=bar.set_postfix_str)
                continue
            if args.kind == DSC_KIND:
                generate_dsc_study(target, DSC_PRESETS[preset], seed, progress=bar.set_postfix_str)
                continue
            spec = dataclasses.replace(PRESETS[preset], bone_soft_tissue_lesions=args.soft_tissue_lesions)
            generate_study(target, spec, seed, kind=args.kind, progress=bar.set_postfix_str)
    print(f"{args.cases} case(s) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
