"""Command line: ``python -m app.pacs --url URL --study UID -o OUT [--push] [processing options]``.

Pulls the study ``UID`` from the DICOMweb service at ``URL`` (WADO-RS) into a temporary folder
(under ``$TMPDIR``), runs the application on it into ``OUT`` exactly as ``python -m app`` would,
removes the temporary folder, and with ``--push`` stores every DICOM result of ``OUT`` back into
the same study (STOW-RS to ``/studies/UID``).  The exit codes are those of ``python -m app``
(see ``app/__main__.py``), with 6 for any PACS failure; when only the push fails, the results stay
in ``OUT``.  The Python API is :func:`pull_run_push`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app import __version__
from app.__main__ import (
    LOG_FORMAT,
    add_processing_arguments,
    build_config,
    configure_logging,
    run_with_exit_code,
)
from app.supervisor import CHILD_ENV, note_work_dir, supervise

if TYPE_CHECKING:
    from app.config import AppConfig

logger = logging.getLogger("app.pacs")

PULL_DIR_PREFIX = "perfusion-map-pull-"


@dataclass(frozen=True)
class PacsRunOutcome:
    """What :func:`pull_run_push` did: instances pulled, the output folder, instances pushed (0 without push)."""

    n_pulled: int
    output_dir: Path
    n_pushed: int


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m app.pacs",
        description="Pull a study from a PACS over DICOMweb, process it, and optionally push the results back.",
        epilog="Exit codes: those of `python -m app`, and 6 when the PACS cannot be reached, answers with an "
        "error, holds no such study, or rejects the results.",
    )
    parser.add_argument("--url", required=True, help="DICOMweb root URL, e.g. http://pacs:8042/dicom-web")
    parser.add_argument("--study", required=True, help="StudyInstanceUID of the study to process")
    parser.add_argument("-o", "--output", type=Path, required=True, help="new or empty output folder")
    parser.add_argument("--push", action="store_true", help="store the DICOM results back into the study (STOW-RS)")
    add_processing_arguments(parser)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def pull_run_push(url: str, study_instance_uid: str, output_dir: Path, config: AppConfig, push: bool) -> PacsRunOutcome:
    """Pull a study over DICOMweb, run the application on it into ``output_dir``, optionally push the results.

    Parameters
    ----------
    url
        DICOMweb root URL of the PACS.
    study_instance_uid
        The study to process; the results go into it.
    output_dir
        New or empty folder for the results (checked before anything is pulled).
    config
        The application's configuration.
    push
        Store every DICOM file of ``output_dir`` back into the study with STOW-RS.

    Raises
    ------
    PacsError
        From :mod:`core.pacs.dicomweb` (connection, HTTP error, study not found, rejected results).
    UsageError, NoMatchingSeriesError, InputDataError, ModelContractError
        As :func:`app.runner.run` raises them.
    """
    # Imported here, not at the top, so that the supervisor process starts without them.
    from app.runner import UsageError, check_output_folder, run
    from core.pacs.dicomweb import check_uid, make_client, pull_study, push_folder

    try:
        client = make_client(url)
        check_uid(study_instance_uid)
    except ValueError as error:
        raise UsageError(str(error)) from error
    with tempfile.TemporaryDirectory(prefix=PULL_DIR_PREFIX) as pull_dir:
        note_work_dir(Path(pull_dir))  # so that a supervisor removes it if this process is stopped
        study_dir = Path(pull_dir) / "study"
        check_output_folder(study_dir, Path(output_dir).absolute())
        pulled = pull_study(client, study_instance_uid, study_dir)
        outcome = run(study_dir, output_dir, config)
    n_pushed = 0
    if push:
        logger.info("Pushing the results in %s to the study", outcome.output_dir)
        n_pushed = push_folder(client, outcome.output_dir, study_instance_uid).n_stored
    return PacsRunOutcome(pulled.n_instances, outcome.output_dir, n_pushed)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the PACS command line and return the exit code."""
    args = parse_args(argv)
    configure_logging(args.log_level)
    return run_with_exit_code(lambda: pull_run_push(args.url, args.study, args.output, build_config(args), args.push))


if __name__ == "__main__":
    if os.environ.get(CHILD_ENV):
        sys.exit(main())  # the pipeline process
    sys.exit(supervise(sys.argv[1:], LOG_FORMAT, module="app.pacs"))  # see app/supervisor.py
