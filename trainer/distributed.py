"""Data-parallel training under ``torchrun``: one process per device, gradients averaged by DDP.

``torchrun`` starts the processes and tells each its place through the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); :func:`init_distributed` reads it and
joins the process group, with the ``gloo`` backend on the CPU and ``nccl`` on CUDA.  Without
``torchrun`` (no ``WORLD_SIZE``, or 1) it returns the single-process :data:`SINGLE` context, every
method of which is the identity, so a trainer that goes through it behaves exactly as before.

Conventions of the trainers that use it:

- every rank draws the same seeded permutation of the training samples per epoch and takes its own
  strided share (:meth:`Distributed.shard`), padded so that all ranks take the same number of steps;
  ``batch_size`` is per process, so one optimiser step sees ``batch_size * world_size`` samples;
- evaluation is split into contiguous shares (:meth:`Distributed.split`) whose result rows are
  gathered back in order (:meth:`Distributed.gather`), so the metrics equal those of one process;
- batch-norm running statistics are averaged over the ranks after every epoch
  (:meth:`Distributed.average_buffers`), so every rank holds the same model;
- only rank 0 (:attr:`Distributed.is_main`) writes checkpoints, history, reports and exports.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)

T = TypeVar("T")

TIMEOUT = timedelta(hours=2)
"""How long a rank waits for the others at a collective: rank 0 alone writes reports between epochs."""


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str = ""
    """``gloo`` or ``nccl`` once the process group is joined; empty for one process."""

    @property
    def enabled(self) -> bool:
        """Whether more than one process trains (a process group is joined)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This rank's device: ``cuda:<LOCAL_RANK>`` on CUDA, ``device`` otherwise."""
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` in :class:`DistributedDataParallel` (parameters broadcast from rank 0); itself for one process."""
        if not self.enabled:
            return model
        device = next(model.parameters()).device
        return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    def shard(self, order: np.ndarray) -> np.ndarray:
        """This rank's share of ``order`` (the same on every rank): every ``world_size``-th entry from ``rank``.

        ``order`` is first padded with its own first entries to a multiple of ``world_size`` (as
        :class:`torch.utils.data.DistributedSampler` does), so every rank gets the same number of samples.
        """
        if not self.enabled:
            return order
        padded = np.resize(order, -(-len(order) // self.world_size) * self.world_size)
        return padded[self.rank :: self.world_size]

    def split(self, items: Sequence[T]) -> list[T]:
        """This rank's contiguous share of ``items`` for evaluation (shares differ by at most one item)."""
        bounds = np.linspace(0, len(items), self.world_size + 1).round().astype(int)
        return list(items[bounds[self.rank] : bounds[self.rank + 1]])

    def gather(self, rows: list[Any]) -> list[Any]:
        """The ``rows`` of all ranks, concatenated in rank order (picklable rows; every rank gets them)."""
        if not self.enabled:
            return rows
        everyone: list[list[Any] | None] = [None] * self.world_size
        dist.all_gather_object(everyone, rows)
        return [row for part in everyone for row in part or []]

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the ranks."""
        if not self.enabled:
            return value
        total = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return float(total) / self.world_size

    def average_buffers(self, model: nn.Module) -> None:
        """Replace ``model``'s floating-point buffers by their mean over the ranks.

        Batch-norm running statistics are updated by every rank from its own samples (DDP only
        broadcasts rank 0's at each forward); their mean stands for all samples, and afterwards every
        rank holds the same model.
        """
        if not self.enabled:
            return
        for buffer in model.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
                buffer.div_(self.world_size)

    def check_in_sync(self, model: nn.Module) -> str:
        """SHA-256 of ``model``'s parameters and buffers; raises when they differ between the ranks.

        Raises
        ------
        RuntimeError
            When a rank's model differs from rank 0's (it must not after :meth:`average_buffers`).
        """
        digest = parameter_digest(model)
        digests = self.gather([digest])
        if len(set(digests)) > 1:
            raise RuntimeError(f"the ranks' models differ after training: {digests}; report this as a bug")
        return digest

    def close(self) -> None:
        """Leave the process group (after a last barrier, so no rank exits while another still talks)."""
        if self.enabled and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


SINGLE = Distributed()
"""One process, no process group."""


def parameter_digest(model: nn.Module) -> str:
    """SHA-256 (hex) over the names and float32 bytes of ``model``'s parameters and buffers."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group that ``torchrun`` set up, or :data:`SINGLE` without ``torchrun``.

    Parameters
    ----------
    device
        The configured device; its type picks the backend (``nccl`` for CUDA, ``gloo`` otherwise).

    Raises
    ------
    RuntimeError
        When ``WORLD_SIZE`` > 1 but ``RANK`` or ``LOCAL_RANK`` is missing (start with ``torchrun``).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE
    missing = [key for key in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if key not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={world_size} but {missing} not set; start distributed training with "
            "torchrun --nproc_per_node N -m <trainer> ..., or unset WORLD_SIZE for one process"
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    context = Distributed(
        rank=int(os.environ["RANK"]),
        world_size=world_size,
        local_rank=int(os.environ["LOCAL_RANK"]),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
        backend=backend,
    )
    if device.type == "cuda":
        torch.cuda.set_device(context.local_rank)
    dist.init_process_group(backend, rank=context.rank, world_size=world_size, timeout=TIMEOUT)
    logger.info(
        "rank %d/%d (local %d) joined the %s process group", context.rank, world_size, context.local_rank, backend
    )
    return context
