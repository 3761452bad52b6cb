"""Export a trained stU-Net (or 2D CNN baseline) as ``models/<name>/model.ts`` plus ``metadata.json``.

``python -m trainer.dsc.export --run runs/stunet_dsc --out models/stunet_dsc``

The metadata is the model's contract with the application (checked by
:class:`core.perfusion.stunet_model.StUNetModel`): the strip the network takes and returns, the
preprocessing of seed 004 with its parameters (frames, frame step, grid size, crop margin, baseline
frames, clip, strip shape and strides), the network (``network.kind``: ``"stunet"`` or
``"frame_channel_cnn"``, and its keywords), the training (cases, doses, epochs, history) and the
validation losses of the last epoch.  Both kinds share the strip contract, so the app loads either.
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

from core.perfusion.stunet_model import STUNET_METADATA_VERSION, STUNET_OUTPUT
from core.perfusion.stunet_preprocessing import BASELINE_FRAMES, CLIP, MASK_THRESHOLD, PREPROCESSING
from trainer.averaging import exported_weights
from trainer.dsc.config import DscConfig, dsc_config_from_dict
from trainer.dsc.data import split_cases
from trainer.dsc.train import load_trained
from trainer.export import SYNTHETIC_NOTICE, display_path, script_module, write_model_folder

TASKS = {
    "stunet": "DSC-MRI perfusion: raw DSC strips -> standardised CBV strips (stU-Net, seed 004)",
    "frame_channel_cnn": "DSC-MRI perfusion: raw DSC strips -> standardised CBV strips (2D CNN with the frames "
    "as channels, the baseline of seed 004 Table 1)",
}
"""``task`` of the metadata for each ``network.kind``."""


def stunet_metadata(
    config: DscConfig, state: dict[str, Any], *, name: str, version: str, plain: bool = False
) -> dict[str, Any]:
    """The ``metadata.json`` of a run whose checkpoint is ``state``, exported with its moving average of the
    weights when it kept one, unless ``plain`` (then the last step's weights)."""
    history = state["history"]
    last = history[-1] if history else {}
    averaged = exported_weights(state, plain=plain) == "ema_model"
    if "ema_model" in state and not averaged:  # the plain weights' validation, under the usual names
        last = {k.removeprefix("raw_"): v for k, v in last.items() if k.startswith("raw_val_")}
    p = config.preprocessing
    strip = list(p.strip_shape)
    split = split_cases(config.data)
    return {
        "metadata_version": STUNET_METADATA_VERSION,
        "name": name,
        "version": version,
        "task": TASKS[config.model.kind],
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "network": {"kind": config.model.kind, "frames": p.frames, **config.model.network_keywords()},
        "input": {
            "shape": ["B", 1, p.frames, *strip],
            "dtype": "float32",
            "frames": p.frames,
            "frame_step_s": p.frame_step_s,
            "size": p.size,
            "margin_voxels": p.margin_voxels,
            "mask_threshold": MASK_THRESHOLD,
            "baseline_frames": BASELINE_FRAMES,
            "clip": [-CLIP, CLIP],
            "strip_shape": strip,
            "size_multiple": config.model.size_multiple,
            "train_stride": p.train_stride,
            "test_stride": p.test_stride,
            "preprocessing": dict(PREPROCESSING),
            "meaning": "DSC signal resampled in time, cropped to a square around the brain, resampled to "
            "size x size, standardised by the brain voxels of the first baseline_frames frames, clipped",
        },
        "output": {
            "name": STUNET_OUTPUT,
            "shape": ["B", 1, *strip],
            "clip": [-CLIP, CLIP],
            "meaning": "CBV standardised by the mean and SD of the brain voxels (the training targets are "
            "clipped to clip); strips are averaged where they overlap",
            "target": "CBV by SVD of the full-dose signal (core.perfusion.dsc.reference_cbv), seed 004's Verbena role",
        },
        "trained_on": {
            "data": "DSC phantoms (core.simulation.dsc_phantom.make_dsc_phantom), low doses by seed 004 Eq. 1",
            "preset": config.data.preset,
            "cases": {k: v.tolist() for k, v in split.items()},
            "doses_per_training_case": config.data.doses_per_case,
            "dose_range": list(config.data.dose_range),
            "dose_sampling": config.data.dose_sampling,
            "eval_doses": list(config.data.eval_doses),
            "cache": display_path(config.data.cache),
        },
        "training": {
            "config": json.loads(json.dumps(asdict(config), default=str)),
            "epochs": len(history),
            "loss": "mean squared error over the brain voxels of the batch",
            "weights": f"exponential moving average, decay {config.optim.ema_decay:g}"
            if averaged
            else "the last step's",
            "history": history,
        },
        "val_metrics": {k: v for k, v in last.items() if k.startswith("val_")},
        "notice": SYNTHETIC_NOTICE,
    }


def export(run: Path, out_dir: Path, *, name: str, version: str, plain: bool = False) -> Path:
    """Script the run's network and write it with its metadata into ``out_dir`` (replaced atomically).

    ``plain``: export the last step's weights even when the run kept a moving average of them.
    """
    config = dsc_config_from_dict(json.loads((run / "config.json").read_text()))
    model, state = load_trained(config, run, plain=plain)
    metadata = stunet_metadata(config, state, name=name, version=version, plain=plain)
    return write_model_folder(out_dir, script_module(model), metadata)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.dsc.export", description=__doc__)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", help="model name in the metadata (default: the name of --out)")
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument(
        "--plain-weights", action="store_true", help="the last step's weights, not the run's moving average"
    )
    args = parser.parse_args(argv)
    print(export(args.run, args.out, name=args.name or args.out.name, version=args.version, plain=args.plain_weights))
    return 0


if __name__ == "__main__":
    sys.exit(main())
