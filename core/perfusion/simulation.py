"""Simulated tissue concentration curves, seed 002 section 2.3 (Eqs. 1, 5-7, Figure 2).

For every curve:

1. a global AIF (gamma-variate or Parker, scaled 70-130 % in time and value, :mod:`core.perfusion.aif`);
2. the local AIF: the global one delayed by ``delta`` and convolved with the exponential VTF of
   mean arterial transit time ``T_A`` (Eqs. 6-7);
3. the flow-scaled residue function of Eq. 5 (gamma transit-time distribution, shape ``alpha``);
4. the tissue curve ``C(t) = (C_a,local ⊗ R)(t) / kappa`` (Eq. 1), every convolution on a fine
   0.1 s grid to keep the discretisation error small;
5. resampling to the acquisition's time step and length;
6. zero-mean Gaussian noise on the tissue curve at the curve's SNR.

Units: time in s; CBF in ml/100 g/min; the residue function used in the convolution is
``CBF / 6000`` per s (ml/g/s, with tissue density 1 g/ml folded into ``kappa``, as the seed does).
SNR in dB is a power ratio: ``SNR_dB = 10 log10(mean(C^2) / sigma^2)`` over the acquired clean curve.
Seed 002 does not define its SNR further; this is the definition of Welvaert & Rosseel 2013 (which
it cites) for a signal without baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy.signal import fftconvolve

from core.errors import SimulationParameterError
from core.perfusion.aif import AIF_KINDS, gamma_variate_aif, parker_aif
from core.perfusion.residue import dispersion_kernel, residue_function

KAPPA = 0.73
"""Seed 002: hematocrit and density correction of Eq. 1."""

FINE_DT_S = 0.1
ML_100G_MIN_PER_ML_G_S = 6000.0


@dataclass(frozen=True)
class CurveParameters:
    """Per-curve simulation parameters; every field is a 1-D array of the same length."""

    aif_kind: np.ndarray  # "gamma" or "parker"
    aif_time_scale: np.ndarray
    aif_value_scale: np.ndarray
    cbf_ml_100g_min: np.ndarray
    mtt_s: np.ndarray
    alpha: np.ndarray
    delay_s: np.ndarray
    ta_s: np.ndarray
    dt_s: np.ndarray
    n_frames: np.ndarray
    snr_db: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.cbf_ml_100g_min)
        for f in fields(self):
            value = getattr(self, f.name)
            if np.ndim(value) != 1 or len(value) != n:
                raise SimulationParameterError(f"CurveParameters.{f.name} must be 1-D of length {n}")
        if not set(np.unique(self.aif_kind)) <= set(AIF_KINDS):
            raise SimulationParameterError(f"aif_kind must be one of {AIF_KINDS}")
        checks = {
            "cbf_ml_100g_min": self.cbf_ml_100g_min >= 0,
            "mtt_s": self.mtt_s > 0,
            "alpha": self.alpha > 0,
            "delay_s": self.delay_s >= 0,
            "ta_s": self.ta_s >= 0,
            "dt_s": self.dt_s > 0,
            "n_frames": self.n_frames >= 2,
        }
        for name, ok in checks.items():
            if not np.all(ok):
                raise SimulationParameterError(f"CurveParameters.{name} is out of its physical range")

    def __len__(self) -> int:
        return len(self.cbf_ml_100g_min)

    def subset(self, index: np.ndarray | slice) -> CurveParameters:
        """The curves selected by ``index``."""
        return CurveParameters(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @property
    def cbv_ml_100g(self) -> np.ndarray:
        """Central volume theorem: CBV = CBF x MTT."""
        return self.cbf_ml_100g_min * self.mtt_s / 60.0


@dataclass(frozen=True)
class SimulatedCurves:
    """Curves at acquisition times, padded with zeros to the longest; ``lengths`` says how many are real.

    ``global_aif``, ``local_aif`` and ``tissue`` share the AIF's concentration unit; ``residue`` is the
    flow-scaled residue in ml/100 g/min (its value at t = 0 is the CBF).
    """

    params: CurveParameters
    t_s: np.ndarray  # (n, L)
    global_aif: np.ndarray
    local_aif: np.ndarray
    tissue_clean: np.ndarray
    tissue: np.ndarray
    residue: np.ndarray
    lengths: np.ndarray  # (n,)


def global_aifs(params: CurveParameters, t_s: np.ndarray) -> np.ndarray:
    """Global AIF of every curve at times ``t_s`` (1-D, shared) or ``(n, T)``; zero before injection."""
    t = np.broadcast_to(np.asarray(t_s, dtype=np.float64), (len(params), np.shape(t_s)[-1]))
    scaled_t = t / params.aif_time_scale[:, None]
    out = np.where(params.aif_kind[:, None] == "gamma", gamma_variate_aif(scaled_t), parker_aif(scaled_t))
    return np.where(t >= 0, out, 0.0) * params.aif_value_scale[:, None]


def _dispersed(curves: np.ndarray, ta_s: np.ndarray, t_fine: np.ndarray) -> np.ndarray:
    out = curves.copy()
    dispersed = ta_s > 0
    if np.any(dispersed):
        kernels = np.stack([dispersion_kernel(t_fine, float(ta)) for ta in ta_s[dispersed]])
        conv = fftconvolve(curves[dispersed], kernels, axes=1)[:, : len(t_fine)] * FINE_DT_S
        out[dispersed] = conv
    return out


def _resample(fine: np.ndarray, t_acq: np.ndarray) -> np.ndarray:
    """Linear interpolation of fine-grid curves (rows) at per-row times ``t_acq`` (n, L)."""
    pos = t_acq / FINE_DT_S
    lo = np.clip(np.floor(pos).astype(np.int64), 0, fine.shape[1] - 2)
    frac = pos - lo
    rows = np.arange(fine.shape[0])[:, None]
    return fine[rows, lo] * (1.0 - frac) + fine[rows, lo + 1] * frac


def simulate_curves(params: CurveParameters, rng: np.random.Generator, kappa: float = KAPPA) -> SimulatedCurves:
    """Simulate the curves described by ``params`` (see the module docstring for the steps)."""
    n = len(params)
    lengths = params.n_frames.astype(np.int64)
    longest = int(lengths.max())
    t_acq = np.arange(longest)[None, :] * params.dt_s[:, None]
    valid = np.arange(longest)[None, :] < lengths[:, None]
    t_end = float((t_acq * valid).max()) + 2 * FINE_DT_S
    t_fine = np.arange(0.0, t_end + FINE_DT_S, FINE_DT_S)

    global_fine = global_aifs(params, t_fine)
    delayed_fine = global_aifs(params, t_fine[None, :] - params.delay_s[:, None])
    local_fine = _dispersed(delayed_fine, params.ta_s, t_fine)
    residue_fine = residue_function(
        t_fine[None, :], params.cbf_ml_100g_min[:, None], params.mtt_s[:, None], params.alpha[:, None]
    )
    tissue_fine = (
        fftconvolve(local_fine, residue_fine / ML_100G_MIN_PER_ML_G_S, axes=1)[:, : len(t_fine)] * FINE_DT_S / kappa
    )

    def acquired(fine: np.ndarray) -> np.ndarray:
        return np.where(valid, _resample(fine, t_acq), 0.0)

    tissue_clean = acquired(tissue_fine)
    power = (tissue_clean**2).sum(axis=1) / lengths
    sigma = np.sqrt(power / 10.0 ** (params.snr_db / 10.0))
    noise = rng.standard_normal((n, longest)) * sigma[:, None]
    return SimulatedCurves(
        params=params,
        t_s=np.where(valid, t_acq, 0.0),
        global_aif=acquired(global_fine),
        local_aif=acquired(local_fine),
        tissue_clean=tissue_clean,
        tissue=np.where(valid, tissue_clean + noise, 0.0),
        residue=np.where(
            valid,
            residue_function(t_acq, params.cbf_ml_100g_min[:, None], params.mtt_s[:, None], params.alpha[:, None]),
            0.0,
        ),
        lengths=lengths,
    )
