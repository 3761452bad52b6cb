"""Fixtures of the application tests: selection rules, study folders and a runner for ``python -m app``."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from app.config import AppConfig
from core.series_selection import SelectionRules
from tests.core.dicom.synthetic_study import WrittenStudy, write_study
from tests.testdata import REAL_CT_DIR, REPO_ROOT

REAL_CT_FILES = ("01.dcm", "02.dcm", "03.dcm")
REAL_SEG_FILE = "liver_seg.dcm"
APP_TIMEOUT_S = 300
DEFAULT_STACK_LIMIT_BYTES = 8 * 1024 * 1024
"""The usual Linux default soft stack limit, below the 32 MiB that Holoscan asks for."""
SYNTHETIC_STUDY_SEED = 4242
SAMPLE_STUDY = REPO_ROOT / "dicom_samples" / "thorax_small"
BONE_STUDY = REPO_ROOT / "dicom_samples" / "bone_small"
CTP_STUDY = REPO_ROOT / "dicom_samples" / "ctp_small"
DSC_STUDY = REPO_ROOT / "dicom_samples" / "dsc_small"
ALL_LUNG_OUTPUTS = {
    "run_record.json",
    "lung_seg.dcm",
    "lung_function_seg.dcm",
    "perfusion_map.dcm",
    "ventilation_map.dcm",
    "key_images_01.dcm",
    "key_images_02.dcm",
    "key_images_03.dcm",
    "key_images_04.dcm",
    "lung_function_rtstruct.dcm",
    "lung_function_sr.dcm",
    "lung_function_report.dcm",
}
"""The files of a complete result for a CT with lungs."""

AppRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def rules() -> SelectionRules:
    """The application's default selection rules."""
    return AppConfig().selection


def _link_real_files(folder: Path, names: Sequence[str]) -> Path:
    missing = [n for n in names if not (REAL_CT_DIR / n).is_file()]
    assert not missing, f"third-party test data missing: {missing}; check out ../shared beside the repository"
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).symlink_to(REAL_CT_DIR / name)
    return folder


@pytest.fixture
def real_ct_folder(tmp_path: Path) -> Path:
    """A study folder of symbolic links to the three real CT slices (read in place, never copied)."""
    return _link_real_files(tmp_path / "real_ct", REAL_CT_FILES)


@pytest.fixture
def real_seg_folder(tmp_path: Path) -> Path:
    """A study folder holding only the real DICOM SEG: DICOM, but no series the app uses."""
    return _link_real_files(tmp_path / "seg_only", (REAL_SEG_FILE,))


@pytest.fixture(scope="module")
def synthetic_vq_study(tmp_path_factory: pytest.TempPathFactory) -> WrittenStudy:
    """A tiny synthetic study: CT 10x64x64, perfusion and ventilation SPECT 16x32x32 (see tests.core.dicom)."""
    return write_study(tmp_path_factory.mktemp("vq_study"), SYNTHETIC_STUDY_SEED)


def run_app_process(
    *args: str | Path,
    env: dict[str, str] | None = None,
    stack_limit_bytes: int | None = None,
    folder_form_from: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m app ARGS`` from the repository root; returns the completed process (text output).

    ``HOLOSCAN_*`` variables of the calling shell are dropped; ``env`` adds variables, and
    ``stack_limit_bytes`` sets the child's soft stack limit (the app must then raise it itself).
    ``folder_form_from``: run ``python <repository>/app ARGS`` (the folder as a script, MONAI Deploy's usual
    form) from that folder instead, without ``PYTHONPATH``.
    """
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOLOSCAN_")}
    environment.update(env or {})
    command, cwd = [sys.executable, "-m", "app"], REPO_ROOT
    if folder_form_from is not None:
        command, cwd = [sys.executable, str(REPO_ROOT / "app")], folder_form_from
        environment.pop("PYTHONPATH", None)

    def limit_stack() -> None:
        if stack_limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_STACK, (stack_limit_bytes, resource.getrlimit(resource.RLIMIT_STACK)[1]))

    return subprocess.run(
        [*command, *map(str, args)],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=APP_TIMEOUT_S,
        check=False,
        preexec_fn=limit_stack,
    )


@pytest.fixture(scope="session")
def sample_ct_paths() -> list[Path]:
    """The sample study's CT slices."""
    return sorted((SAMPLE_STUDY / "dicom").glob("CT_*.dcm"))


@pytest.fixture
def run_app() -> AppRunner:
    """:func:`run_app_process`, as a fixture."""
    return run_app_process
