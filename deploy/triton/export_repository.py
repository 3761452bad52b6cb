"""Write the shipped models as a Triton Inference Server model repository (``pytorch_libtorch`` backend).

``python -m deploy.triton.export_repository --out build/triton_models`` reads every ``models/<name>``
(``model.ts`` and ``metadata.json``) and writes::

    <out>/<name>/config.pbtxt      inputs, outputs, data types and dims from metadata.json
    <out>/<name>/1/model.pt        the TorchScript file, copied unchanged

The libtorch backend binds tensors by position, so they are named ``INPUT__<i>`` (the ``i``-th
argument of ``forward``) and ``OUTPUT__<i>`` (the ``i``-th element of the returned tuple); a comment in
``config.pbtxt`` names each one as the metadata does.  A leading ``"B"`` dimension becomes Triton's
batch dimension (``max_batch_size`` > 0, :data:`MAX_BATCH_SIZE`), other symbolic dimensions (``"N"``,
``"H"``, ``"W"``) become ``-1``; a model whose metadata fixes every dimension gets ``max_batch_size: 0``.
The repository duplicates the weights, so it belongs in an ignored folder (``build/``), not in git.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "build" / "triton_models"
MODEL_NAMES = ("ddran_lung", "u2net_spect_bone", "ctp_transformer", "stunet_dsc")

MAX_BATCH_SIZE = {
    "u2net_spect_bone": 8,  # slices per request: core.nm.denoising.denoise_volume's batch_size
    "ctp_transformer": 1024,  # curves per request: core.perfusion.transformer_model.BATCH_VOXELS
    "stunet_dsc": 16,  # strips per request: core.perfusion.stunet_model.BATCH_STRIPS
}
"""Largest batch per model with a batch dimension: the batch the app itself runs."""

TRITON_TYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "uint8": "TYPE_UINT8",
    "bool": "TYPE_BOOL",
}
BATCH_DIM = "B"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model as the metadata describes it."""

    label: str
    """The metadata's name of the tensor (``enhanced_ct``, ``perfusion``, ...)."""
    shape: tuple[int | str, ...]
    """Dimensions; strings are symbolic (``"B"`` the batch, ``"N"``, ``"H"``, ``"W"`` free sizes)."""
    dtype: str = "float32"


