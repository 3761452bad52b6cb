"""Command line: ``python -m app -i IN -o OUT [-l LEVEL] [-m MODEL] [--ctp-method M] [--dsc-method M] [--dsc-stunet]``
(``python app ...``, the folder run as a script, works too).

Exit codes
----------
0  the run completed; the output folder holds the results and ``run_record.json``.
1  unexpected internal error (a bug: please report it with the log).
2  the command line or a folder cannot be used: input folder missing, empty or without
   DICOM files; output folder not empty, a file, inside the input folder, or impossible to create.
3  no usable chest CT, CT perfusion or DSC perfusion MR in the study (the message says why each
   series found was not used).
4  a chosen series could not be read (a damaged or truncated slice file, a missing slice, uneven
   spacing, unsupported geometry); the message names the file or the gap.
5  a model cannot be used (missing files, or its metadata.json does not match this version's
   preprocessing): the perfusion/ventilation model, the CTP Transformer with ``--ctp-method network``,
   or the stU-Net with ``--dsc-stunet``.
6  ``python -m app.pacs`` only: the PACS cannot be reached, answers with an HTTP error, holds no
   such study, or rejects the results (see ``app/pacs.py``).
130  interrupted (Ctrl-C, or SIGTERM as ``docker stop`` sends): nothing is written.

The command runs the pipeline in a child process with the 32 MiB stack limit Holoscan asks for
(when the hard limit allows) and removes its working folder when it is interrupted or killed
(:mod:`app.supervisor`).  Logging handlers are configured here (and, for its own one or two
lines, in the supervisor).  This module also keeps a normal run quiet: it lowers Holoscan's own
log level and hides SDK warnings a user cannot act on and the tracebacks libraries attach to
their error lines (all shown with ``-l DEBUG``).  See ``app/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if not __package__:  # `python app -i ...` (MONAI Deploy's usual form) runs this file with app/ first on the path,
    _ROOT = str(Path(__file__).resolve().parent.parent)  # where `import app` would find app/app.py, not the package
    sys.path[0] = _ROOT
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)  # the child

from app import __version__
from app.supervisor import CHILD_ENV, EXIT_INTERNAL_ERROR, EXIT_INTERRUPTED, supervise

if TYPE_CHECKING:
    from app.config import AppConfig

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_NO_MATCHING_SERIES = 3
EXIT_UNREADABLE_SERIES = 4
EXIT_MODEL = 5
EXIT_PACS = 6

INPUT_ENV, INPUT_DEFAULT = "HOLOSCAN_INPUT_PATH", "input"
OUTPUT_ENV, OUTPUT_DEFAULT = "HOLOSCAN_OUTPUT_PATH", "output"
"""The SDK's conventions (``monai.deploy.core.RuntimeEnv``), read here without importing Holoscan."""

HOLOSCAN_LOG_ENV = "HOLOSCAN_LOG_LEVEL"

_NVIDIA_DRIVER_FILE = Path("/proc/driver/nvidia/version")
LOG_FORMAT = "%(asctime)s [%(levelname)s] %(name)s: %(message)s"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

logger = logging.getLogger("app")


_UNACTIONABLE_SDK_WARNINGS = (
    ("monai.deploy.operators.decoder_nvimgcodec", "nvidia.nvimgcodec is not available"),
    ("root", "nvimgcodec decoder plugin did not register"),
    ("monai.deploy.operators.dicom_data_loader_operator", "reason being"),
)
"""(logger name prefix, message part) of SDK warnings hidden unless ``-l DEBUG``.

DICOMSeriesToVolumeOperator warns on every run that the optional nvImageCodec GPU decoder is
missing, although pydicom's decoders (installed with the app) read every transfer syntax; and
the DICOM loader warns once per non-DICOM file with a hint meant for programmers, while the
runner already lists those files in one line.
"""


_OWN_LOGGERS = ("app", "core", "operators")


