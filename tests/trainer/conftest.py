"""Shared fixtures: per-lung samples of one small phantom case (made once per session)."""

import pytest
import torch

from core.simulation.spect import ReconParams
from core.simulation.study import StudySpec
from trainer.phantom_cohort import phantom_case_samples

TINY = StudySpec((64, 112, 112), (4.5, 3.6, 3.6), recon=ReconParams(iterations=2, subsets=6, matrix=96, n_slices=72))


@pytest.fixture(scope="session")
def phantom_samples():
    """Right and left lung samples of phantom seed 3 on a small grid."""
    return phantom_case_samples(3, TINY)


@pytest.fixture
def one_torch_thread():
    """Small convolutions run on one thread: intra-op threads only contend on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
