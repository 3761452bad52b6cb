"""Regional lung function of the phantom: supine gravity gradients and heterogeneity.

Supine, the dependent (posterior) lung is denser and better perfused and ventilated.
Perfusion gradients are steeper than ventilation gradients (West zones; measured
dependent/non-dependent ratios of about 1.5-2.5 for perfusion and 1.2-1.6 for
ventilation in supine humans).  On top, log-normal spatial heterogeneity with
~15-25 mm correlation, partially shared between ventilation and perfusion (V/Q
matching), and a density texture that CT shows, partly shared with ventilation (denser,
better-expanding regions ventilate more, which is what HU-based CT ventilation exploits).  Relative units: each field is
normalised to a mean of 1 over the lungs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.simulation.shapes import smooth_random_field


@dataclass(frozen=True)
class PhysiologyParams:
    """Per-case physiology; gradients are the relative change from the most anterior to the most posterior lung."""

    perfusion_gradient: float = 1.0
    ventilation_gradient: float = 0.5
    density_gradient: float = 0.6
    tissue_fraction_anterior: float = 0.115
    heterogeneity_sigma_v: float = 0.3
    heterogeneity_sigma_q: float = 0.3
    vq_coupling: float = 0.6
    correlation_mm: float = 18.0
    density_texture: float = 0.08
    density_ventilation_coupling: float = 0.6


def sample_physiology_params(rng: np.random.Generator) -> PhysiologyParams:
    """Draw a plausible supine physiology."""
    return PhysiologyParams(
        perfusion_gradient=rng.uniform(0.7, 1.4),
        ventilation_gradient=rng.uniform(0.3, 0.7),
        density_gradient=rng.uniform(0.4, 0.8),
        tissue_fraction_anterior=rng.uniform(0.10, 0.13),
        heterogeneity_sigma_v=rng.uniform(0.2, 0.4),
        heterogeneity_sigma_q=rng.uniform(0.2, 0.4),
        vq_coupling=rng.uniform(0.4, 0.8),
        correlation_mm=rng.uniform(12.0, 25.0),
        density_texture=rng.uniform(0.05, 0.1),
        density_ventilation_coupling=rng.uniform(0.5, 0.85),
    )


@dataclass
class BaseFunction:
    """Pathology-free fields on the function grid.

    ``expected_ventilation`` and ``expected_perfusion`` are what a CT-only predictor can know of
    the specific fields at best: the gravity gradients, with the log-normal heterogeneity replaced
    by its conditional expectation given the density texture, the only part of it the CT shows.
    With ``n_t = c n_shared + sqrt(1 - c^2) n_own`` (``c`` the density-ventilation coupling, all
    fields unit normal), ``E[n_shared | n_t] = c n_t`` with variance ``1 - c^2``, hence
    ``E[het_v | n_t] = exp(s_v c n_t - s_v^2 c^2 / 2)`` and, the perfusion exponent carrying
    ``rho n_shared`` and an independent part, ``E[het_q | n_t] = exp(s_q rho c n_t - s_q^2 rho^2 c^2 / 2)``.
    """

    tissue_fraction: np.ndarray
    specific_ventilation: np.ndarray
    specific_perfusion: np.ndarray
    expected_ventilation: np.ndarray
    expected_perfusion: np.ndarray


def base_function(
    dependency: np.ndarray,
    spacing_mm: tuple[float, float, float],
    params: PhysiologyParams,
    rng: np.random.Generator,
) -> BaseFunction:
    """Tissue fraction and specific ventilation/perfusion before pathology.

    Parameters
    ----------
    dependency
        ``(nz, ny, nx)`` float32, 0 at the most anterior (non-dependent) lung, 1 at the most posterior.
    spacing_mm
        Function-grid spacing (dz, dy, dx).
    """
    shape = dependency.shape
    n_shared = smooth_random_field(shape, spacing_mm, params.correlation_mm, rng)
    n_q = smooth_random_field(shape, spacing_mm, params.correlation_mm, rng)
    n_t_own = smooth_random_field(shape, spacing_mm, 0.6 * params.correlation_mm, rng)
    c = params.density_ventilation_coupling
    n_t = c * n_shared + np.sqrt(1.0 - c**2) * n_t_own  # part of the ventilation pattern shows as density
    rho = params.vq_coupling
    het_v = _lognormal(n_shared, params.heterogeneity_sigma_v)
    het_q = _lognormal(rho * n_shared + np.sqrt(1.0 - rho**2) * n_q, params.heterogeneity_sigma_q)
    centred = dependency - 0.5
    tissue = (
        params.tissue_fraction_anterior
        * (1.0 + params.density_gradient * dependency)
        * (1.0 + params.density_texture * n_t)
    )
    gradient_v = 1.0 + params.ventilation_gradient * centred
    gradient_q = 1.0 + params.perfusion_gradient * centred
    seen_v = _lognormal(n_t, params.heterogeneity_sigma_v * c)
    seen_q = _lognormal(n_t, params.heterogeneity_sigma_q * rho * c)
    return BaseFunction(
        tissue.astype(np.float32),
        (gradient_v * het_v).astype(np.float32),
        (gradient_q * het_q).astype(np.float32),
        (gradient_v * seen_v).astype(np.float32),
        (gradient_q * seen_q).astype(np.float32),
    )


def _lognormal(normal: np.ndarray, sigma: float) -> np.ndarray:
    """``exp(sigma n - sigma^2 / 2)``: mean 1 for a unit normal ``n``."""
    return np.exp(sigma * normal - 0.5 * sigma**2).astype(np.float32)
