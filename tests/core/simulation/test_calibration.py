"""Regression guard for the CT-ventilation calibration (the full 20-phantom figure is in bench/).

The HU surrogate F(1-F) must neither read ventilation off the CT (R close to 1) nor be blind
to it (R close to 0): on a small cohort the median voxel-wise Spearman R stays within
0.2-0.7, a band around the 0.3-0.6 target that allows for the small sample.
"""

import numpy as np

from core.geometry import Grid
from core.simulation.calibration import ct_ventilation_spearman, hu_ventilation_surrogate
from core.simulation.thorax import make_thorax_phantom

GRID = Grid.centred((80, 144, 144), (3.6, 2.8, 2.8))


def test_surrogate_is_zero_for_air_and_tissue_and_peaks_at_half_air():
    values = hu_ventilation_surrogate(np.array([-1000.0, -500.0, 0.0, 40.0]))
    np.testing.assert_allclose(values, [0.0, 0.25, 0.0, 0.0])


def test_ct_reveals_ventilation_only_partly():
    values = [ct_ventilation_spearman(make_thorax_phantom(GRID, seed)) for seed in range(2000, 2006)]
    assert 0.2 <= float(np.median(values)) <= 0.7, values
