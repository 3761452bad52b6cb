"""Shared fixtures: per-lung samples of one small phantom case (made once per session), and a tiny training set-up."""

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from core.simulation.spect import ReconParams
from core.simulation.study import StudySpec
from trainer.data import save_sample
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


def tiny_ddran_config(tmp_path: Path, phantom_samples, cases: Sequence[str], optim: str) -> Path:
    """A TOML configuration training a tiny DDRAN for 2 epochs of 1 step on copies of ``phantom_samples``.

    Each of ``cases`` (the "patients" of the split) gets a copy of the samples; ``optim`` holds the
    ``[optim]`` lines besides epochs, steps, precision and the monitored lungs.
    """
    samples = tmp_path / "samples"
    samples.mkdir()
    for case in cases:
        for sample in phantom_samples:
            save_sample(samples, dataclasses.replace(sample, case_id=case))
    config = tmp_path / "tiny.toml"
    config.write_text(
        f'[data]\nsamples = "{samples}"\ntest_fraction = 0.34\nfolds = 2\n'
        '[model]\nkind = "ddran"\nchannels = [4, 8, 16, 32]\n'
        f'[optim]\nepochs = 2\nmax_steps_per_epoch = 1\nprecision = "bf16"\n{optim}'
        "monitor_lungs = 1\n"
    )
    return config
