"""Perfusion parameters from a deconvolved residue (seed 002 section 2.1).

- CBF = max R (ml/100 g/min);
- CBV = kappa x area(C) / area(C_a) x 100 (ml/100 g), areas by the trapezoidal rule;
- MTT = CBV / CBF (central volume theorem), in s;
- Tmax = time of the maximum of R (s), the SVD methods' estimate of the bolus arrival delay
  (BAD) of the tissue relative to the AIF.  For circulant residues a maximum in the second half
  means the tissue led the AIF; that is reported as 0 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.perfusion.deconvolution import Deconvolved, Method, deconvolve
from core.perfusion.simulation import KAPPA


@dataclass(frozen=True)
class PerfusionParameters:
    """Per-voxel parameters; every field has shape ``(V,)``."""

    cbf_ml_100g_min: np.ndarray
    cbv_ml_100g: np.ndarray
    mtt_s: np.ndarray
    tmax_s: np.ndarray


def blood_volume(tissue: np.ndarray, aif: np.ndarray, kappa: float = KAPPA) -> np.ndarray:
    """CBV (ml/100 g) from trapezoidal area ratios; ``aif`` is ``(N,)`` or ``(V, N)``.  Uniform sampling is assumed."""
    area_aif = np.trapezoid(np.asarray(aif, dtype=np.float64), axis=-1)
    curves = np.asarray(tissue)
    area_tissue = curves.sum(axis=-1, dtype=np.float64) - 0.5 * (curves[..., 0] + curves[..., -1])
    return np.asarray(kappa * 100.0 * area_tissue / area_aif)


def time_to_maximum(deconvolved: Deconvolved, n_frames: int, dt_s: float) -> np.ndarray:
    """Tmax (s) of every residue row; see the module docstring for circulant residues."""
    index = np.argmax(deconvolved.residue, axis=1)
    if deconvolved.circulant:
        index = np.where(index < n_frames, index, 0)
    return index * dt_s


def parameters_from_residue(
    deconvolved: Deconvolved, tissue: np.ndarray, aif: np.ndarray, dt_s: float, kappa: float = KAPPA
) -> PerfusionParameters:
    """CBF, CBV, MTT and Tmax of every voxel."""
    cbf = np.clip(deconvolved.residue.max(axis=1), 0.0, None)
    cbv = blood_volume(tissue, aif, kappa)
    with np.errstate(divide="ignore", invalid="ignore"):
        mtt = np.where(cbf > 0, cbv / cbf * 60.0, 0.0)
    return PerfusionParameters(cbf, cbv, mtt, time_to_maximum(deconvolved, np.shape(tissue)[1], dt_s))


def perfusion_parameters(
    tissue: np.ndarray, aif: np.ndarray, dt_s: float, method: Method = "osvd", kappa: float = KAPPA
) -> PerfusionParameters:
    """Deconvolve ``tissue`` (V, N) with ``aif`` and derive the parameters."""
    deconvolved = deconvolve(tissue, aif, dt_s, method, kappa)
    return parameters_from_residue(deconvolved, tissue, aif, dt_s, kappa)
