"""CT numbers (HU) of the phantom tissues and CT noise.

Tissue values are typical 120 kVp figures (e.g. fat -100, muscle 45, liver 60, blood 40,
cancellous bone 250, cortical bone at CT resolution ~900 after partial volume).  Lung
parenchyma is computed from its tissue fraction ``t``: ``HU = -1000 + 1040 t``
(air -1000, lung tissue and blood ~ +40).  CT noise is Gaussian, slightly correlated
in-plane as after filtered back-projection, with a standard deviation of 10-25 HU for a
standard-dose chest CT with a soft-tissue kernel.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from core.labels import Tissue

TISSUE_HU = {
    Tissue.OUTSIDE_AIR: -1000.0,
    Tissue.TABLE: -350.0,
    Tissue.FAT: -100.0,
    Tissue.MUSCLE: 45.0,
    Tissue.CORTICAL_BONE: 900.0,
    Tissue.MARROW: 250.0,
    Tissue.MEDIASTINUM: -70.0,
    Tissue.HEART: 40.0,
    Tissue.GREAT_VESSEL: 42.0,
    Tissue.AIRWAY: -1000.0,
    Tissue.LUNG: -850.0,
    Tissue.PULMONARY_VESSEL: 40.0,
    Tissue.LIVER: 60.0,
    Tissue.SPLEEN: 50.0,
    Tissue.STOMACH: 25.0,
    Tissue.KIDNEY: 35.0,
    Tissue.BLADDER: 8.0,
    Tissue.SPINAL_CANAL: 20.0,
    Tissue.EFFUSION: 12.0,
    Tissue.TUMOUR: 38.0,
    Tissue.OESOPHAGUS: 35.0,
    Tissue.CARTILAGE: 110.0,
}
LUNG_TISSUE_HU = 40.0
HU_MIN, HU_MAX = -1024.0, 3071.0


def tissue_lut() -> np.ndarray:
    """``(256,)`` float32 lookup table label -> HU."""
    lut = np.full(256, -1000.0, dtype=np.float32)
    for tissue, hu in TISSUE_HU.items():
        lut[int(tissue)] = hu
    return lut


def lung_hu(tissue_fraction: np.ndarray) -> np.ndarray:
    """HU of lung parenchyma from its tissue (non-air) volume fraction."""
    return (-1000.0 + (1000.0 + LUNG_TISSUE_HU) * np.clip(tissue_fraction, 0.0, 1.0)).astype(np.float32)


def add_ct_noise(hu: np.ndarray, sigma_hu: float, rng: np.random.Generator) -> None:
    """Add in-plane correlated Gaussian noise of standard deviation ``sigma_hu`` to ``hu`` (in place)."""
    if sigma_hu <= 0:
        return
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    ndimage.gaussian_filter(noise, sigma=(0.0, 0.7, 0.7), output=noise, truncate=3.0)
    # a Gaussian of sigma s (voxels) in 2-D reduces white-noise std by 1 / (2 s sqrt(pi))
    noise *= sigma_hu * 2.0 * 0.7 * np.sqrt(np.pi)
    hu += noise


def to_stored_hu(hu: np.ndarray) -> np.ndarray:
    """Round and clip to the 12-bit CT range, int16."""
    return np.clip(np.rint(hu), HU_MIN, HU_MAX).astype(np.int16)
