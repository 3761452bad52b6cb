"""CT-ventilation surrogate used to calibrate how much of the phantom's function CT reveals.

The classical single-CT, HU-based surrogate (the "HU" metric of Guerrero/Kipritidis-type CT
ventilation imaging, here on one breath-hold CT) is ``V_HU = F (1 - F)`` with the air fraction
``F = -HU / 1000`` clipped to [0, 1], computed per CT voxel (so vessels and airway walls,
F ~ 0, contribute nothing) and then averaged over the function grid's blocks (2.5-3 mm,
close to SPECT-scale sampling), as CT ventilation images are computed before comparison.
Clinical studies report voxel-wise Spearman correlations of such CT ventilation surrogates
with nuclear-medicine ventilation of roughly 0.3-0.6 (VAMPIRE challenge, Kipritidis et al.,
Med Phys 2019); the phantom is tuned to land there.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from core.simulation.shapes import block_mean
from core.simulation.thorax import ThoraxPhantom, function_grid_for


def hu_ventilation_surrogate(hu: np.ndarray) -> np.ndarray:
    """``F (1 - F)`` with ``F = clip(-HU / 1000, 0, 1)``; float32, same shape."""
    air = np.clip(-hu.astype(np.float32) / 1000.0, 0.0, 1.0)
    return air * (1.0 - air)


def ct_ventilation_spearman(phantom: ThoraxPhantom) -> float:
    """Voxel-wise Spearman R between the HU surrogate and the true ventilation inside the lungs."""
    _, factors = function_grid_for(phantom.grid)
    surrogate = block_mean(hu_ventilation_surrogate(phantom.hu) * (phantom.lung_mask > 0), factors)
    inside = phantom.function_lung_mask > 0
    return float(spearmanr(surrogate[inside], phantom.ventilation[inside]).statistic)
