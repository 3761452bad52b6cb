"""CT Hounsfield units to linear attenuation coefficients at the SPECT photon energy.

Bilinear model (the standard CT-based attenuation correction of SPECT/CT, e.g. Brown et al.,
*Appl. Radiat. Isot.* 66 (2008) 1206-1212):

* ``HU <= 0``: a mixture of air and water, ``mu = mu_w(E) (1 + HU / 1000)``
  (air is ~0.1 % of water and is neglected);
* ``HU > 0``: a mixture of water and ICRU cortical bone (1.92 g/cm^3),
  ``mu = mu_w(E) + HU (mu_b(E) - mu_w(E)) / HU_b``, where ``HU_b`` is the CT number of
  cortical bone at the effective energy of the CT beam
  ``HU_b = 1000 (mu_b(E_CT) - mu_w(E_CT)) / (mu_w(E_CT) - mu_air(E_CT))``.

Mass attenuation coefficients (total, with coherent scattering) are NIST X-ray Mass
Attenuation Coefficients (Hubbell & Seltzer, NIST Standard Reference Database 126),
interpolated log-log in energy.  At 140.5 keV this gives ``mu_w = 0.01536 /mm`` and
``mu_b = 0.0295 /mm``; with the default CT effective energy of 70 keV (a filtered 120 kVp
beam) ``HU_b = 1595`` and the slope above 0 HU is ``8.8e-6 /mm per HU``.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from core.errors import SimulationParameterError

logger = logging.getLogger(__name__)

_ENERGY_KEV = np.array([40.0, 50.0, 60.0, 80.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0, 600.0])
_MASS_ATT_CM2_PER_G = {
    "water": np.array([0.2683, 0.2269, 0.2059, 0.1837, 0.1707, 0.1505, 0.1370, 0.1186, 0.1061, 0.09687, 0.08956]),
    "air": np.array([0.2485, 0.2080, 0.1875, 0.1662, 0.1541, 0.1356, 0.1233, 0.1067, 0.09549, 0.08712, 0.08055]),
    "bone_cortical": np.array(
        [0.6655, 0.4242, 0.3148, 0.2229, 0.1855, 0.1480, 0.1309, 0.1113, 0.09908, 0.09022, 0.08332]
    ),
}
_DENSITY_G_PER_CM3 = {"water": 1.0, "air": 1.205e-3, "bone_cortical": 1.92}

TC99M_ENERGY_KEV = 140.5
"""Photon energy of Tc-99m, keV."""

CT_EFFECTIVE_ENERGY_KEV = 70.0
"""Default effective energy of a filtered 120 kVp CT beam, keV."""


def linear_attenuation_per_mm(material: str, energy_kev: float) -> float:
    """Linear attenuation coefficient of a NIST material in 1/mm.

    Parameters
    ----------
    material
        ``'water'``, ``'air'`` or ``'bone_cortical'`` (ICRU cortical bone).
    energy_kev
        Photon energy in keV, within 40-600 keV.
    """
    if material not in _MASS_ATT_CM2_PER_G:
        raise SimulationParameterError(f"material must be one of {sorted(_MASS_ATT_CM2_PER_G)}, got {material!r}")
    if not _ENERGY_KEV[0] <= energy_kev <= _ENERGY_KEV[-1]:
        raise SimulationParameterError(
            f"energy_kev must be within {_ENERGY_KEV[0]:.0f}-{_ENERGY_KEV[-1]:.0f} keV, got {energy_kev}"
        )
    log_mu = np.interp(np.log(energy_kev), np.log(_ENERGY_KEV), np.log(_MASS_ATT_CM2_PER_G[material]))
    return float(np.exp(log_mu) * _DENSITY_G_PER_CM3[material] / 10.0)


def hu_to_mu_per_mm(
    hu: np.ndarray,
    energy_kev: float = TC99M_ENERGY_KEV,
    ct_effective_energy_kev: float = CT_EFFECTIVE_ENERGY_KEV,
) -> np.ndarray:
    """Convert CT numbers to linear attenuation coefficients (bilinear model).

    Parameters
    ----------
    hu
        CT numbers in HU, any shape.
    energy_kev
        Emission photon energy in keV (140.5 for Tc-99m).
    ct_effective_energy_kev
        Effective energy of the CT beam, keV; sets the CT number of cortical bone.

    Returns
    -------
    numpy.ndarray
        float32 array of the shape of ``hu``: mu in 1/mm, >= 0.
    """
    mu_w = linear_attenuation_per_mm("water", energy_kev)
    mu_b = linear_attenuation_per_mm("bone_cortical", energy_kev)
    ct_w = linear_attenuation_per_mm("water", ct_effective_energy_kev)
    ct_b = linear_attenuation_per_mm("bone_cortical", ct_effective_energy_kev)
    ct_air = linear_attenuation_per_mm("air", ct_effective_energy_kev)
    hu_bone = 1000.0 * (ct_b - ct_w) / (ct_w - ct_air)
    values = np.asarray(hu, dtype=np.float32)
    h = torch.from_numpy(np.ascontiguousarray(values))
    mu = h.clamp(max=0.0).mul_(mu_w / 1000.0)
    mu.add_(h.clamp(min=0.0), alpha=(mu_b - mu_w) / hu_bone).add_(mu_w).clamp_(min=0.0)
    return mu.numpy().reshape(values.shape)
