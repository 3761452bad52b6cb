"""Shared fixtures: per-lung samples of one small phantom case (made once per session)."""

import pytest

from core.simulation.spect import ReconParams
from core.simulation.study import StudySpec
from trainer.phantom_cohort import phantom_case_samples

TINY = StudySpec((64, 112, 112), (4.5, 3.6, 3.6), recon=ReconParams(iterations=2, subsets=6, matrix=96, n_slices=72))


@pytest.fixture(scope="session")
def phantom_samples():
    """Right and left lung samples of phantom seed 3 on a small grid."""
    return phantom_case_samples(3, TINY)
