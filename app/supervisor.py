"""``python -m app`` and ``python -m app.pacs`` run the pipeline in a child process and handle interruptions.

While the graph runs, Holoscan installs its own SIGINT handler: the Python code never sees
``KeyboardInterrupt``, and after a few seconds Holoscan ends the process with exit code 1, leaving
the working folder behind.  So the command is two processes:

* this *supervisor*, which imports nothing heavy, starts the pipeline process with the 32 MiB
  stack limit Holoscan asks for and waits for it;
* the *pipeline process* (``app.__main__.main``, or ``app.pacs.main`` for ``python -m app.pacs``),
  which tells the supervisor where its working folder (and a pulled study) is as soon as it has
  made it (one line each in a note file named by :data:`WORK_DIR_NOTE_ENV`).

On Ctrl-C (SIGINT) or SIGTERM (``docker stop``), the supervisor passes the signal on, waits for the
pipeline process to end (killing it after :data:`STOP_GRACE_S`), removes its working folder unless
the results were already published, and exits 130.  A pipeline process killed by a signal (out of
memory, a crash in native code) gets the same clean-up and exit code 1.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

CHILD_ENV = "PERFUSION_MAP_PIPELINE_PROCESS"
"""Set in the pipeline process's environment: ``python -m app`` then runs the pipeline itself."""
WORK_DIR_NOTE_ENV = "PERFUSION_MAP_WORK_DIR_NOTE"
"""File the pipeline process writes its working folder's path into."""
STOP_GRACE_S = 30.0
"""How long the pipeline process may take to stop after the signal before it is killed."""
STACK_LIMIT_BYTES = 32 * 1024 * 1024
"""Holoscan warns, and may crash in deep recursion, below this stack size limit."""
EXIT_INTERNAL_ERROR = 1
EXIT_INTERRUPTED = 130

logger = logging.getLogger("app")


class _StopSignalError(BaseException):
    """SIGINT or SIGTERM reached the supervisor."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def supervise(argv: Sequence[str], log_format: str, module: str = "app") -> int:
    """Run ``python -m MODULE ARGV`` as the pipeline process; its exit code, or 130 when interrupted."""
    note_fd, note_name = tempfile.mkstemp(prefix="perfusion-map-", suffix=".workdir")
    os.close(note_fd)
    note = Path(note_name)
    environment = {**os.environ, CHILD_ENV: "1", WORK_DIR_NOTE_ENV: str(note)}
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    child: subprocess.Popen[bytes] | None = None
    try:
        child = subprocess.Popen([sys.executable, "-m", module, *argv], env=environment, preexec_fn=_raise_stack_limit)
        code = child.wait()
        if code < 0:
            _configure_logging(log_format)
            logger.error(
                "the pipeline process was killed by %s (out of memory?); the output folder was left unchanged",
                signal.Signals(-code).name,
            )
            _remove_work_dir(note)
            return EXIT_INTERNAL_ERROR
        return code
    except _StopSignalError as stop:
        _configure_logging(log_format)
        if child is not None:
            _stop(child, stop.signum)
        _remove_work_dir(note)
        logger.error("interrupted; the output folder was left unchanged")
        return EXIT_INTERRUPTED
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        note.unlink(missing_ok=True)


def note_work_dir(folder: Path) -> None:
    """In the pipeline process: tell the supervisor about a folder to remove if it is stopped (no-op without one)."""
    note = os.environ.get(WORK_DIR_NOTE_ENV)
    if note:
        with Path(note).open("a", encoding="utf-8") as lines:
            lines.write(f"{folder}\n")


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _StopSignalError(signum)


def _stop(child: subprocess.Popen[bytes], signum: int) -> None:
    """Pass ``signum`` on (a terminal's Ctrl-C has already reached it) and wait; kill after the grace time."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        child.send_signal(signum)
        child.wait(timeout=STOP_GRACE_S)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _remove_work_dir(note: Path) -> None:
    """Remove the folders the pipeline process noted (its working folder, a pulled study) that are still there."""
    try:
        named = note.read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    for folder in filter(None, (line.strip() for line in named)):
        if Path(folder).is_dir():
            shutil.rmtree(folder, ignore_errors=True)


def _raise_stack_limit() -> None:
    """In the child before exec: a 32 MiB soft stack limit where the hard limit allows it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    too_low = soft != resource.RLIM_INFINITY and soft < STACK_LIMIT_BYTES
    if too_low and (hard == resource.RLIM_INFINITY or hard >= STACK_LIMIT_BYTES):
        resource.setrlimit(resource.RLIMIT_STACK, (STACK_LIMIT_BYTES, hard))


def _configure_logging(log_format: str) -> None:
    """The pipeline process's log format for the supervisor's own one or two lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(log_format, datefmt="%H:%M:%S"))
    logging.basicConfig(level="INFO", handlers=[handler], force=True)
