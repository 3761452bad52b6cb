"""The stU-Net of seed 004 (``models/stunet_dsc``): load once, check its contract, predict a CBV map.

The network (``trainer.networks.stunet``) maps a strip of a standardised DSC sequence,
``(B, 1, frames, strip_h, strip_w)``, to the strip of the standardised CBV map, ``(B, 1, strip_h, strip_w)``.
Any network with that contract loads the same way; ``metadata.json`` names it (``network.kind``:
``"stunet"``, or ``"frame_channel_cnn"`` for the 2D CNN baseline of seed 004 Table 1).
The contract (``metadata.json``, written by :mod:`trainer.dsc.export`) gives the preprocessing
(:mod:`core.perfusion.stunet_preprocessing`) and its parameters: frames and frame step, the network's
grid ``size``, the crop margin, the strip shape, the strides, the clip; a mismatch with this code raises
:class:`~core.errors.ModelContractError` with what to do.

Prediction (seed 004 section 3): strips at a stride (the paper: 1; the metadata's ``test_stride`` by
default, to bound the time on a CPU) over every slice, predicted in batches and averaged where they overlap;
strips without a brain voxel are skipped (they would change no brain voxel).  By default the map is the
mean of the network on the slice and on its left-right mirror image, mirrored back (test-time
augmentation: brains are left-right alike, so the mirror image is an input like the others; it halves
the speed).  On the shipped model's 8 validation phantoms this lowered L1 at every dose (full 14.24 -> 13.69,
quarter 18.01 -> 17.40 x 1e-2) and raised SSIM; ``mirror=False`` gives the paper's single pass.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import InputDataError, ModelContractError
from core.model_files import load_torchscript, read_model_metadata
from core.perfusion.stunet_preprocessing import (
    BASELINE_FRAMES,
    CLIP,
    PREPROCESSING,
    assemble_strips,
    extract_strips,
    prepare_dsc,
    strip_positions,
)

logger = logging.getLogger(__name__)

STUNET_METADATA_VERSION = 1
"""Version of the stU-Net contract this code reads and the trainer writes."""
STUNET_OUTPUT = "cbv_standardised"
"""Name of the network's output in the metadata."""
BATCH_STRIPS = 16
"""Strips per forward pass."""


