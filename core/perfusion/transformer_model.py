"""The shipped CTP Transformer (``models/ctp_transformer``, seed 002): load once, check its contract, run it.

The network (``trainer.networks.ctp_transformer``) maps a tissue concentration curve and the global
AIF to the local AIF, the flow-scaled residue function ``R`` (ml/100 g/min; ``CBF = max R = R[0]``,
the residue is sorted in descending order) and the bolus arrival delay (BAD, s).  The contract
(``metadata.json``, written by :mod:`trainer.ctp.export`) names the network's arguments and outputs,
their units, the ``kappa`` of Eq. 1 and the curve lengths and time steps it was trained on; a mismatch
with this code raises :class:`~core.errors.ModelContractError` with what to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import InputDataError, ModelContractError
from core.model_files import load_torchscript, read_model_metadata
from core.perfusion.simulation import KAPPA

logger = logging.getLogger(__name__)

CTP_METADATA_VERSION = 1
"""Version of the CTP Transformer contract this code reads and the trainer writes."""

CTP_INPUTS = ["tissue", "global_aif", "t_s", "lengths"]
CTP_OUTPUTS = ["local_aif", "residue", "bad"]
CTP_UNITS = {"local_aif": "AIF unit", "residue": "ml/100g/min", "bad": "s"}
BATCH_VOXELS = 1024
"""Curves per forward pass (attention memory grows with batch x 16 heads x N^2)."""


@dataclass(frozen=True)
class CtpPrediction:
    """Per-voxel outputs of the network.

    Attributes
    ----------
    cbf_ml_100g_min : np.ndarray
        ``(V,)`` CBF, the first (largest) value of the residue, ml/100 g/min.
    bad_s : np.ndarray
        ``(V,)`` bolus arrival delay relative to the global AIF, s.
    residue : np.ndarray
        ``(V, N)`` flow-scaled residue function, non-increasing, ml/100 g/min.
    local_aif : np.ndarray
        ``(V, N)`` local AIF in the global AIF's unit.
    """

    cbf_ml_100g_min: np.ndarray
    bad_s: np.ndarray
    residue: np.ndarray
    local_aif: np.ndarray


def _fail(message: str) -> ModelContractError:
    return ModelContractError(
        f"{message}; re-export the model with this version's trainer (python -m trainer.ctp.export)"
    )


def check_ctp_contract(metadata: dict[str, Any]) -> None:
    """Raise :class:`ModelContractError` naming the first difference between ``metadata`` and this code."""
    if not isinstance(metadata, dict):
        raise _fail(f"the CTP metadata is a JSON {type(metadata).__name__}, not an object")
    if metadata.get("metadata_version") != CTP_METADATA_VERSION:
        raise _fail(
            f"CTP metadata_version is {metadata.get('metadata_version')!r}, this app reads {CTP_METADATA_VERSION}"
        )
    network_input, output = metadata.get("input"), metadata.get("output")
    if not isinstance(network_input, dict) or not isinstance(output, dict):
        raise _fail("the CTP model's metadata lacks its input or output object")
    if network_input.get("arguments") != CTP_INPUTS:
        raise _fail(f"the model takes {network_input.get('arguments')}, this app passes {CTP_INPUTS}")
    if output.get("names") != CTP_OUTPUTS or output.get("units") != CTP_UNITS:
        raise _fail(f"the model returns {output.get('names')} in {output.get('units')}, this app reads {CTP_UNITS}")
    frames, dt = network_input.get("frames"), network_input.get("dt_s")
    if not (isinstance(frames, list) and len(frames) == 2 and isinstance(dt, list) and len(dt) == 2):
        raise _fail("the CTP model's metadata lacks input.frames or input.dt_s ([low, high])")
    if metadata.get("kappa") != KAPPA:
        raise _fail(f"the model was trained with kappa {metadata.get('kappa')}, this app uses {KAPPA}")


def _as_curves(tissue: np.ndarray, global_aif: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    tissue = np.asarray(tissue, dtype=np.float32)
    aif = np.asarray(global_aif, dtype=np.float32)
    if tissue.ndim != 2:
        raise InputDataError(f"tissue curves must be (voxels, frames); got shape {tissue.shape}")
    if aif.shape[-1] != tissue.shape[1] or aif.ndim not in (1, 2) or (aif.ndim == 2 and len(aif) != len(tissue)):
        raise InputDataError(f"AIF shape {aif.shape} does not match tissue curves {tissue.shape}")
    if not dt_s > 0:
        raise InputDataError(f"time step must be positive; got {dt_s} s")
    if not np.all(np.isfinite(tissue)) or not np.all(np.isfinite(aif)):
        raise InputDataError("tissue curves or AIF contain NaN or infinite values")
    if np.any(aif.max(axis=-1) <= 0):
        raise InputDataError("the AIF never rises above zero; check the AIF location and baseline subtraction")
    return tissue, np.broadcast_to(aif, tissue.shape)


class CtpTransformerModel:
    """A TorchScript CTP Transformer and its contract, loaded once.

    Raises
    ------
    ModelContractError
        If ``model.ts`` or ``metadata.json`` is missing or unreadable, or the contract does not match.
    """

    def __init__(self, folder: Path, batch_voxels: int = BATCH_VOXELS) -> None:
        folder = Path(folder)
        self.metadata: dict[str, Any] = read_model_metadata(
            folder, "the app ships models/ctp_transformer, or reproduce it with make weights-ctp"
        )
        check_ctp_contract(self.metadata)
        self.module = load_torchscript(folder / "model.ts")
        self.folder = folder
        self.batch_voxels = batch_voxels

    @property
    def identity(self) -> str:
        """``name version`` for provenance."""
        return f"{self.metadata.get('name', self.folder.name)} {self.metadata.get('version', '?')}"

    def _warn_outside_training(self, n_frames: int, dt_s: float) -> None:
        low, high = self.metadata["input"]["frames"]
        dt_low, dt_high = self.metadata["input"]["dt_s"]
        if not (low <= n_frames <= high and dt_low <= dt_s <= dt_high):
            logger.warning(
                "CTP curves of %d frames at %.2f s lie outside the training range (%d-%d frames at %.1f-%.1f s)",
                n_frames,
                dt_s,
                low,
                high,
                dt_low,
                dt_high,
            )

    def predict(self, tissue: np.ndarray, global_aif: np.ndarray, dt_s: float) -> CtpPrediction:
        """Run the network on every voxel.

        Parameters
        ----------
        tissue : np.ndarray
            ``(V, N)`` baseline-subtracted tissue concentration curves (any unit shared with the AIF).
        global_aif : np.ndarray
            ``(N,)`` shared or ``(V, N)`` per-voxel global AIF, same unit.
        dt_s : float
            Time between frames, s (frame ``k`` at ``k dt_s``).
        """
        tissue, aif = _as_curves(tissue, global_aif, dt_s)
        v, n = tissue.shape
        self._warn_outside_training(n, dt_s)
        t_s = torch.arange(n, dtype=torch.float32) * float(dt_s)
        outputs: list[list[np.ndarray]] = [[], [], []]
        with torch.inference_mode():
            for start in range(0, v, self.batch_voxels):
                stop = min(start + self.batch_voxels, v)
                batch = self.module(
                    torch.tensor(tissue[start:stop]),
                    torch.tensor(aif[start:stop]),
                    t_s.expand(stop - start, n),
                    torch.full((stop - start,), n, dtype=torch.int64),
                )
                for store, value in zip(outputs, batch, strict=True):
                    store.append(value.numpy())
        local_aif, residue, bad = (
            np.concatenate(parts) if parts else np.zeros((0, n), np.float32) for parts in outputs
        )
        bad = bad.reshape(v)
        return CtpPrediction(residue[:, 0].copy(), bad, residue, local_aif)
