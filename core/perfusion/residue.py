"""Residue function and vascular transport function of seed 002, Eqs. 5-6.

- Eq. 5: ``R(t) = CBF (1 - H(t))`` with ``H`` the cumulative gamma transit-time distribution of
  shape ``alpha`` and scale ``beta``; the mean transit time is ``alpha * beta``.  ``alpha = 1`` gives
  the exponential residue, ``alpha = 100`` nearly a box-car.
- Eq. 6: ``VTF(t) = exp(-t / T_A) / T_A``, the exponential dispersion kernel with mean arterial
  transit time ``T_A``.  ``T_A = 0`` means no dispersion (a Dirac).
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaincc

from core.errors import SimulationParameterError


def residue_function(
    t_s: np.ndarray, cbf: float | np.ndarray, mtt_s: float | np.ndarray, alpha: float | np.ndarray
) -> np.ndarray:
    """Flow-scaled residue ``R(t)`` (Eq. 5) in the unit of ``cbf``.

    Parameters broadcast against each other; ``t_s`` is broadcast along the last axis, so
    ``residue_function(t[None, :], cbf[:, None], mtt[:, None], alpha[:, None])`` gives one curve per row.
    """
    mtt = np.asarray(mtt_s, dtype=np.float64)
    shape = np.asarray(alpha, dtype=np.float64)
    if np.any(mtt <= 0) or np.any(shape <= 0):
        raise SimulationParameterError("residue function needs MTT > 0 s and alpha > 0")
    t = np.clip(np.asarray(t_s, dtype=np.float64), 0.0, None)
    beta = mtt / shape
    return np.asarray(cbf, dtype=np.float64) * gammaincc(shape, t / beta)


def dispersion_kernel(t_s: np.ndarray, ta_s: float) -> np.ndarray:
    """Eq. 6 sampled at ``t_s`` (uniform, starting at 0) and normalised so its discrete sum times dt is 1.

    The discrete normalisation keeps the area of the dispersed AIF equal to that of the global AIF,
    which is what the continuous kernel does.  ``ta_s = 0`` returns the discrete Dirac.
    """
    t = np.asarray(t_s, dtype=np.float64)
    if ta_s < 0:
        raise SimulationParameterError(f"mean arterial transit time T_A must be >= 0 s; got {ta_s}")
    dt = float(t[1] - t[0])
    if ta_s == 0:
        kernel = np.zeros_like(t)
        kernel[0] = 1.0 / dt
        return kernel
    kernel = np.exp(-t / ta_s) / ta_s
    return kernel / (kernel.sum() * dt)
