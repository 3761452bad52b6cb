"""The Triton model repository written from models/: configs that Triton and the SDK parse, weights that run.

Every ``config.pbtxt`` is parsed as Triton's ``ModelConfig`` protobuf (the parser the MONAI Deploy SDK's
``TritonModel`` uses) and compared with the model's ``metadata.json``; every ``1/model.pt`` is loaded
with ``torch.jit.load`` and gives the shipped model's outputs on a small input of the config's shapes.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.deploy.core.models import TritonModel
from monai.deploy.core.models.triton_model import parse_triton_config_pbtxt
from tritonclient.grpc.model_config_pb2 import DataType

from deploy.triton.check_remote import BATCH, FREE_SIZE, TORCH_TYPES, example_inputs, local_outputs
from deploy.triton.export_repository import MAX_BATCH_SIZE, MODEL_NAMES, MODELS_DIR, export_repository, main


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("triton") / "models"
    export_repository(out)
    return out


def test_repository_layout_and_sdk_acceptance(repository):
    assert sorted(p.name for p in repository.iterdir()) == sorted(MODEL_NAMES)
    for name in MODEL_NAMES:
        folder = repository / name
        assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == [
            "1",
            "1/model.pt",
            "config.pbtxt",
        ]
        assert (folder / "1" / "model.pt").read_bytes() == (MODELS_DIR / name / "model.ts").read_bytes()
        assert TritonModel.accept(str(folder)) == (True, "triton")
        assert TritonModel(str(folder)).name == name


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_config_matches_metadata(repository, name):
    config = parse_triton_config_pbtxt(repository / name / "config.pbtxt")
    metadata = json.loads((MODELS_DIR / name / "metadata.json").read_text())
    assert config.name == name and config.platform == "pytorch_libtorch" and config.backend == "pytorch"
    assert [g.kind for g in config.instance_group] == [config.instance_group[0].KIND_CPU]
    assert [t.name for t in config.input] == [f"INPUT__{i}" for i in range(len(config.input))]
    assert [t.name for t in config.output] == [f"OUTPUT__{i}" for i in range(len(config.output))]
    first = config.input[0]
    if name == "ddran_lung":  # the metadata fixes every dimension, batch of one lung included
        assert config.max_batch_size == 0
        assert list(first.dims) == metadata["input"]["shape"] == [1, 1, 128, 64, 64]
        assert [list(t.dims) for t in config.output] == [o["shape"] for o in metadata["outputs"]]
        assert len(config.output) == len(metadata["outputs"]) == 2
    elif name == "ctp_transformer":
        assert config.max_batch_size == MAX_BATCH_SIZE[name] == 1024
        assert len(config.input) == len(metadata["input"]["arguments"]) == 4
        assert [list(t.dims) for t in config.input] == [[-1], [-1], [-1], [1]]
        assert (
            DataType.Name(config.input[3].data_type)
            == "TYPE_INT64"
            == f"TYPE_{metadata['input']['dtype']['lengths'].upper()}"
        )
        assert config.input[3].HasField("reshape") and list(config.input[3].reshape.shape) == []
        assert len(config.output) == len(metadata["output"]["names"]) == 3
        assert config.output[2].HasField("reshape")
    else:  # one input "B, ...", the first output
        shape = metadata["input"]["shape"]
        assert shape[0] == "B" and config.max_batch_size == MAX_BATCH_SIZE[name]
        assert list(first.dims) == [-1 if isinstance(d, str) else d for d in shape[1:]]
        assert list(config.output[0].dims) == [-1 if isinstance(d, str) else d for d in metadata["output"]["shape"][1:]]
        assert len(config.output) == 1
    assert all(DataType.Name(t.data_type) in TORCH_TYPES for t in (*config.input, *config.output))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_exported_weights_give_the_shipped_outputs(repository, name):
    folder = repository / name
    config = parse_triton_config_pbtxt(folder / "config.pbtxt")
    inputs = example_inputs(config)
    served = local_outputs(folder, config, inputs)  # 1/model.pt, the outputs the config declares
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        shipped = torch.jit.load(str(MODELS_DIR / name / "model.ts"), map_location="cpu").eval()
    with torch.no_grad():
        reference = shipped(*inputs)
    reference = reference if isinstance(reference, tuple) else (reference,)
    assert len(served) == len(config.output) <= len(reference)
    for spec, out, expected in zip(config.output, served, reference):
        np.testing.assert_array_equal(out, expected.numpy())
        dims = list(spec.reshape.shape) if spec.HasField("reshape") else list(spec.dims)
        batch = [BATCH] if config.max_batch_size else []
        assert list(out.shape) == batch + [FREE_SIZE.get(name, -1) if d == -1 else d for d in dims]
        assert out.dtype == torch.empty(0, dtype=TORCH_TYPES[DataType.Name(spec.data_type)]).numpy().dtype


def test_command_line_exports_a_subset_and_reports_missing_models(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "repo"), "stunet_dsc"]) == 0
    assert [p.name for p in (tmp_path / "repo").iterdir()] == ["stunet_dsc"]
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "repo"), "--models", str(tmp_path), "ddran_lung"])
    assert "model.ts is missing" in capsys.readouterr().err
