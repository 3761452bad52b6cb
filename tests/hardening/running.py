"""Run ``python -m app`` in a subprocess and keep what the hardening tests check: exit code, log, peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from tests.app.conftest import APP_TIMEOUT_S
from tests.testdata import REPO_ROOT


@dataclass(frozen=True)
class AppRun:
    """One finished run of the command line.

    ``log`` is stdout and stderr together; ``peak_rss_mib`` the child's largest resident set size
    (``ru_maxrss`` of that process and its reaped children: the supervisor and its pipeline process).
    """

    returncode: int
    log: str
    peak_rss_mib: float
    output: Path


def run_cli(input_dir: Path, output: Path, *options: str | Path, env: dict[str, str] | None = None) -> AppRun:
    """``python -m app -i input_dir -o output *options`` from the repository root, killed after the app timeout."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOLOSCAN_")}
    environment.update(env or {})
    command = [sys.executable, "-m", "app", "-i", str(input_dir), "-o", str(output), *map(str, options)]
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
        watchdog = threading.Timer(APP_TIMEOUT_S, process.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)  # the rusage of this child only
        finally:
            watchdog.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        text = log.read()
    return AppRun(process.returncode, text, usage.ru_maxrss / 1024.0, output)
