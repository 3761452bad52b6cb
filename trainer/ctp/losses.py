"""Seed 002's loss, Eq. 2: BAD + lambda1 local AIF + lambda2 reconstructed CTC + lambda3 smoothness of R.

Per curve (valid time points only; every term is the per-curve mean, then averaged over the batch)::

    L = (delta - delta_hat)^2                                   BAD in s
      + lambda1 mean(((C_a,local - C_a,local_hat) / s)^2)       s = max of the curve's global AIF
      + lambda2 mean(((C - C_hat) / s)^2)                        C the (noisy) input CTC
      + lambda3 mean((d2 R_hat / dt2 / 100)^2)                   R in ml/100 g/min, t in s

with the reconstruction ``C_hat = A(C_a,local_hat) R_hat / (kappa 6000)`` of Eq. 1, ``A`` the lower
triangular matrix of :func:`core.perfusion.deconvolution.convolution_matrix` (piecewise-linear
quadrature, the seed's "trapezoidal approximation") built with each curve's own time step.

The lambdas.  Seed 002 gives only the terms' relative contributions, about 1:1:7:1.  They are set
once, before training: ``lambda_i = ratio_i / ratio_0 * L_BAD,ref / L_i,ref`` over the first training
batches (:meth:`CtpLoss.calibrate`), then fixed and stored in the checkpoint.  The references
(:func:`trainer.ctp.train.calibrate`) are the size of each term's target: the terms of the zero
prediction (``mean(delta^2)``, ``mean((C_a,local / s)^2)``, ``mean((C / s)^2)``) and the curvature
of the true residues.  So each term counts as a relative error, and a network that is equally far
off on every target sees the terms in the ratio 1:1:7:1.  Calibrating on an untrained network was
tried and dropped: its nearly flat sorted residue has a curvature about 1e-3 of a real one (lambda3
would flatten every residue), and its CTC error is dominated by an overshoot that the first steps
remove, after which the CTC term (the only one that sets the residue's scale, hence the CBF) was
~1 % of the loss and the CBF was not learned.  Dividing by ``s`` makes the AIF and CTC terms
independent of the AIF's unit.
"""

from __future__ import annotations

import torch
from torch import nn

from core.perfusion.simulation import KAPPA, ML_100G_MIN_PER_ML_G_S

TERMS = ("bad", "local_aif", "ctc", "smoothness")
RESIDUE_UNIT = 100.0
"""ml/100 g/min; the smoothness term is computed on ``R / RESIDUE_UNIT`` (O(1))."""


def valid_mask(lengths: torch.Tensor, n: int) -> torch.Tensor:
    """``(B, n)`` float mask, 1 on the first ``lengths[b]`` points."""
    return (torch.arange(n, device=lengths.device)[None, :] < lengths[:, None]).float()


