"""The shipped SPECT denoising model (``models/u2net_spect_bone``): load once, check its contract, run it.

The contract (``metadata.json``, written by :mod:`trainer.denoise.export`) says how many input
channels the network takes and whether one of them is the CT, which multiple the slice size must
be, and the acquisition it was trained for; a mismatch with this code raises
:class:`~core.errors.ModelContractError` with what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelContractError
from core.model_files import load_torchscript, read_model_metadata
from core.nm.denoising import NORMALISATIONS, SIZE_MULTIPLE, denoise_volume, normalisation_support

logger = logging.getLogger(__name__)

DENOISING_METADATA_VERSION = 1
"""Version of the denoising model contract this code reads and the trainer writes."""


def check_denoising_contract(metadata: dict[str, Any]) -> None:
    """Raise :class:`ModelContractError` naming the first difference between ``metadata`` and this code."""
    fix = "re-export the model with this version's trainer (python -m trainer.denoise.export)"
    if not isinstance(metadata, dict):
        raise ModelContractError(f"the denoising metadata is a JSON {type(metadata).__name__}, not an object; {fix}")
    if metadata.get("metadata_version") != DENOISING_METADATA_VERSION:
        raise ModelContractError(
            f"denoising metadata_version is {metadata.get('metadata_version')!r}, "
            f"this app reads {DENOISING_METADATA_VERSION}; {fix}"
        )
    network_input = metadata.get("input")
    if not isinstance(network_input, dict):
        raise ModelContractError(f"the denoising model's metadata has no input object; {fix}")
    uses_ct = network_input.get("uses_ct")
    shape = network_input.get("shape")
    if not isinstance(uses_ct, bool) or not isinstance(shape, list) or len(shape) != 4:
        raise ModelContractError(f"the denoising model's metadata lacks input.uses_ct or a 4-D input.shape; {fix}")
    if shape[1] != (2 if uses_ct else 1):
        raise ModelContractError(f"the model takes {shape[1]} channel(s) but uses_ct is {uses_ct}; {fix}")
    if network_input.get("size_multiple") != SIZE_MULTIPLE:
        raise ModelContractError(
            f"the model needs slices padded to a multiple of {network_input.get('size_multiple')}, "
            f"this app pads to {SIZE_MULTIPLE}; {fix}"
        )
    if network_input.get("preprocessing") != "core.nm.denoising.network_inputs":
        raise ModelContractError(
            f"the model was trained with other preprocessing ({network_input.get('preprocessing')}); {fix}"
        )
    if input_normalisation(metadata) not in NORMALISATIONS:
        raise ModelContractError(
            f"the model's input.normalisation is {network_input.get('normalisation')!r}, "
            f"this app knows {' and '.join(NORMALISATIONS)}; {fix}"
        )


def input_normalisation(metadata: dict[str, Any]) -> str:
    """Where the model's input averages are taken: ``input.normalisation``; models exported before it was
    recorded (u2net_spect_bone 1.0.0) used the whole volume."""
    return str(metadata["input"].get("normalisation", "volume"))


class DenoisingModel:
    """A TorchScript denoising U2-Net and its contract, loaded once.

    Raises
    ------
    ModelContractError
        If ``model.ts`` or ``metadata.json`` is missing or unreadable, or the contract does not match.
    """

    def __init__(self, folder: Path) -> None:
        folder = Path(folder)
        self.metadata: dict[str, Any] = read_model_metadata(
            folder, "the app ships models/u2net_spect_bone, or set the denoising model"
        )
        check_denoising_contract(self.metadata)
        self.uses_ct: bool = self.metadata["input"]["uses_ct"]
        self.normalisation = input_normalisation(self.metadata)
        self.module = load_torchscript(folder / "model.ts")
        self.folder = folder

    @property
    def needs_ct(self) -> bool:
        """Whether :meth:`denoise` needs the CT: as a network input, or to find the body it normalises over."""
        return self.uses_ct or self.normalisation == "body"

    @property
    def identity(self) -> str:
        """``name version`` for provenance."""
        return f"{self.metadata.get('name', self.folder.name)} {self.metadata.get('version', '?')}"

    def denoise(
        self,
        fast: np.ndarray,
        ct_on_spect: np.ndarray | None,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Denoised counts of a fast SPECT (the CT on the SPECT grid, in HU, when the model uses it or
        normalises over the body)."""
        if self.needs_ct and ct_on_spect is None:
            raise ModelContractError("this denoising model needs the CT of the same Frame of Reference")
        support = normalisation_support(self.normalisation, ct_on_spect)
        network_ct = ct_on_spect if self.uses_ct else None
        return denoise_volume(self.module, fast, network_ct, progress=progress, support=support)
