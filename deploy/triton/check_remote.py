"""Send every model of the exported repository a request on a Triton server and compare with the local model.

``python -m deploy.triton.check_remote --repository build/triton_models --url 127.0.0.1:8000``

For each ``<repository>/<name>``: seeded inputs of the ``config.pbtxt`` shapes go to the server with
``tritonclient`` (HTTP); the answers must equal ``1/model.pt`` run here (``--atol``).  Models with one
input additionally go through the MONAI Deploy SDK's own remote-inference client
(``monai.deploy.core.models.TritonModel.connect(url)``, what ``--triton-server-netloc`` /
``$TRITON_SERVER_NETLOC`` sets up), whose first output is compared in the same way.
Exit status 0 when every answer agrees.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import tritonclient.http as httpclient
from monai.deploy.core.models import TritonModel
from monai.deploy.core.models.triton_model import parse_triton_config_pbtxt
from tritonclient.grpc.model_config_pb2 import DataType, ModelConfig

logger = logging.getLogger(__name__)

FREE_SIZE = {"ctp_transformer": 48, "u2net_spect_bone": 32}
"""A size for each ``-1`` dimension: 48 frames of curves; 32 pixels (the U2-Net needs multiples of 32)."""
BATCH = 2
TORCH_TYPES = {"TYPE_FP32": torch.float32, "TYPE_INT64": torch.int64}


def example_inputs(config: ModelConfig, seed: int = 0) -> list[torch.Tensor]:
    """Seeded inputs of ``config``'s shapes: batch :data:`BATCH` when batched, ``-1`` dims from :data:`FREE_SIZE`.

    Integer inputs are curve lengths (the CTP Transformer's ``lengths``): one full, one shorter curve.
    """
    generator = torch.Generator().manual_seed(seed)
    free = FREE_SIZE.get(config.name, 1)
    tensors = []
    for tensor in config.input:
        dims = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
        shape = ([BATCH] if config.max_batch_size else []) + [free if d == -1 else d for d in dims]
        if TORCH_TYPES[DataType.Name(tensor.data_type)] == torch.int64:
            tensors.append(torch.tensor([free, free - 8][: shape[0]]))
        else:
            tensors.append(torch.rand(shape, generator=generator))
    return tensors


def load_local(folder: Path) -> torch.jit.ScriptModule:
    """``folder/1/model.pt`` on the CPU in eval mode."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(folder / "1" / "model.pt"), map_location="cpu").eval()


def local_outputs(folder: Path, config: ModelConfig, inputs: list[torch.Tensor]) -> list[np.ndarray]:
    """The outputs ``config`` declares, computed here."""
    with torch.no_grad():
        result = load_local(folder)(*inputs)
    outputs = result if isinstance(result, tuple) else (result,)
    return [o.numpy() for o in outputs[: len(config.output)]]


def remote_outputs(client: httpclient.InferenceServerClient, config: ModelConfig, inputs: list[torch.Tensor]) -> list:
    """The server's answer to ``inputs`` (per-item scalars sent and received as ``(B, 1)``)."""
    requests = []
    for spec, tensor in zip(config.input, inputs):
        array = tensor.numpy()[..., None] if spec.HasField("reshape") else tensor.numpy()
        request = httpclient.InferInput(spec.name, list(array.shape), DataType.Name(spec.data_type)[len("TYPE_") :])
        request.set_data_from_numpy(array, binary_data=True)
        requests.append(request)
    wanted = [httpclient.InferRequestedOutput(spec.name, binary_data=True) for spec in config.output]
    result = client.infer(config.name, requests, outputs=wanted)
    arrays = [result.as_numpy(spec.name) for spec in config.output]
    return [a[..., 0] if spec.HasField("reshape") else a for spec, a in zip(config.output, arrays)]


def check_model(folder: Path, url: str, atol: float) -> list[str]:
    """Compare the server's and the local outputs of one model; the disagreements found (empty: all agree)."""
    config = parse_triton_config_pbtxt(folder / "config.pbtxt")
    inputs = example_inputs(config)
    expected = local_outputs(folder, config, inputs)
    answers = {"tritonclient": remote_outputs(httpclient.InferenceServerClient(url=url), config, inputs)}
    if len(config.input) == 1:
        sdk_model = TritonModel(str(folder))
        answers["MONAI Deploy TritonModel"] = [sdk_model.connect(url)(inputs[0]).cpu().numpy()]
    problems = []
    for client, outputs in answers.items():
        for spec, got, want in zip(config.output, outputs, expected):
            if got.shape != want.shape:
                problems.append(f"{config.name}/{spec.name} via {client}: shape {got.shape}, expected {want.shape}")
            elif not np.allclose(got, want, rtol=0.0, atol=atol):
                difference = float(np.max(np.abs(got.astype(np.float64) - want)))
                problems.append(f"{config.name}/{spec.name} via {client}: differs by up to {difference:.3g}")
        logger.info("%s via %s: %d output(s) agree", config.name, client, len(outputs))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.triton.check_remote", description=__doc__)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--url", default="127.0.0.1:8000", help="host:port of the server's HTTP endpoint")
    parser.add_argument("--atol", type=float, default=1e-5, help="largest absolute difference accepted")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    folders = sorted(p for p in args.repository.iterdir() if (p / "config.pbtxt").is_file())
    if not folders:
        parser.error(
            f"no model folders in {args.repository}; write them with python -m deploy.triton.export_repository"
        )
    problems = [problem for folder in folders for problem in check_model(folder, args.url, args.atol)]
    for problem in problems:
        logger.error("disagreement: %s", problem)
    logger.info("%d model(s) checked against %s: %s", len(folders), args.url, "FAILED" if problems else "all agree")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
