"""Networks of the seed papers, one per file, each scriptable with ``torch.jit.script``.

- :class:`~trainer.networks.arnn.ARNN`: attention residual network, CT -> perfusion (seed 000, DL-CTPM).
- :class:`~trainer.networks.ddran.DDRAN`: the same encoder shared by a perfusion and a ventilation decoder (seed 001).
"""

from trainer.networks.arnn import ARNN
from trainer.networks.ddran import DDRAN

__all__ = ["ARNN", "DDRAN"]