class _HideThirdPartyTracebacks(logging.Filter):
    """Keep the message of a library's error record but drop its traceback.

    pydicom logs every failed decoder plugin with a traceback, and the SDK's volume converter its
    rescale failure; the app then names the damaged file itself.  ``-l DEBUG`` shows them all.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".")[0] not in _OWN_LOGGERS:
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


class _HideUnactionableSdkWarnings(logging.Filter):
    """Drop the warnings of :data:`_UNACTIONABLE_SDK_WARNINGS`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        message = record.getMessage()
        return not any(record.name.startswith(name) and part in message for name, part in _UNACTIONABLE_SDK_WARNINGS)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; defaults come from the SDK's environment variables."""
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="Find the chest CT, lung/bone SPECT and CT perfusion series of a DICOM study and process them.",
        epilog="Exit codes: 0 done, 1 internal error, 2 unusable folder or arguments, "
        "3 no chest CT, CT perfusion or lung/bone SPECT series, 4 unreadable series, 5 unusable model, "
        "130 interrupted.",
    )
    parser.add_argument(
        "-i", "--input", type=Path, default=Path(os.environ.get(INPUT_ENV, INPUT_DEFAULT)),
        help=f"study folder with DICOM files (default: ${INPUT_ENV} or '{INPUT_DEFAULT}')",
    )  # fmt: skip
    parser.add_argument(
        "-o", "--output", type=Path, default=Path(os.environ.get(OUTPUT_ENV, OUTPUT_DEFAULT)),
        help=f"new or empty output folder (default: ${OUTPUT_ENV} or '{OUTPUT_DEFAULT}')",
    )  # fmt: skip
    add_processing_arguments(parser)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def add_processing_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that choose how a study is processed (log level, models, methods)."""
    parser.add_argument(
        "-l", "--log-level", type=lambda s: "WARNING" if s.upper() == "WARN" else s.upper(),
        choices=_LOG_LEVELS, default="INFO", help="logging level (default: INFO)",
    )  # fmt: skip
    parser.add_argument(
        "-m", "--model", type=Path, default=None,
        help="perfusion/ventilation model folder (model.ts, metadata.json; default: the shipped models/ddran_lung)",
    )  # fmt: skip
    parser.add_argument(
        "--ctp-method", choices=("osvd", "ssvd", "csvd", "network"), default="osvd",
        help="CT perfusion deconvolution: oSVD (default), sSVD, cSVD, or the seed 002 Transformer "
        "(models/ctp_transformer)",
    )  # fmt: skip
    parser.add_argument(
        "--dsc-method", choices=("osvd", "ssvd", "csvd"), default="osvd",
        help="DSC perfusion MR deconvolution: oSVD (default), sSVD or cSVD",
    )  # fmt: skip
    parser.add_argument(
        "--dsc-stunet", action="store_true",
        help="also predict the DSC CBV map with the seed 004 stU-Net (models/stunet_dsc)",
    )  # fmt: skip


def configure_logging(level: str) -> None:
    """One stderr handler; the SDK's own INFO chatter only at DEBUG; Holoscan's level to match."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%H:%M:%S"))
    if level != "DEBUG":
        handler.addFilter(_HideUnactionableSdkWarnings())
        handler.addFilter(_HideThirdPartyTracebacks())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    sdk_level = logging.DEBUG if level == "DEBUG" else max(logging.WARNING, logging.getLevelName(level))
    logging.getLogger("monai.deploy").setLevel(sdk_level)
    logging.getLogger("highdicom").setLevel(sdk_level)  # per-attribute "copy ..." INFO lines
    os.environ.setdefault(HOLOSCAN_LOG_ENV, _holoscan_log_level(level))


def _holoscan_log_level(level: str) -> str:
    """INFO when debugging; else WARN, or ERROR on machines without an NVIDIA driver.

    Without a driver, GXF warns at every start that CUDA is unavailable and falls back to CPU
    data, which is expected there.  A user's own HOLOSCAN_LOG_LEVEL always wins.
    """
    if level == "DEBUG":
        return "INFO"
    if level in ("ERROR", "CRITICAL") or not _NVIDIA_DRIVER_FILE.exists():
        return "ERROR"
    return "WARN"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the application from the command line and return the exit code."""
    args = parse_args(argv)
    configure_logging(args.log_level)
    # Imported here, not at the top, so that the stack-limit re-execution starts without them.
    from app.runner import run

    return run_with_exit_code(lambda: run(args.input, args.output, build_config(args)))


def build_config(args: argparse.Namespace) -> AppConfig:
    """The application's configuration from the options of :func:`add_processing_arguments`."""
    from app.config import AppConfig
    from core.perfusion.ctp import CtpSettings
    from core.perfusion.dsc import DscSettings

    config = AppConfig(
        ctp=CtpSettings(method=args.ctp_method),
        dsc=DscSettings(method=args.dsc_method),
        dsc_network=args.dsc_stunet,
    )
    if args.model is not None:
        config = dataclasses.replace(config, function_model_dir=args.model)
    return config


def run_with_exit_code(action: Callable[[], object]) -> int:
    """Call ``action`` and return the exit code of the module docstring, logging any error once."""
    from app.runner import UsageError
    from core.errors import InputDataError, ModelContractError, NoMatchingSeriesError, PacsError

    try:
        action()
    except UsageError as error:
        logger.error("%s", error)
        return EXIT_USAGE
    except NoMatchingSeriesError as error:
        logger.error("%s", error)
        return EXIT_NO_MATCHING_SERIES
    except InputDataError as error:
        logger.error("a chosen series could not be read: %s", error)
        return EXIT_UNREADABLE_SERIES
    except ModelContractError as error:
        logger.error("a model cannot be used: %s; nothing was written", error)
        return EXIT_MODEL
    except PacsError as error:
        logger.error("PACS: %s", error)
        return EXIT_PACS
    except KeyboardInterrupt:
        logger.error("interrupted; the output folder was left unchanged")
        return EXIT_INTERRUPTED
    except Exception:
        logger.exception("unexpected error; the output folder was left unchanged. Please report this with the log")
        return EXIT_INTERNAL_ERROR
    return EXIT_OK


if __name__ == "__main__":
    if os.environ.get(CHILD_ENV):
        sys.exit(main())  # the pipeline process
    sys.exit(supervise(sys.argv[1:], LOG_FORMAT))  # see app/supervisor.py
