"""Fixtures shared by the test packages: the application run once per session on each bundled sample.

They live here, not in ``tests/app``, so that other packages (``tests/hardening``) reuse the same runs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.app.conftest import BONE_STUDY, CTP_STUDY, DSC_STUDY, SAMPLE_STUDY, run_app_process


def _run_sample(
    factory: pytest.TempPathFactory, name: str, study: Path
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The app run on ``study``'s DICOM folder into a new temporary folder: (process, output)."""
    output = factory.mktemp(name) / "out"
    return run_app_process("-i", study / "dicom", "-o", output), output


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The app run once per test session on the bundled sample study (the README's demo): (process, output)."""
    return _run_sample(tmp_path_factory, "sample_run", SAMPLE_STUDY)


@pytest.fixture(scope="session")
def bone_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The app run once per test session on the bundled bone SPECT/CT sample: (process, output)."""
    return _run_sample(tmp_path_factory, "bone_run", BONE_STUDY)


@pytest.fixture(scope="session")
def ctp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The app run once per test session on the bundled CT perfusion sample: (process, output)."""
    return _run_sample(tmp_path_factory, "ctp_run", CTP_STUDY)


@pytest.fixture(scope="session")
def dsc_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The app run once per test session on the bundled DSC perfusion MR sample: (process, output)."""
    return _run_sample(tmp_path_factory, "dsc_run", DSC_STUDY)
