"""The exponential moving average of a network's weights that the lung and DSC trainers can keep.

``torch.optim.swa_utils.AveragedModel`` with an EMA update, averaging the batch-norm statistics too;
a checkpoint stores it as ``ema_model`` (the averaged module's state) and ``ema_steps``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def moving_average(network: nn.Module, decay: float) -> AveragedModel | None:
    """The moving average of ``network`` with ``decay`` per step, or None when ``decay`` is 0 (off)."""
    if decay <= 0:
        return None
    return AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def average_state(ema: AveragedModel | None) -> dict[str, Any]:
    """The checkpoint entries of ``ema`` (none without one)."""
    if ema is None:
        return {}
    return {"ema_model": ema.module.state_dict(), "ema_steps": int(ema.n_averaged)}


def exported_weights(state: dict[str, Any], *, plain: bool = False) -> str:
    """The checkpoint key of the weights to export and test: ``ema_model`` when the run kept a moving average
    and ``plain`` is not asked for, else ``model`` (the last step's)."""
    return "ema_model" if "ema_model" in state and not plain else "model"


def restore_average(ema: AveragedModel | None, state: dict[str, Any], path: Path) -> None:
    """Load ``ema`` from the checkpoint ``state`` read from ``path``; nothing to do without one.

    Raises
    ------
    ValueError
        If the configuration keeps an average but the checkpoint holds none (it was started without).
    """
    if ema is None:
        return
    if "ema_model" not in state:
        raise ValueError(
            f"{path} holds no moving average of the weights but the configuration asks for one (optim.ema_decay): "
            "resume it with the configuration it was started with (config.json in the run folder, if it has one), "
            "or start a new run folder"
        )
    ema.module.load_state_dict(state["ema_model"])
    ema.n_averaged.fill_(state["ema_steps"])
