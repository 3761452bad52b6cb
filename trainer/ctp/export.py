"""Export a trained CTP Transformer as ``models/<name>/model.ts`` plus ``metadata.json``.

``python -m trainer.ctp.export --run runs/ctp_transformer --out models/ctp_transformer``

The metadata is the model's contract with the application (checked by
:class:`core.perfusion.transformer_model.CtpTransformerModel`): the network's arguments and outputs
with their units, the normalisation it does itself, ``kappa``, the curve lengths and time steps it
was trained on, the training (curves, epochs, loss weights, history) and the validation metrics of
the last epoch.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from core.perfusion.datasets import TRAINING_RANGES
from core.perfusion.simulation import KAPPA
from core.perfusion.transformer_model import CTP_INPUTS, CTP_METADATA_VERSION, CTP_OUTPUTS, CTP_UNITS
from trainer.ctp.config import CtpConfig, ctp_config_from_dict
from trainer.ctp.losses import TERMS
from trainer.ctp.train import load_trained
from trainer.export import SYNTHETIC_NOTICE, display_path, script_module, write_model_folder


def ctp_metadata(config: CtpConfig, state: dict[str, Any], *, name: str, version: str) -> dict[str, Any]:
    """The ``metadata.json`` of a run whose checkpoint is ``state``."""
    history = state["history"]
    last = history[-1] if history else {}
    n_val = round(config.data.val_fraction * config.data.curves)
    return {
        "metadata_version": CTP_METADATA_VERSION,
        "name": name,
        "version": version,
        "task": "CT perfusion: tissue curve + global AIF -> local AIF, flow-scaled residue, BAD (seed 002)",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "network": {"kind": "ctp_transformer", **asdict(config.model)},
        "input": {
            "arguments": CTP_INPUTS,
            "shape": {"tissue": ["B", "N"], "global_aif": ["B", "N"], "t_s": ["B", "N"], "lengths": ["B"]},
            "dtype": {"tissue": "float32", "global_aif": "float32", "t_s": "float32", "lengths": "int64"},
            "units": {"tissue": "AIF unit (baseline-subtracted)", "global_aif": "AIF unit", "t_s": "s"},
            "padding": "curves shorter than N are zero-padded after lengths[b] and masked",
            "normalisation": "inside the network: tissue and AIF divided by the per-curve maximum of the global AIF",
            "frames": list(TRAINING_RANGES["n_frames"]),
            "dt_s": list(TRAINING_RANGES["dt_s"]),
        },
        "output": {
            "names": CTP_OUTPUTS,
            "units": CTP_UNITS,
            "shape": {"local_aif": ["B", "N"], "residue": ["B", "N"], "bad": ["B"]},
            "meaning": "residue is sorted descending, so CBF = residue[:, 0]; bad is the delay of the local "
            "AIF after the global AIF",
        },
        "kappa": KAPPA,
        "trained_on": {
            "data": "simulated curves (core.perfusion.datasets.training_parameters + simulate_curves), seed 002 "
            "section 2.3",
            "curves": config.data.curves,
            "train_curves": config.data.curves - n_val,
            "val_curves": n_val,
            "seed": config.data.seed,
            "cache": display_path(config.data.cache),
        },
        "training": {
            "config": json.loads(json.dumps(asdict(config), default=str)),
            "epochs": len(history),
            "lambdas": dict(zip(TERMS[1:], state["loss"]["lambdas"].tolist(), strict=True)),
            "calibration_raw_terms": state["calibration"],
            "history": history,
        },
        "val_metrics": {
            "loss": last.get("val_loss"),
            "cbf_rmse_ml_100g_min": last.get("val_cbf_rmse_ml_100g_min"),
            "bad_rmse_s": last.get("val_bad_rmse_s"),
        },
        "notice": SYNTHETIC_NOTICE.replace("digital phantoms", "simulated curves"),
    }


def export(run: Path, out_dir: Path, *, name: str, version: str) -> Path:
    """Script the run's network and write it with its metadata into ``out_dir`` (replaced atomically)."""
    config = ctp_config_from_dict(json.loads((run / "config.json").read_text()))
    model, state = load_trained(config, run)
    return write_model_folder(out_dir, script_module(model), ctp_metadata(config, state, name=name, version=version))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.ctp.export", description=__doc__)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", default="ctp_transformer")
    parser.add_argument("--version", default="1.0.0")
    args = parser.parse_args(argv)
    print(export(args.run, args.out, name=args.name, version=args.version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
