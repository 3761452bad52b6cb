"""Learning-rate schedules shared by the trainers."""

from __future__ import annotations


def tenfold_drop(learning_rate: float, drop_at: float, epochs: int, epoch: int) -> float:
    """The rate of ``epoch`` (0-based): ``learning_rate``, divided by 10 from ``drop_at`` of the ``epochs`` on.

    ``drop_at`` 1.0 keeps the rate constant (the drop would start after the last epoch).
    """
    return learning_rate * (0.1 if epoch >= int(drop_at * epochs) else 1.0)
