"""Reading a shipped model folder (``model.ts`` + ``metadata.json``) with errors that say what to do.

Shared by every model the app loads (:class:`core.lung.synthesis.FunctionModel`,
:class:`core.nm.denoising_model.DenoisingModel`); each checks its own contract on the metadata.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from core.errors import ModelContractError


def read_model_metadata(folder: Path, missing_hint: str) -> dict[str, Any]:
    """``metadata.json`` of ``folder`` after checking that it and ``model.ts`` exist.

    ``missing_hint`` ends the error for a missing file (e.g. which folder the app ships).
    """
    for name in ("model.ts", "metadata.json"):
        if not (folder / name).is_file():
            raise ModelContractError(f"{folder / name} is missing; {missing_hint}")
    try:
        metadata = json.loads((folder / "metadata.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModelContractError(f"{folder / 'metadata.json'} is unreadable ({err}); re-export the model") from err
    return metadata


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    """The TorchScript module at ``path`` on the CPU in eval mode."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript loading
        try:
            return torch.jit.load(str(path), map_location="cpu").eval()
        except RuntimeError as err:
            raise ModelContractError(f"{path} is not a TorchScript model ({err})") from err
