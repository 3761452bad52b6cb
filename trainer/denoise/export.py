"""Export a trained denoising U2-Net as ``models/<name>/model.ts`` plus ``metadata.json``.

``python -m trainer.denoise.export --run runs/u2net_spect --out models/u2net_spect_bone``

The metadata is the model's contract with the application (checked by
:class:`core.nm.denoising_model.DenoisingModel`): the input channels and how they are made
(:mod:`core.nm.denoising`), the acquisition it was trained for, the held-out metrics of
``<run>/evaluation.json`` (from :mod:`trainer.denoise.evaluate`) and the synthetic-data notice.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import torch

from core.nm.denoising import BODY_HU, CT_OFFSET_HU, SIZE_MULTIPLE
from core.nm.denoising_model import DENOISING_METADATA_VERSION
from trainer.denoise.config import config_from_dict
from trainer.denoise.train import load_trained
from trainer.export import SYNTHETIC_NOTICE, display_path, script_module, write_model_folder


def export(run: Path, out_dir: Path, *, name: str, version: str) -> Path:
    """Script the run's model and write it with its metadata into ``out_dir`` (replaced atomically)."""
    config = config_from_dict(json.loads((run / "config.json").read_text()))
    model = load_trained(config, run)
    scripted = script_module(model)
    evaluation = json.loads((run / "evaluation.json").read_text()) if (run / "evaluation.json").exists() else {}
    split = json.loads((run / "split.json").read_text())
    over = "" if config.model.normalisation == "volume" else f" over the body (CT > {BODY_HU:g} HU)"
    channels = [f"fast_spect / mean(fast_spect){over}"]
    if config.model.use_ct:
        channels.append(f"max(CT_HU + {CT_OFFSET_HU:g}, 0) / its mean{over}, CT resampled onto the SPECT grid")
    metadata = {
        "metadata_version": DENOISING_METADATA_VERSION,
        "name": name,
        "version": version,
        "task": "denoise fast (1/7-time) Tc-99m bone SPECT, slice by slice (seed 003)",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "network": {"kind": "u2net", **asdict(config.model)},
        "input": {
            "shape": ["B", len(channels), "H", "W"],
            "size_multiple": SIZE_MULTIPLE,
            "dtype": "float32",
            "channels": channels,
            "uses_ct": config.model.use_ct,
            "preprocessing": "core.nm.denoising.network_inputs",
            "normalisation": config.model.normalisation,
        },
        "output": {
            "index": 0,
            "shape": ["B", 1, "H", "W"],
            "meaning": "standard-time SPECT divided by its mean; times mean(fast_spect) gives counts",
        },
        "acquisition": {
            "radiopharmaceutical": "Tc-99m MDP",
            "views": 60,
            "fast_time_per_view_s": 3.0,
            "standard_time_per_view_s": 20.0,
            "reconstruction": "OSEM 4 iterations x 10 subsets, no post-filter, 128x128 at 4.42 mm",
        },
        "trained_on": {
            "data": "digital bone phantoms (python -m core.simulation --kind bone --preset sample)",
            "studies": display_path(config.data.studies),
            "train_cases": split["train"],
            "test_cases": split["test"],
        },
        "training": json.loads(json.dumps(asdict(config), default=str)) | {"data": {}},
        "test_metrics": evaluation.get("summary", {}),
        "nema": [
            {"study": s["study"], "detected": {k: v["detected"] for k, v in s["images"].items()}}
            for s in evaluation.get("nema", [])
        ],
        "notice": SYNTHETIC_NOTICE,
    }
    report = [run / file for file in ("evaluation.md", "evaluation.json", "split.json") if (run / file).exists()]
    return write_model_folder(out_dir, scripted, metadata, report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.denoise.export", description=__doc__)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", default="u2net_spect_bone")
    parser.add_argument("--version", default="1.0.0")
    args = parser.parse_args(argv)
    print(export(args.run, args.out, name=args.name, version=args.version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