def _fail(message: str) -> ModelContractError:
    return ModelContractError(
        f"{message}; re-export the model with this version's trainer (python -m trainer.dsc.export)"
    )


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_stunet_contract(metadata: dict[str, Any]) -> None:
    """Raise :class:`ModelContractError` naming the first difference between ``metadata`` and this code."""
    if not isinstance(metadata, dict):
        raise _fail(f"the stU-Net metadata is a JSON {type(metadata).__name__}, not an object")
    if metadata.get("metadata_version") != STUNET_METADATA_VERSION:
        raise _fail(
            f"stU-Net metadata_version is {metadata.get('metadata_version')!r}, "
            f"this app reads {STUNET_METADATA_VERSION}"
        )
    network_input, output = metadata.get("input"), metadata.get("output")
    if not isinstance(network_input, dict) or not isinstance(output, dict):
        raise _fail("the stU-Net model's metadata lacks its input or output object")
    network = metadata.get("network")
    if not isinstance(network, dict) or not isinstance(network.get("kind"), str) or not network["kind"]:
        raise _fail(f"the model's metadata must name its network kind (network.kind), got {network!r}")
    if network_input.get("preprocessing") != PREPROCESSING:
        raise _fail(f"the model was trained with other preprocessing ({network_input.get('preprocessing')})")
    if network_input.get("clip") != [-CLIP, CLIP] or output.get("clip") != [-CLIP, CLIP]:
        raise _fail(f"the model's clip is {network_input.get('clip')}, this app clips to {[-CLIP, CLIP]}")
    if network_input.get("baseline_frames") != BASELINE_FRAMES:
        raise _fail(
            f"the model standardises by {network_input.get('baseline_frames')} baseline frames, "
            f"this app by {BASELINE_FRAMES}"
        )
    if output.get("name") != STUNET_OUTPUT:
        raise _fail(f"the model returns {output.get('name')!r}, this app reads {STUNET_OUTPUT!r}")
    for key in ("frames", "size", "size_multiple", "test_stride"):
        if not _positive_int(network_input.get(key)):
            raise _fail(f"input.{key} must be a positive integer, got {network_input.get(key)!r}")
    margin, step = network_input.get("margin_voxels"), network_input.get("frame_step_s")
    if not (isinstance(margin, int) and margin >= 0) or not (isinstance(step, int | float) and step > 0):
        raise _fail(f"input.margin_voxels ({margin!r}) or input.frame_step_s ({step!r}) is invalid")
    strip = network_input.get("strip_shape")
    size, multiple = network_input["size"], network_input["size_multiple"]
    if not (isinstance(strip, list) and len(strip) == 2 and all(_positive_int(s) for s in strip)):
        raise _fail(f"input.strip_shape must be two positive integers, got {strip!r}")
    if any(s > size or s % multiple for s in strip):
        raise _fail(f"strips {strip} must fit the {size} x {size} grid and be multiples of {multiple}")


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` for the duration, then the previous setting (``None``: unchanged)."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class StUNetModel:
    """A TorchScript stU-Net (or another network with its strip contract) and its contract, loaded once.

    Parameters
    ----------
    folder : Path
        Model folder with ``model.ts`` and ``metadata.json``.
    batch_strips : int
        Strips per forward pass.
    threads : int or None
        Torch intra-op threads while predicting (restored afterwards); ``None`` keeps the process's setting.
    mirror : bool
        Average the prediction with that of the left-right mirror image (see the module docstring).

    Raises
    ------
    ModelContractError
        If ``model.ts`` or ``metadata.json`` is missing or unreadable, or the contract does not match.
    """

    def __init__(
        self, folder: Path, batch_strips: int = BATCH_STRIPS, threads: int | None = None, mirror: bool = True
    ) -> None:
        folder = Path(folder)
        self.metadata: dict[str, Any] = read_model_metadata(
            folder, "the app ships models/stunet_dsc, or reproduce it with python -m trainer.dsc.train and export"
        )
        check_stunet_contract(self.metadata)
        self.module = load_torchscript(folder / "model.ts")
        self.folder = folder
        self.batch_strips = batch_strips
        self.threads = threads
        network_input = self.metadata["input"]
        self.frames: int = network_input["frames"]
        self.frame_step_s: float = float(network_input["frame_step_s"])
        self.size: int = network_input["size"]
        self.margin_voxels: int = network_input["margin_voxels"]
        self.strip_shape: tuple[int, int] = (network_input["strip_shape"][0], network_input["strip_shape"][1])
        self.test_stride: int = network_input["test_stride"]
        self.network_kind: str = self.metadata["network"]["kind"]
        self.mirror = mirror

    @property
    def identity(self) -> str:
        """``name version (network kind)`` for provenance."""
        name = self.metadata.get("name", self.folder.name)
        return f"{name} {self.metadata.get('version', '?')} ({self.network_kind})"

    def predict(
        self, signal: np.ndarray, times_s: np.ndarray, brain_mask: np.ndarray, test_stride: int | None = None
    ) -> np.ndarray:
        """The standardised CBV map of a DSC acquisition.

        Parameters
        ----------
        signal : np.ndarray
            ``(T, nz, ny, nx)`` DSC signal (any scanner unit; standardised here).
        times_s : np.ndarray
            ``(T,)`` frame times (s), strictly increasing.
        brain_mask : np.ndarray
            ``(nz, ny, nx)`` bool, the brain.
        test_stride : int or None
            Stride of the strips (the paper: 1); ``None``: the metadata's ``test_stride``.

        Returns
        -------
        np.ndarray
            ``(nz, ny, nx)`` float32 CBV standardised over the brain (mean 0, SD 1 on the training
            targets; in about ``[-5, 5]``), 0 outside the brain.
        """
        mask = np.asarray(brain_mask, dtype=bool)
        signal = np.asarray(signal, dtype=np.float32)
        if not np.all(np.isfinite(signal)):
            raise InputDataError("the DSC signal contains NaN or infinite values")
        prepared = prepare_dsc(
            signal,
            times_s,
            mask,
            size=self.size,
            frames=self.frames,
            frame_step_s=self.frame_step_s,
            margin_voxels=self.margin_voxels,
        )
        cbv = self.predict_prepared(prepared.dsc, prepared.brain, test_stride)
        return np.where(mask, prepared.crop.paste_inside(cbv, prepared.brain), 0.0).astype(np.float32)

    def predict_prepared(self, dsc: np.ndarray, brain: np.ndarray, test_stride: int | None = None) -> np.ndarray:
        """The network on a preprocessed sequence: ``(frames, nz, size, size)`` and its ``(nz, size, size)`` brain.

        Returns the ``(nz, size, size)`` float32 standardised CBV on the network's grid, 0 outside ``brain``.
        """
        stride = self.test_stride if test_stride is None else int(test_stride)
        expected = (self.frames, self.size, self.size)
        if dsc.ndim != 4 or (dsc.shape[0], *dsc.shape[2:]) != expected or brain.shape != dsc.shape[1:]:
            raise InputDataError(
                f"preprocessed DSC must be (frames={self.frames}, nz, {self.size}, {self.size}) with a matching "
                f"brain mask; got {dsc.shape} and {brain.shape}"
            )
        out = self._predict_strips(dsc, brain, stride)
        if self.mirror:
            mirrored = self._predict_strips(
                np.ascontiguousarray(dsc[..., ::-1]), np.ascontiguousarray(brain[..., ::-1]), stride
            )
            out = 0.5 * (out + mirrored[..., ::-1])
        return np.where(brain, out, 0.0).astype(np.float32)

    def _predict_strips(self, dsc: np.ndarray, brain: np.ndarray, stride: int) -> np.ndarray:
        positions = strip_positions(self.size, self.size, self.strip_shape, stride)
        out = np.zeros(brain.shape, dtype=np.float32)
        with _torch_threads(self.threads), torch.inference_mode():
            for z in range(brain.shape[0]):
                has_brain = extract_strips(brain[z], positions, self.strip_shape).any(axis=(1, 2))
                if not has_brain.any():
                    continue
                kept = positions[has_brain]
                strips = extract_strips(dsc[:, z], kept, self.strip_shape).astype(np.float32)
                predicted = [
                    self.module(torch.from_numpy(strips[i : i + self.batch_strips, None])).float().numpy()[:, 0]
                    for i in range(0, len(strips), self.batch_strips)
                ]
                out[z] = assemble_strips(np.concatenate(predicted), kept, (self.size, self.size))
        return out
