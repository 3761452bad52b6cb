"""Arterial input functions of seed 002, Eqs. 3-4.

Both functions return concentration in arbitrary units that the CT phantom later maps to HU of
enhancement; only ratios of curves enter CBF and CBV, so the unit cancels.  Times are in seconds.

- Gamma variate (Eq. 3), ``C(t) = a (t - t0)^b exp(-(t - t0) / tau)`` for ``t > t0``: the first
  pass alone.  Defaults are the shape of Wu et al. 2003 / Ostergaard et al. 1996 (b = 3,
  tau = 1.5 s), an arrival ``t0`` of 5 s and ``a`` chosen so the peak is 6 units, close to the
  Parker curve's first-pass peak.
- Parker et al. 2006 population AIF (Eq. 4): two Gaussians (first pass and recirculation) plus a
  sigmoid-gated exponential washout.  Parker's published parameters are in minutes and mM; they
  are converted to seconds here.

Seed 002 scales every AIF along the time and value axes by independent uniform factors in
[0.7, 1.3]; :func:`scaled_aif` does that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.errors import SimulationParameterError

AifKind = Literal["gamma", "parker"]
AIF_KINDS: tuple[AifKind, ...] = ("gamma", "parker")

GAMMA_B = 3.0
GAMMA_TAU_S = 1.5
GAMMA_T0_S = 5.0
GAMMA_PEAK = 6.0

# Parker et al. 2006, Table 1 (population average), converted from minutes to seconds.
_MIN = 60.0
PARKER_A = (0.809 * _MIN, 0.330 * _MIN)  # mM s
PARKER_T_S = (0.17046 * _MIN, 0.365 * _MIN)
PARKER_SIGMA_S = (0.0563 * _MIN, 0.132 * _MIN)
PARKER_ALPHA = 1.050  # mM, the "d" of seed 002 Eq. 4
PARKER_BETA_PER_S = 0.1685 / _MIN  # the "k" of Eq. 4
PARKER_S_PER_S = 38.078 / _MIN
PARKER_TAU_S = 0.483 * _MIN

SCALE_RANGE = (0.7, 1.3)


def gamma_variate_aif(
    t_s: np.ndarray,
    t0_s: float = GAMMA_T0_S,
    b: float = GAMMA_B,
    tau_s: float = GAMMA_TAU_S,
    peak: float = GAMMA_PEAK,
) -> np.ndarray:
    """Seed 002 Eq. 3, shifted to arrive at ``t0_s`` and scaled so its maximum is ``peak``.

    ``a`` of Eq. 3 follows from the peak: the maximum of ``t^b exp(-t/tau)`` is at ``t = b tau``.
    """
    if b <= 0 or tau_s <= 0:
        raise SimulationParameterError(f"gamma-variate AIF needs b > 0 and tau > 0; got b={b}, tau={tau_s} s")
    s = np.clip(np.asarray(t_s, dtype=np.float64) - t0_s, 0.0, None)
    a = peak / ((b * tau_s) ** b * np.exp(-b))
    return a * s**b * np.exp(-s / tau_s)


def parker_aif(t_s: np.ndarray) -> np.ndarray:
    """Seed 002 Eq. 4 with Parker et al.'s population parameters (t = 0 at injection)."""
    t = np.asarray(t_s, dtype=np.float64)
    out = np.zeros_like(t)
    for a_n, t_n, s_n in zip(PARKER_A, PARKER_T_S, PARKER_SIGMA_S):
        out += a_n / (s_n * np.sqrt(2.0 * np.pi)) * np.exp(-((t - t_n) ** 2) / (2.0 * s_n**2))
    out += PARKER_ALPHA * np.exp(-PARKER_BETA_PER_S * t) / (1.0 + np.exp(-PARKER_S_PER_S * (t - PARKER_TAU_S)))
    return out


@dataclass(frozen=True)
class AifShape:
    """One global AIF: its family and the seed's time and value scale factors."""

    kind: AifKind
    time_scale: float = 1.0
    value_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in AIF_KINDS:
            raise SimulationParameterError(f"AIF kind must be one of {AIF_KINDS}; got {self.kind!r}")
        if self.time_scale <= 0 or self.value_scale <= 0:
            raise SimulationParameterError(
                f"AIF scale factors must be positive; got time {self.time_scale}, value {self.value_scale}"
            )


def scaled_aif(shape: AifShape, t_s: np.ndarray) -> np.ndarray:
    """The AIF of ``shape`` at times ``t_s`` (s): ``value_scale * C(t / time_scale)``."""
    base = gamma_variate_aif if shape.kind == "gamma" else parker_aif
    return shape.value_scale * base(np.asarray(t_s, dtype=np.float64) / shape.time_scale)


def random_aif_shape(rng: np.random.Generator, kind: AifKind | None = None) -> AifShape:
    """A global AIF as seed 002 draws them: family at random unless given, both scales in [0.7, 1.3]."""
    chosen: AifKind = kind if kind is not None else AIF_KINDS[int(rng.integers(len(AIF_KINDS)))]
    time_scale, value_scale = rng.uniform(*SCALE_RANGE, size=2)
    return AifShape(chosen, float(time_scale), float(value_scale))
