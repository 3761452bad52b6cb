"""Run dciodvfy (dicom3tools), the DICOM IOD validator, from tests.

Usage::

    from tests.dciodvfy import dciodvfy_errors
    assert dciodvfy_errors(path) == []

dciodvfy must be installed (``scripts/install_system_deps.sh``); a missing
validator is an error, never a skip, so that CI cannot pass without validating.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

DCIODVFY = "dciodvfy"
TIMEOUT_S = 120.0


def dciodvfy_messages(path: Path) -> list[str]:
    """All lines dciodvfy prints for ``path`` (the IOD name, ``Error - ...`` and ``Warning - ...`` lines).

    Raises
    ------
    RuntimeError
        If dciodvfy is not installed, or if it crashed without printing anything.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"no file to validate at {path}")
    executable = shutil.which(DCIODVFY)
    if executable is None:
        raise RuntimeError(
            "dciodvfy (Debian package dicom3tools) is not on PATH; install it with "
            "`sudo scripts/install_system_deps.sh` and run the tests again"
        )
    result = subprocess.run(
        [executable, str(path)], capture_output=True, text=True, errors="replace", timeout=TIMEOUT_S, check=False
    )
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    if not lines and result.returncode != 0:
        raise RuntimeError(f"dciodvfy exited with status {result.returncode} on {path} without any output")
    return lines


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error - ...`` (and fatal ``Abort - ...``) lines of dciodvfy for ``path``; empty for a valid object."""
    return [line for line in dciodvfy_messages(path) if line.startswith(("Error", "Abort"))]


def dciodvfy_warnings(path: Path) -> list[str]:
    """The ``Warning - ...`` lines of dciodvfy for ``path``."""
    return [line for line in dciodvfy_messages(path) if line.startswith("Warning")]
