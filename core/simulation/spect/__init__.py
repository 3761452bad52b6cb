"""SPECT physics of the digital phantoms: attenuation, collimator blur, projection, OSEM.

Framework-free (numpy and torch only).  Public API::

    SpectAcquisition, ReconParams, spect_grid_for      # protocol and scanner grid
    hu_to_mu_per_mm                                    # CT -> mu at 140.5 keV
    simulate_spect, SpectResult                        # resample, project, Poisson, OSEM
    SpectProjector, osem                               # the system model and the reconstruction
    ParallelHoleCollimator, GE_DISCOVERY_670_LEHR      # collimator model
"""

from core.simulation.spect.acquisition import ReconParams, SpectAcquisition, spect_grid_for
from core.simulation.spect.attenuation import hu_to_mu_per_mm, linear_attenuation_per_mm
from core.simulation.spect.collimator import GE_DISCOVERY_670_LEHR, ParallelHoleCollimator
from core.simulation.spect.osem import osem
from core.simulation.spect.projector import SpectProjector
from core.simulation.spect.simulate import SpectResult, object_support, simulate_spect

__all__ = [
    "GE_DISCOVERY_670_LEHR",
    "ParallelHoleCollimator",
    "ReconParams",
    "SpectAcquisition",
    "SpectProjector",
    "SpectResult",
    "hu_to_mu_per_mm",
    "linear_attenuation_per_mm",
    "object_support",
    "osem",
    "simulate_spect",
    "spect_grid_for",
]
