"""Ordered-subsets expectation maximisation (Hudson & Larkin, IEEE TMI 13 (1994) 601-609).

For subset ``S_m`` with system matrix ``A_m`` and measured counts ``y_m``:

    f <- f / (A_m^T 1) * A_m^T ( y_m / (A_m f) ),

with bins where the model predicts no counts left out of the ratio.  With the system model of
:class:`~core.simulation.spect.projector.SpectProjector` (counts per MBq) the image is in MBq
per voxel of the activity that would give the measured counts.
"""

from __future__ import annotations

import logging

import torch

from core.errors import SimulationParameterError
from core.simulation.spect.projector import SpectProjector

logger = logging.getLogger(__name__)

_TINY = 1.0e-12

_FLOOR_FRACTION = 1.0e-12
"""Voxels below this fraction of the maximum are set to zero: OSEM drives empty voxels towards
zero geometrically, and float32 denormals would slow every later operation tenfold."""


def osem(projector: SpectProjector, projections: torch.Tensor, iterations: int) -> torch.Tensor:
    """Reconstruct an image from projections with OSEM, starting from a uniform image.

    Parameters
    ----------
    projector
        System model; its subsets are the OSEM subsets.
    projections
        ``(n_views, nz, nx)`` measured counts on the full detector, float32.
    iterations
        Number of passes through all subsets.

    Returns
    -------
    torch.Tensor
        ``(n_pixels, n_slices_support)`` float32 image on the projector's support, MBq per voxel
        of the count scale of ``projections``.
    """
    if iterations < 1:
        raise SimulationParameterError(f"iterations must be >= 1, got {iterations}")
    expected_shape = (projector.acquisition.n_views, projector.shape[0], projector.shape[2])
    if tuple(projections.shape) != expected_shape:
        raise SimulationParameterError(f"projections must have shape {expected_shape}, got {tuple(projections.shape)}")
    measured = [projector.crop(projections[torch.from_numpy(v)]).contiguous() for v in projector.subsets]
    sensitivity = [projector.backward_window(torch.ones_like(m), s) for s, m in enumerate(measured)]
    total_sensitivity = sum(float(s.sum()) for s in sensitivity)
    image = torch.full_like(sensitivity[0], float(projections.sum()) / max(total_sensitivity, _TINY))
    inverse_sensitivity = [torch.where(s > _TINY, 1.0 / s.clamp_min(_TINY), 0.0) for s in sensitivity]
    for iteration in range(iterations):
        for s, data in enumerate(measured):
            model = projector.forward_window(image, s)
            ratio = torch.where(model > _TINY, data / model.clamp_min(_TINY), 0.0)
            image = image * projector.backward_window(ratio, s) * inverse_sensitivity[s]
            image.masked_fill_(image < _FLOOR_FRACTION * float(image.max()), 0.0)
        logger.debug("OSEM iteration %d/%d done", iteration + 1, iterations)
    return image