def reconstruct_tissue(
    local_aif: torch.Tensor, residue_ml_100g_min: torch.Tensor, dt_s: torch.Tensor, kappa: float = KAPPA
) -> torch.Tensor:
    """Eq. 1 forward: ``C = A(C_a) R / (kappa 6000)``, ``(B, N)`` from ``(B, N)`` AIFs and residues and ``(B,)`` dt.

    ``A`` is :func:`core.perfusion.deconvolution.convolution_matrix` (piecewise-linear quadrature:
    interior ``dt (a[k-1] + 4 a[k] + a[k+1]) / 6``, first column ``dt (a[i-1] + 2 a[i]) / 6``,
    diagonal ``dt (2 a[0] + a[1]) / 6``, ``A[0, 0] = 0``), one per curve.  Zero-padded curves give
    the same valid part as unpadded ones (the points after a curve are not zero; losses mask them).
    Needs ``N >= 2``.
    """
    n = local_aif.shape[1]
    device = local_aif.device
    padded = nn.functional.pad(local_aif, (1, 1))
    interior = (padded[:, :-2] + 4.0 * padded[:, 1:-1] + padded[:, 2:]) / 6.0
    row = torch.arange(n, device=device)[:, None]
    column = torch.arange(n, device=device)[None, :]
    lag = row - column
    matrix = interior[:, lag.clamp_min(0)] * (lag >= 0).to(local_aif.dtype)
    first_column = (padded[:, :-2] + 2.0 * local_aif) / 6.0
    matrix = torch.where(column == 0, first_column[:, :, None], matrix)
    diagonal = (2.0 * local_aif[:, 0] + local_aif[:, 1]) / 6.0
    matrix = torch.where((lag == 0) & (row > 0), diagonal[:, None, None], matrix)
    matrix = torch.where((row == 0) & (column == 0), torch.zeros_like(matrix), matrix)
    tissue = torch.bmm(matrix, residue_ml_100g_min[..., None]).squeeze(-1)
    return tissue * dt_s[:, None] / (kappa * ML_100G_MIN_PER_ML_G_S)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the valid points of each curve, then over the batch."""
    return ((values * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)).mean()


def loss_terms(
    outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The four unweighted terms of Eq. 2 (scalars), keyed by :data:`TERMS`.

    ``outputs`` is the network's ``(local_aif, residue, bad)``; ``batch`` holds ``tissue``,
    ``global_aif``, ``local_aif`` (B, N), ``lengths``, ``dt_s`` and ``delay_s`` (B,).
    """
    local_hat, residue_hat, bad_hat = outputs
    n = local_hat.shape[1]
    mask = valid_mask(batch["lengths"], n)
    scale = (batch["global_aif"] * mask).amax(dim=1, keepdim=True).clamp_min(1e-12)
    tissue_hat = reconstruct_tissue(local_hat, residue_hat, batch["dt_s"])
    r = residue_hat / RESIDUE_UNIT
    curvature = (r[:, 2:] - 2.0 * r[:, 1:-1] + r[:, :-2]) / batch["dt_s"][:, None] ** 2
    return {
        "bad": ((bad_hat - batch["delay_s"]) ** 2).mean(),
        "local_aif": _masked_mean(((local_hat - batch["local_aif"]) / scale) ** 2, mask),
        "ctc": _masked_mean(((tissue_hat - batch["tissue"]) / scale) ** 2, mask),
        "smoothness": _masked_mean(curvature**2, mask[:, 2:]),
    }


class CtpLoss(nn.Module):
    """Eq. 2 with lambdas calibrated once (see the module docstring); the lambdas are a buffer (checkpointed).

    Parameters
    ----------
    ratios : tuple of 4 float
        Wanted contributions of BAD, local AIF, CTC and smoothness at calibration (1, 1, 7, 1).
    """

    def __init__(self, ratios: tuple[float, ...] = (1.0, 1.0, 7.0, 1.0)) -> None:
        super().__init__()
        self.ratios = tuple(float(r) for r in ratios)
        self.register_buffer("lambdas", torch.ones(3))
        self.register_buffer("calibrated", torch.zeros((), dtype=torch.bool))

    def calibrate(self, term_means: dict[str, float]) -> torch.Tensor:
        """Set ``lambda_i = ratio_i / ratio_0 * L_BAD / L_i`` from mean unweighted terms; returns the lambdas."""
        bad = term_means["bad"]
        values = [
            self.ratios[i] / self.ratios[0] * bad / max(term_means[name], 1e-30) for i, name in enumerate(TERMS) if i
        ]
        self.lambdas.copy_(torch.tensor(values, dtype=self.lambdas.dtype))
        self.calibrated.fill_(True)
        return self.lambdas

    def weighted(self, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each term times its weight (1 for BAD)."""
        return {"bad": terms["bad"]} | {name: self.lambdas[i - 1] * terms[name] for i, name in enumerate(TERMS) if i}

    def forward(
        self, outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and the weighted terms."""
        parts = self.weighted(loss_terms(outputs, batch))
        return torch.stack(list(parts.values())).sum(), parts
