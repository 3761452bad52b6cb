"""SVD deconvolution of Eq. 1, vectorised over voxels: sSVD, cSVD and oSVD (seed 002 section 2.4).

Eq. 1 in discrete form is ``kappa C = A R`` with ``A`` the AIF convolution matrix.  Every method
inverts ``A`` by a truncated SVD, setting singular values below ``threshold x max`` to zero:

- sSVD (Ostergaard et al. 1996): lower-triangular ``A``, global threshold 20 %;
- cSVD (Wu et al. 2003): block-circulant ``A`` of the AIF zero-padded to 2N, global threshold
  10 %; insensitive to the tracer arriving before or after the AIF;
- oSVD (Wu et al. 2003): the cSVD matrix with a threshold chosen per voxel, the smallest whose
  residue has an oscillation index ``OI <= 0.035``.  The search over thresholds is a bisection run
  for all voxels at once, which needs OI to fall as the threshold rises (it does, bar noise).

The convolution integral is discretised by linear interpolation of both curves between samples
(the "trapezoidal approximation" of seed 002 section 2.1, done exactly for piecewise-linear curves,
as Sourbron et al. 2007 do): interior entries ``dt (a[k-1] + 4 a[k] + a[k+1]) / 6`` for lag ``k``,
with the end corrections ``dt (a[i-1] + 2 a[i]) / 6`` in the first column and ``dt (2 a[0] + a[1]) / 6``
on the diagonal.  The circulant convolution is periodic and has no ends, so its entries are the
interior formula taken cyclically.  On noise-free curves at 1 s the lower-triangular matrix
reproduces the 0.1 s-grid convolution within about 1 % of the peak; the rectangle rule is 14 % off.

An AIF is either shared, shape ``(N,)``, or one per voxel, shape ``(V, N)`` (the simulated test
datasets give every curve its own AIF); tissue curves are ``(V, N)``.  Residues come back
flow-scaled in ml/100 g/min, so ``max R`` is the CBF; circulant methods return all 2N samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.errors import InputDataError
from core.perfusion.simulation import KAPPA, ML_100G_MIN_PER_ML_G_S

Method = Literal["ssvd", "csvd", "osvd"]
METHODS: tuple[Method, ...] = ("ssvd", "csvd", "osvd")

SSVD_THRESHOLD = 0.20
CSVD_THRESHOLD = 0.10
OSVD_OI_TARGET = 0.035
OSVD_THRESHOLDS = np.geomspace(0.002, 0.8, 64)
"""Candidate oSVD thresholds (fraction of the largest singular value), searched by bisection."""

CHUNK_VOXELS = 32_768


@dataclass(frozen=True)
class Deconvolved:
    """Flow-scaled residues (ml/100 g/min), one row per voxel, and the threshold each one used."""

    residue: np.ndarray  # (V, N) or (V, 2N)
    threshold: np.ndarray  # (V,)
    circulant: bool


def _interior_weights(aif: np.ndarray, cyclic: bool) -> np.ndarray:
    """``(a[k-1] + 4 a[k] + a[k+1]) / 6`` along the last axis; outside the curve zero, or wrapped if ``cyclic``."""
    if cyclic:
        return (np.roll(aif, 1, axis=-1) + 4.0 * aif + np.roll(aif, -1, axis=-1)) / 6.0
    padded = np.pad(aif, [(0, 0)] * (aif.ndim - 1) + [(1, 1)])
    return (padded[..., :-2] + 4.0 * padded[..., 1:-1] + padded[..., 2:]) / 6.0


def convolution_matrix(aif: np.ndarray, dt_s: float) -> np.ndarray:
    """Lower-triangular ``A`` (..., N, N): ``(A r)[i] = sum_j A[i, j] r[j]`` approximates ``(C_a ⊗ r)(t_i)``."""
    a = np.asarray(aif, dtype=np.float64)
    n = a.shape[-1]
    lag = np.arange(n)[:, None] - np.arange(n)[None, :]
    matrix = np.where(lag >= 0, _interior_weights(a, cyclic=False)[..., np.clip(lag, 0, None)], 0.0)
    previous = np.concatenate([np.zeros_like(a[..., :1]), a[..., :-1]], axis=-1)
    matrix[..., :, 0] = (previous + 2.0 * a) / 6.0
    diagonal = np.arange(1, n)
    matrix[..., diagonal, diagonal] = ((2.0 * a[..., 0] + a[..., 1]) / 6.0)[..., None]
    matrix[..., 0, 0] = 0.0
    return matrix * dt_s


def circulant_matrix(aif: np.ndarray, dt_s: float) -> np.ndarray:
    """Block-circulant ``D`` (..., 2N, 2N) of the AIF zero-padded to twice its length (Wu et al. 2003)."""
    aif = np.asarray(aif, dtype=np.float64)
    padded = np.concatenate([aif, np.zeros_like(aif)], axis=-1)
    a = _interior_weights(padded, cyclic=True) * dt_s
    size = a.shape[-1]
    lag = (np.arange(size)[:, None] - np.arange(size)[None, :]) % size
    return a[..., lag]


def oscillation_index(residue: np.ndarray) -> np.ndarray:
    """Wu et al. 2003: ``OI = sum |f[k] - 2 f[k-1] + f[k-2]| / (L max f)`` per row; infinite where ``max f <= 0``."""
    peak = residue.max(axis=-1)
    second = np.abs(residue[..., 2:] - 2.0 * residue[..., 1:-1] + residue[..., :-2]).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        oi = second / (residue.shape[-1] * peak)
    return np.where(peak > 0, oi, np.inf)


class _Svd:
    """SVD of one shared matrix or of one matrix per voxel, with the products deconvolution needs.

    A shared matrix is applied in float32 (one matrix product per voxel block dominates the run
    time); per-voxel matrices stay in float64.
    """

    def __init__(self, matrix: np.ndarray) -> None:
        u, s, vt = np.linalg.svd(matrix)
        self.shared = matrix.ndim == 2
        self.dtype: type[np.floating] = np.float32 if self.shared else np.float64
        self.u: np.ndarray = u.astype(self.dtype)
        self.vt: np.ndarray = vt.astype(self.dtype)
        self.inverse: np.ndarray = np.where(s > 0, 1.0 / np.where(s > 0, s, 1.0), 0.0).astype(self.dtype)
        self.relative = s / s[..., :1]

    def project(self, tissue: np.ndarray, rows: slice) -> np.ndarray:
        """``S^-1 U^T c`` for every tissue row (all singular values kept; :meth:`back` truncates).

        Tissue rows shorter than the matrix are zero-padded at the end (the circulant methods'
        padding), which is the same as using only the first rows of ``U``.
        """
        chunk: np.ndarray = tissue[rows].astype(self.dtype, copy=False)
        n = chunk.shape[1]
        if self.shared:
            return (chunk @ self.u[:n]) * self.inverse
        return np.einsum("vj,vji->vi", chunk, self.u[rows, :n]) * self.inverse[rows]

    def back(self, projected: np.ndarray, threshold: np.ndarray, rows: slice) -> np.ndarray:
        """``V (keep * S^-1 U^T c)`` keeping singular values ``>= threshold x max``, one threshold per row."""
        relative = self.relative if self.shared else self.relative[rows]
        kept: np.ndarray = projected * (relative >= threshold[:, None])
        if self.shared:
            return kept @ self.vt
        return np.einsum("vi,vij->vj", kept, self.vt[rows])


def _check(tissue: np.ndarray, aif: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    tissue = np.asarray(tissue)
    if tissue.dtype != np.float32:
        tissue = tissue.astype(np.float64)
    aif = np.asarray(aif, dtype=np.float64)
    if tissue.ndim != 2:
        raise InputDataError(f"tissue curves must be (voxels, frames); got shape {tissue.shape}")
    if aif.shape[-1] != tissue.shape[1] or aif.ndim not in (1, 2) or (aif.ndim == 2 and len(aif) != len(tissue)):
        raise InputDataError(f"AIF shape {aif.shape} does not match tissue curves {tissue.shape}")
    if dt_s <= 0:
        raise InputDataError(f"time step must be positive; got {dt_s} s")
    if not np.all(np.isfinite(tissue)) or not np.all(np.isfinite(aif)):
        raise InputDataError("tissue curves or AIF contain NaN or infinite values")
    if np.any(aif.max(axis=-1) <= 0):
        raise InputDataError("the AIF never rises above zero; check the AIF location and baseline subtraction")
    return tissue, aif


def _truncated(tissue: np.ndarray, svd: _Svd, threshold: float, scale: float) -> np.ndarray:
    out = np.empty((len(tissue), svd.vt.shape[-1]), dtype=svd.dtype)
    for start in range(0, len(tissue), CHUNK_VOXELS):
        rows = slice(start, start + CHUNK_VOXELS)
        projected = svd.project(tissue, rows)
        out[rows] = svd.back(projected, np.full(len(projected), threshold), rows) * scale
    return out


def ssvd(
    tissue: np.ndarray, aif: np.ndarray, dt_s: float, threshold: float = SSVD_THRESHOLD, kappa: float = KAPPA
) -> Deconvolved:
    """Standard truncated SVD on the lower-triangular AIF matrix."""
    tissue, aif = _check(tissue, aif, dt_s)
    svd = _Svd(convolution_matrix(aif, dt_s))
    residue = _truncated(tissue, svd, threshold, kappa * ML_100G_MIN_PER_ML_G_S)
    return Deconvolved(residue, np.full(len(tissue), threshold), circulant=False)


def csvd(
    tissue: np.ndarray, aif: np.ndarray, dt_s: float, threshold: float = CSVD_THRESHOLD, kappa: float = KAPPA
) -> Deconvolved:
    """Block-circulant truncated SVD with one global threshold."""
    tissue, aif = _check(tissue, aif, dt_s)
    svd = _Svd(circulant_matrix(aif, dt_s))
    residue = _truncated(tissue, svd, threshold, kappa * ML_100G_MIN_PER_ML_G_S)
    return Deconvolved(residue, np.full(len(tissue), threshold), circulant=True)


def osvd(
    tissue: np.ndarray,
    aif: np.ndarray,
    dt_s: float,
    oi_target: float = OSVD_OI_TARGET,
    kappa: float = KAPPA,
    thresholds: np.ndarray = OSVD_THRESHOLDS,
) -> Deconvolved:
    """Block-circulant SVD with the per-voxel threshold: the smallest of ``thresholds`` with ``OI <= oi_target``.

    A voxel whose OI stays above the target at every threshold gets the largest one.
    """
    tissue, aif = _check(tissue, aif, dt_s)
    svd = _Svd(circulant_matrix(aif, dt_s))
    grid = np.sort(np.asarray(thresholds, dtype=np.float64))
    scale = kappa * ML_100G_MIN_PER_ML_G_S
    residue = np.empty((len(tissue), 2 * tissue.shape[1]), dtype=svd.dtype)
    chosen = np.empty(len(tissue))
    for start in range(0, len(tissue), CHUNK_VOXELS):
        rows = slice(start, start + CHUNK_VOXELS)
        projected = svd.project(tissue, rows)
        lo = np.zeros(len(projected), dtype=np.int64)
        hi = np.full(len(projected), len(grid) - 1)
        while np.any(lo < hi):
            mid = (lo + hi) // 2
            smooth = oscillation_index(svd.back(projected, grid[mid], rows)) <= oi_target
            hi = np.where(smooth, mid, hi)
            lo = np.where(smooth, lo, mid + 1)
        chosen[rows] = grid[lo]
        residue[rows] = svd.back(projected, grid[lo], rows) * scale
    return Deconvolved(residue, chosen, circulant=True)


def deconvolve(tissue: np.ndarray, aif: np.ndarray, dt_s: float, method: Method, kappa: float = KAPPA) -> Deconvolved:
    """Dispatch to :func:`ssvd`, :func:`csvd` or :func:`osvd` with the seed's default regularisation."""
    if method == "ssvd":
        return ssvd(tissue, aif, dt_s, kappa=kappa)
    if method == "csvd":
        return csvd(tissue, aif, dt_s, kappa=kappa)
    if method == "osvd":
        return osvd(tissue, aif, dt_s, kappa=kappa)
    raise ValueError(f"deconvolution method must be one of {METHODS}; got {method!r}")
