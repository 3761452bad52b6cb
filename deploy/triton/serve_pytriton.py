"""Serve the exported model repository on loopback with PyTriton's Triton Inference Server (CPU).

The ``tritonserver`` that the ``nvidia-pytriton`` wheel bundles has only the Python backend, not the
``pytorch_libtorch`` backend, so it cannot load ``<repository>/<name>/1/model.pt`` itself.  This
script binds, for every model of the repository, a Python function that runs that TorchScript file
under exactly the name, tensor names (``INPUT__<i>`` / ``OUTPUT__<i>``), data types, dims and
``max_batch_size`` of its ``config.pbtxt``: a client sees what it would see from a Triton server
started on the repository (``docker run nvcr.io/nvidia/tritonserver:<yy.mm>-py3``).

Run it with a Python that has ``nvidia-pytriton`` and ``torch`` (PyTriton pins numpy < 2, so not the
project's environment; ``deploy/triton/serve_test.sh`` makes one)::

    python deploy/triton/serve_pytriton.py --repository build/triton_models --http-port 8000

It writes ``--ready-file`` (the HTTP address) once every model is loaded and serves until stopped
(SIGINT / SIGTERM).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from google.protobuf import text_format
from pytriton.decorators import batch, sample
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig
from tritonclient.grpc.model_config_pb2 import DataType
from tritonclient.grpc.model_config_pb2 import ModelConfig as TritonModelConfig

logger = logging.getLogger(__name__)

NUMPY_TYPES = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_INT64": np.int64, "TYPE_INT32": np.int32}


def read_config(folder: Path) -> TritonModelConfig:
    """``folder/config.pbtxt`` as Triton's ``ModelConfig`` protobuf."""
    return text_format.Parse((folder / "config.pbtxt").read_text(), TritonModelConfig())


def _tensors(specs: Iterable[Any]) -> list[Tensor]:
    return [Tensor(name=s.name, dtype=NUMPY_TYPES[DataType.Name(s.data_type)], shape=tuple(s.dims)) for s in specs]


def _inference_function(module: torch.jit.ScriptModule, config: TritonModelConfig) -> Callable:
    """A PyTriton callable: numpy inputs by name -> TorchScript -> numpy outputs by name.

    Inputs and outputs with ``reshape: { shape: [ ] }`` travel as ``(B, 1)`` and reach the model as ``(B,)``.
    """
    squeeze_in = [bool(t.HasField("reshape")) for t in config.input]
    unsqueeze_out = [bool(t.HasField("reshape")) for t in config.output]

    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        arrays = [inputs[t.name][..., 0] if s else inputs[t.name] for t, s in zip(config.input, squeeze_in)]
        with torch.no_grad():
            result = module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))
        outputs = result if isinstance(result, tuple) else (result,)
        return {
            t.name: (o.numpy()[..., None] if u else o.numpy()) for t, o, u in zip(config.output, outputs, unsqueeze_out)
        }

    return batch(infer) if config.max_batch_size > 0 else sample(infer)


def bind_repository(triton: Triton, repository: Path) -> list[str]:
    """Bind every model folder of ``repository``; the model names."""
    names = []
    for folder in sorted(p for p in repository.iterdir() if (p / "config.pbtxt").is_file()):
        config = read_config(folder)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(folder / "1" / "model.pt"), map_location="cpu").eval()
        batching = config.max_batch_size > 0
        triton.bind(
            model_name=config.name,
            infer_func=_inference_function(module, config),
            inputs=_tensors(config.input),
            outputs=_tensors(config.output),
            config=ModelConfig(batching=batching, max_batch_size=config.max_batch_size if batching else 0),
            strict=True,
        )
        names.append(config.name)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, required=True, help="from python -m deploy.triton.export_repository")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--ready-file", type=Path, help="written with host:port once the models are loaded")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.http_port,
        grpc_address="127.0.0.1",
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
    )
    with Triton(config=config) as triton:
        names = bind_repository(triton, args.repository)
        triton.run()
        logger.info("serving %s on 127.0.0.1:%d", ", ".join(names), args.http_port)
        if args.ready_file:
            args.ready_file.write_text(f"127.0.0.1:{args.http_port}\n")
        stop = threading.Event()
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, lambda *_: stop.set())
        while not stop.wait(timeout=1.0) and triton.is_alive():
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
