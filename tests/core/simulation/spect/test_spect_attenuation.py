"""HU -> mu at 140.5 keV (bilinear model) and the NIST data behind it.

Units and tolerances (mu in 1/mm): water 0.01536 +- 0.5 % (NIST XCOM 0.1536 cm^2/g);
air (-1000 HU) 0 +- 1e-6; lung (-850 HU) 0.15 x water; cortical bone (1.92 g/cm^3, its
CT number at 70 keV) 0.0295 +- 1 %; continuity at 0 HU within 1e-7.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import SimulationParameterError
from core.simulation.spect import hu_to_mu_per_mm, linear_attenuation_per_mm


def test_water_air_lung_bone() -> None:
    mu_water = linear_attenuation_per_mm("water", 140.5)
    assert mu_water == pytest.approx(0.01536, rel=0.005)
    ct_w = linear_attenuation_per_mm("water", 70.0)
    hu_bone = (
        1000.0
        * (linear_attenuation_per_mm("bone_cortical", 70.0) - ct_w)
        / (ct_w - linear_attenuation_per_mm("air", 70.0))
    )
    mu = hu_to_mu_per_mm(np.array([-1000.0, -850.0, 0.0, hu_bone], dtype=np.float32))
    assert mu[0] == pytest.approx(0.0, abs=1e-6)
    assert mu[1] == pytest.approx(0.15 * mu_water, rel=1e-4)
    assert mu[2] == pytest.approx(mu_water, rel=1e-6)
    assert mu[3] == pytest.approx(0.0295, rel=0.01)


def test_shape_dtype_and_continuity() -> None:
    hu = np.array([[-2000.0, -1e-3], [1e-3, 3000.0]])
    mu = hu_to_mu_per_mm(hu)
    assert mu.shape == hu.shape and mu.dtype == np.float32
    assert mu[0, 0] == 0.0
    assert abs(float(mu[1, 0] - mu[0, 1])) < 1e-7


def test_energy_out_of_table_is_rejected() -> None:
    with pytest.raises(SimulationParameterError):
        hu_to_mu_per_mm(np.zeros(3), energy_kev=20.0)