@dataclass(frozen=True)
class ModelSpec:
    """The tensors of one model, in ``forward``'s argument order and its output order."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def batched(self) -> bool:
        """Whether every tensor starts with the batch dimension ``"B"``."""
        return all(t.shape[:1] == (BATCH_DIM,) for t in (*self.inputs, *self.outputs))


def model_spec(metadata: dict[str, Any]) -> ModelSpec:
    """The :class:`ModelSpec` of a shipped model's ``metadata.json``.

    Three layouts occur: one named input with a list of named ``outputs`` (``ddran_lung``); named
    ``arguments`` with per-name shapes and dtypes, and ``output.names`` (``ctp_transformer``); one
    unnamed input and one ``output`` (``u2net_spect_bone``, ``stunet_dsc``; only the first element of
    a returned tuple is served).

    Raises
    ------
    ValueError
        When the metadata has none of these layouts or names an unknown dtype.
    """
    name, inputs, outputs = metadata.get("name"), metadata.get("input"), metadata.get("outputs", metadata.get("output"))
    if not isinstance(name, str) or not isinstance(inputs, dict) or outputs is None:
        raise ValueError("metadata.json needs 'name', 'input' and 'output(s)'; re-export the model with the trainer")
    if "arguments" in inputs:
        specs_in = tuple(TensorSpec(a, tuple(inputs["shape"][a]), inputs["dtype"][a]) for a in inputs["arguments"])
    else:
        specs_in = (TensorSpec(inputs.get("name", "input"), tuple(inputs["shape"]), inputs.get("dtype", "float32")),)
    if isinstance(outputs, list):
        specs_out = tuple(TensorSpec(o["name"], tuple(o["shape"]), o.get("dtype", "float32")) for o in outputs)
    elif "names" in outputs:
        specs_out = tuple(TensorSpec(n, tuple(outputs["shape"][n]), "float32") for n in outputs["names"])
    else:
        specs_out = (
            TensorSpec(outputs.get("name", "output"), tuple(outputs["shape"]), outputs.get("dtype", "float32")),
        )
    for spec in (*specs_in, *specs_out):
        if spec.dtype not in TRITON_TYPES:
            raise ValueError(f"{name}: {spec.label} has dtype {spec.dtype!r}; expected one of {sorted(TRITON_TYPES)}")
    return ModelSpec(name, specs_in, specs_out)


def _tensor_block(kind: str, index: int, spec: TensorSpec, batched: bool) -> str:
    shape = spec.shape[1:] if batched else spec.shape
    dims = [-1 if isinstance(d, str) else int(d) for d in shape]
    lines = [
        f"  # {spec.label}: {list(spec.shape)} {spec.dtype}",
        "  {",
        f'    name: "{kind}__{index}"',
        f"    data_type: {TRITON_TYPES[spec.dtype]}",
        f"    dims: [ {', '.join(str(d) for d in dims or [1])} ]",
    ]
    if not dims:  # a per-item scalar: Triton needs a dimension, the model gets shape (B,)
        lines.append("    reshape: { shape: [ ] }")
    return "\n".join([*lines, "  }"])


def config_pbtxt(spec: ModelSpec, max_batch_size: int) -> str:
    """Triton's ``config.pbtxt`` (protobuf text format of ``inference.ModelConfig``) for ``spec``.

    ``max_batch_size`` is used only when the model is batched (:attr:`ModelSpec.batched`).
    """
    batch = max_batch_size if spec.batched else 0
    inputs = ",\n".join(_tensor_block("INPUT", i, t, spec.batched) for i, t in enumerate(spec.inputs))
    outputs = ",\n".join(_tensor_block("OUTPUT", i, t, spec.batched) for i, t in enumerate(spec.outputs))
    return (
        f"# Written by python -m deploy.triton.export_repository from models/{spec.name}/metadata.json\n"
        f'name: "{spec.name}"\n'
        'backend: "pytorch"\n'
        'platform: "pytorch_libtorch"\n'
        f"max_batch_size: {batch}\n"
        f"input [\n{inputs}\n]\n"
        f"output [\n{outputs}\n]\n"
        "instance_group [ { count: 1, kind: KIND_CPU } ]\n"
    )


def export_model(folder: Path, repository: Path) -> Path:
    """Write ``repository/<name>/config.pbtxt`` and ``1/model.pt`` for the model folder ``folder``.

    Raises
    ------
    FileNotFoundError
        When ``folder`` lacks ``model.ts`` or ``metadata.json``.
    """
    for file in ("model.ts", "metadata.json"):
        if not (folder / file).is_file():
            raise FileNotFoundError(f"{folder / file} is missing; the shipped models live in models/<name>")
    spec = model_spec(json.loads((folder / "metadata.json").read_text()))
    target = repository / spec.name
    (target / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / "model.ts", target / "1" / "model.pt")
    (target / "config.pbtxt").write_text(config_pbtxt(spec, MAX_BATCH_SIZE.get(spec.name, 1)))
    logger.info("wrote %s", target)
    return target


def export_repository(
    repository: Path, models_dir: Path = MODELS_DIR, names: Sequence[str] = MODEL_NAMES
) -> list[Path]:
    """Export every model of ``names`` from ``models_dir`` into ``repository``; the model folders written."""
    return [export_model(models_dir / name, repository) for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.triton.export_repository", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"repository folder (default {DEFAULT_OUT})")
    parser.add_argument("--models", type=Path, default=MODELS_DIR, help="folder of the shipped models")
    parser.add_argument("names", nargs="*", default=list(MODEL_NAMES), help="models to export (default: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        written = export_repository(args.out, args.models, args.names)
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    logger.info("Triton model repository with %d model(s): %s", len(written), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
