"""Fixtures shared by the test packages: the application run once per session on each bundled sample.

They live here, not in ``tests/app``, so that other packages (``tests/hardening``) reuse the same runs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.app.conftest import BONE_STUDY, CTP_STUDY, DSC_STUDY, SAMPLE_STUDY, run_app_process


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The app run once per test session on the bundled sample study (the README's demo): (process, output)."""
    output = tmp_path_factory.mktemp("sample_run") / "out"
    return run_app_process("-i", SAMPLE_STUDY / "dicom", "-o", output), output


@pytest.fixture(scope="session")
def bone_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The app run once per test session on the bundled bone SPECT/CT sample: (process, output)."""
    output = tmp_path_factory.mktemp("bone_run") / "out"
    return run_app_process("-i", BONE_STUDY / "dicom", "-o", output), output


@pytest.fixture(scope="session")
def ctp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The app run once per test session on the bundled CT perfusion sample: (process, output)."""
    output = tmp_path_factory.mktemp("ctp_run") / "out"
    return run_app_process("-i", CTP_STUDY / "dicom", "-o", output), output


@pytest.fixture(scope="session")
def dsc_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The app run once per test session on the bundled DSC perfusion MR sample: (process, output)."""
    output = tmp_path_factory.mktemp("dsc_run") / "out"
    return run_app_process("-i", DSC_STUDY / "dicom", "-o", output), output
