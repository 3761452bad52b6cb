"""The command line's own pieces: arguments, the SDK's environment conventions, logging quietness."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from monai.deploy.core.runtime_env import RuntimeEnv

import app.__main__ as cli


def test_input_and_output_follow_the_sdk_conventions() -> None:
    assert RuntimeEnv.ENV_DEFAULT["input"] == (cli.INPUT_ENV, cli.INPUT_DEFAULT)
    assert RuntimeEnv.ENV_DEFAULT["output"] == (cli.OUTPUT_ENV, cli.OUTPUT_DEFAULT)


def test_environment_gives_the_defaults_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cli.INPUT_ENV, "/data/in")
    monkeypatch.setenv(cli.OUTPUT_ENV, "/data/out")
    args = cli.parse_args([])
    assert (args.input, args.output, args.log_level) == (Path("/data/in"), Path("/data/out"), "INFO")
    args = cli.parse_args(["-i", "study", "-o", "results", "-l", "warn"])
    assert (args.input, args.output, args.log_level) == (Path("study"), Path("results"), "WARNING")


def test_bad_arguments_exit_2() -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(["-l", "chatty"])
    assert exit_info.value.code == cli.EXIT_USAGE


def _record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_only_unactionable_sdk_warnings_are_hidden() -> None:
    hide = cli._HideUnactionableSdkWarnings()
    assert not hide.filter(
        _record(
            "monai.deploy.operators.decoder_nvimgcodec", logging.WARNING, "Module nvidia.nvimgcodec is not available."
        )
    )
    assert not hide.filter(
        _record("root", logging.WARNING, "The nvimgcodec decoder plugin did not register successfully.")
    )
    assert not hide.filter(
        _record(
            "monai.deploy.operators.dicom_data_loader_operator.DicomLoaderOperator",
            logging.WARNING,
            "Ignored /x/notes.txt, reason being: File is missing DICOM File Meta Information header",
        )
    )
    assert hide.filter(_record("operators.series_selection_operator", logging.WARNING, "SPECT series 4 was not used"))
    assert hide.filter(_record("monai.deploy.operators.dicom_data_loader_operator", logging.WARNING, "Error parsing"))
    assert hide.filter(_record("root", logging.ERROR, "nvimgcodec failed to decode"))


@pytest.mark.parametrize(
    ("level", "driver", "expected"),
    [("DEBUG", False, "INFO"), ("INFO", True, "WARN"), ("INFO", False, "ERROR"), ("ERROR", True, "ERROR")],
)
def test_holoscan_log_level(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, level: str, driver: bool, expected: str
) -> None:
    driver_file = tmp_path / "version"
    if driver:
        driver_file.write_text("NVRM version: test\n")
    monkeypatch.setattr(cli, "_NVIDIA_DRIVER_FILE", driver_file)
    assert cli._holoscan_log_level(level) == expected
