"""Export a trained network as ``models/<name>/model.ts`` (TorchScript) plus ``metadata.json``.

``metadata.json`` is the model's contract with the application (MONAI bundle style): what goes
in (shape, value range, the Eq. 1 preprocessing and its parameters), what comes out (meaning,
range, the Eq. 2 target it was trained on), the version, what it was trained on and the test
metrics.  The app checks it when it loads the model.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.lung import enhancement
from core.lung.synthesis import METADATA_VERSION, preprocessing_contract
from trainer.config import TrainConfig

SYNTHETIC_NOTICE = "Trained on digital phantoms only; research use only, not clinically validated."


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (no local prefixes in metadata)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def script_module(model: nn.Module) -> torch.jit.ScriptModule:
    """``torch.jit.script(model)``, without torch 2.13's TorchScript deprecation warning.

    The app's model contract is still a ``.ts`` file (``torch.jit.load``).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated", category=DeprecationWarning)
        return torch.jit.script(model)


def write_model_folder(
    out_dir: Path, scripted: torch.jit.ScriptModule, metadata: dict[str, Any], report_files: Sequence[Path] = ()
) -> Path:
    """Write ``model.ts``, ``metadata.json`` and ``report/`` (copies of ``report_files``) as ``out_dir``.

    Everything goes into a hidden folder beside ``out_dir`` first, which then replaces ``out_dir``:
    an interrupted export never leaves a half-written model folder.
    """
    partial = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    scripted.save(str(partial / "model.ts"))
    (partial / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str))
    if report_files:
        (partial / "report").mkdir()
        for path in report_files:
            shutil.copy2(path, partial / "report" / Path(path).name)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    partial.rename(out_dir)
    return out_dir


def export_model(
    model: nn.Module,
    config: TrainConfig,
    out_dir: Path,
    *,
    name: str,
    version: str,
    outputs: tuple[str, ...],
    trained_on: dict[str, Any],
    test_metrics: dict[str, Any],
    extra_files: Sequence[Path] = (),
) -> Path:
    """Script ``model`` and write it with its metadata into ``out_dir`` (replaced atomically).

    ``extra_files`` (the metrics table, the report's plots) are copied into ``out_dir/report/``.
    """
    scripted = script_module(model.cpu().float().eval())
    metadata = {
        "metadata_version": METADATA_VERSION,
        "name": name,
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "network": {"kind": config.model.kind, "channels": list(config.model.channels)},
        "input": {
            "name": "enhanced_ct",
            "shape": [1, 1, *enhancement.LUNG_CROP_SHAPE],
            "dtype": "float32",
            "range": [0.0, 1.0],
            "preprocessing": preprocessing_contract(),
            "one_lung_per_sample": True,
        },
        "outputs": [
            {
                "name": o,
                "shape": [1, 1, *enhancement.LUNG_CROP_SHAPE],
                "range": [0.0, 1.0],
                "meaning": f"{o} relative to the lung's 75th percentile (Eq. 2 scale, 1 = P75)",
            }
            for o in outputs
        ],
        "trained_on": trained_on,
        "training": asdict(config) | {"data": {**asdict(config.data), "samples": display_path(config.data.samples)}},
        "test_metrics": test_metrics,
        "notice": SYNTHETIC_NOTICE,
    }
    return write_model_folder(out_dir, scripted, metadata, extra_files)
