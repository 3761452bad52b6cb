"""Run the application on a study folder: check the folders, run the graph, publish the output.

This is the Python API; ``python -m app`` is a thin command line over :func:`run`.

The output folder ends up holding either the complete result or nothing: the graph writes
into a hidden working folder next to it, which is moved into place only when the run
succeeds and removed when it fails.  Nothing is ever written into the input folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.config import AppConfig, RunSettings
from app.supervisor import note_work_dir
from core.errors import PerfusionMapError
from core.series_selection import FolderScan, require_ct, scan_folder, select_series

logger = logging.getLogger(__name__)

WORK_DIR_SUFFIX = ".partial-"
"""Working folders are named ``.<output name>.partial-XXXX`` next to the output folder."""

_LISTED_FILES = 5


class UsageError(PerfusionMapError):
    """Raised when the input or output folder given to the application cannot be used."""


@dataclass(frozen=True)
class RunOutcome:
    """Where a successful run put its results and how long it took (seconds, wall clock)."""

    output_dir: Path
    run_record: Path
    wall_s: float


def run(input_dir: Path, output_dir: Path, config: AppConfig | None = None) -> RunOutcome:
    """Process the study in ``input_dir`` and write the results to ``output_dir``.

    Parameters
    ----------
    input_dir
        Folder holding the study's DICOM files (searched recursively; only read).
    output_dir
        Folder for the results: new, or existing and empty.
    config
        Selection rules and output names; the defaults of :class:`app.config.AppConfig` if None.

    Returns
    -------
    RunOutcome

    Raises
    ------
    UsageError
        If the input folder is missing, empty or holds no DICOM file, or the output folder
        is not empty, is a file, lies inside the input folder or cannot be created.
    NoMatchingSeriesError
        If the study holds no chest CT (every result is computed from it).
    InputDataError
        If a chosen series cannot be converted (broken pixel data, unsupported geometry).
    """
    config = config or AppConfig()
    started_at, started_perf_s = datetime.now(UTC), time.perf_counter()
    input_dir, output_dir = Path(input_dir).absolute(), Path(output_dir).absolute()
    check_output_folder(input_dir, output_dir)
    scan = check_input_folder(input_dir)
    require_ct(select_series(scan.series, config.selection))  # fails fast, before the framework starts
    work_dir = _make_work_dir(output_dir)
    skipped = (*(d.path for d in scan.damaged_files), *scan.directory_files)
    settings = RunSettings(input_dir, output_dir, work_dir, started_at, started_perf_s, config, skipped)
    try:
        _run_graph(settings)
        if not (work_dir / config.run_record_name).is_file():
            # Holoscan handles SIGINT itself: an interrupted graph can return without an error
            raise RuntimeError("the graph stopped before it wrote the run record (interrupted?); nothing was published")
        _publish(work_dir, output_dir)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    wall_s = time.perf_counter() - started_perf_s
    logger.info("Done in %.1f s; results in %s", wall_s, output_dir)
    return RunOutcome(output_dir, output_dir / config.run_record_name, wall_s)


def check_input_folder(input_dir: Path) -> FolderScan:
    """The DICOM headers under ``input_dir``.

    Raises
    ------
    UsageError
        If the folder is missing, not a folder, unreadable, empty, or holds no DICOM Part 10 file.
    """
    if not input_dir.exists():
        raise UsageError(f"input folder {input_dir} does not exist")
    if not input_dir.is_dir():
        raise UsageError(f"input {input_dir} is a file; give the folder that holds the study's DICOM files")
    try:
        scan = scan_folder(input_dir)
    except OSError as error:
        raise UsageError(f"cannot read the input folder {input_dir}: {error}") from error
    if scan.n_files == 0:
        raise UsageError(f"input folder {input_dir} is empty")
    if scan.n_dicom_files == 0:
        raise UsageError(
            f"input folder {input_dir} holds {scan.n_files} file(s) but no DICOM file "
            "(DICOM Part 10 files start with a 128-byte preamble and 'DICM')"
        )
    logger.info("Input: %d DICOM file(s) in %s", scan.n_dicom_files, input_dir)
    if scan.non_dicom_files:
        names = ", ".join(str(p.relative_to(input_dir)) for p in scan.non_dicom_files[:_LISTED_FILES])
        more = "" if len(scan.non_dicom_files) <= _LISTED_FILES else ", ..."
        logger.info("Ignoring %d file(s) that are not DICOM: %s%s", len(scan.non_dicom_files), names, more)
    if scan.damaged_files:
        listed = "; ".join(f"{d.path.relative_to(input_dir)}: {d.problem}" for d in scan.damaged_files[:_LISTED_FILES])
        more = "" if len(scan.damaged_files) <= _LISTED_FILES else "; ..."
        logger.warning(
            "Ignoring %d damaged DICOM file(s) (%s%s); if a series the app needs is incomplete without them, "
            "send it again",
            len(scan.damaged_files),
            listed,
            more,
        )
    return scan


def check_output_folder(input_dir: Path, output_dir: Path) -> None:
    """Check that ``output_dir`` can receive a complete result and lies outside ``input_dir``.

    Raises
    ------
    UsageError
        If ``output_dir`` is a file, is not empty, or is (inside) the input folder.
    """
    if output_dir.resolve().is_relative_to(input_dir.resolve()):
        raise UsageError(f"output folder {output_dir} is inside the input folder {input_dir}; choose another")
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"output {output_dir} is a file; give a new or empty folder")
    if output_dir.is_dir() and any(output_dir.iterdir()):
        raise UsageError(f"output folder {output_dir} is not empty; give a new or empty folder")


def _run_graph(settings: RunSettings) -> None:
    """Build and run the MONAI Deploy application (imported here: importing Holoscan takes seconds)."""
    from app.app import PerfusionMapApp

    PerfusionMapApp(settings).run()


def _make_work_dir(output_dir: Path) -> Path:
    """A new hidden folder next to ``output_dir``, or inside it where its parent is read-only.

    Its permissions follow the umask, as those of a folder made with ``mkdir`` would.
    """
    try:
        output_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"cannot create the output folder {output_dir} ({error.strerror}): give a new or empty folder "
            "on a writable disk"
        ) from None
    try:
        work_dir = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}{WORK_DIR_SUFFIX}", dir=output_dir.parent))
    except OSError as error:
        if not output_dir.is_dir():
            raise UsageError(
                f"cannot create the output folder {output_dir}: its parent is not writable ({error.strerror})"
            ) from None
        try:
            work_dir = Path(tempfile.mkdtemp(prefix=WORK_DIR_SUFFIX, dir=output_dir))
        except OSError as inner:
            raise UsageError(f"cannot write into the output folder {output_dir} ({inner.strerror})") from None
    note_work_dir(work_dir)  # so that ``python -m app`` can remove it if this process is stopped
    umask = os.umask(0)
    os.umask(umask)
    work_dir.chmod(0o777 & ~umask)
    return work_dir


def _publish(work_dir: Path, output_dir: Path) -> None:
    """Move the finished ``work_dir`` to ``output_dir`` (missing or empty)."""
    try:
        os.rename(work_dir, output_dir)  # atomic: output_dir is missing or an empty folder
    except OSError:
        # A mount point, another file system, or work_dir inside output_dir: move the entries.
        output_dir.mkdir(exist_ok=True)
        for entry in sorted(work_dir.iterdir()):
            shutil.move(entry, output_dir / entry.name)
        work_dir.rmdir()
