"""OSIPI DSC reference curves (../shared/testdata/osipi_dsc): 14 tissue/AIF pairs at CNR 200.

OSIPI's pass criteria (their DSC test suite): CBV within 10 % or 1 ml/100 ml, CBF within 10 % or
15 ml/100 ml/min.  OSIPI's curves carry no haematocrit correction, so kappa = 1.
"""

import csv

import numpy as np
import pytest

from core.perfusion.parameters import perfusion_parameters
from tests.testdata import OSIPI_DSC_CSV

OSIPI_CSV = OSIPI_DSC_CSV


def _cases():
    with OSIPI_CSV.open() as handle:
        rows = list(csv.DictReader(handle))
    return [
        pytest.param(
            np.fromstring(r["C_tis"], sep=" "),
            np.fromstring(r["C_aif"], sep=" "),
            float(r["cbv"]),
            float(r["cbf"]),
            float(r["tr"]),
            id=r["label"],
        )
        for r in rows
    ]


def _within(estimate, truth, rel, absolute):
    return abs(estimate - truth) <= max(rel * truth, absolute)


def test_the_reference_file_has_14_cases():
    assert len(_cases()) == 14


@pytest.mark.parametrize(("tissue", "aif", "cbv", "cbf", "tr_s"), _cases())
def test_osvd_passes_osipi_tolerances(tissue, aif, cbv, cbf, tr_s):
    p = perfusion_parameters(tissue[None, :], aif, tr_s, "osvd", kappa=1.0)
    assert _within(p.cbv_ml_100g[0], cbv, 0.1, 1.0), f"CBV {p.cbv_ml_100g[0]:.2f} vs {cbv}"
    assert _within(p.cbf_ml_100g_min[0], cbf, 0.1, 15.0), f"CBF {p.cbf_ml_100g_min[0]:.2f} vs {cbf}"
