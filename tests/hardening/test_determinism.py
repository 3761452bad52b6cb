"""Two runs on the same input give identical pixel data in every output object.

The first run of each bundled sample is the session's shared run (``tests/conftest.py``); each test
runs the app once more and compares the pixel data of every DICOM object, matched by file name (the
UIDs differ between runs), and the numbers of the run record that do not depend on time.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from app.__main__ import EXIT_OK
from tests.app.conftest import CTP_STUDY, DSC_STUDY, SAMPLE_STUDY
from tests.hardening.cases import pixel_digests
from tests.hardening.running import run_cli

Run = tuple[subprocess.CompletedProcess[str], Path]
RESULT_SECTIONS = ("lung_segmentation", "lung_crops", "functional", "ct_perfusion", "dsc_perfusion")
"""Run record sections compared between runs (their timings removed)."""


def _results(output: Path) -> dict[str, object]:
    record = json.loads((output / "run_record.json").read_text(encoding="utf-8"))
    return {key: _without_timings(record.get(key)) for key in RESULT_SECTIONS}


def _without_timings(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if not k.endswith("seconds") and not k.endswith("_s")}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _assert_same_results(first: Run, study: Path, tmp_path: Path) -> None:
    process, first_output = first
    assert process.returncode == EXIT_OK, process.stderr
    second = run_cli(study, tmp_path / "out")
    assert second.returncode == EXIT_OK, second.log
    assert sorted(p.name for p in second.output.iterdir()) == sorted(p.name for p in first_output.iterdir())
    first_pixels, second_pixels = pixel_digests(first_output), pixel_digests(second.output)
    assert first_pixels, "no pixel data to compare"
    differing = sorted(name for name in first_pixels if first_pixels[name] != second_pixels.get(name))
    assert differing == [], f"pixel data differs between two runs in {differing}"
    assert _results(second.output) == _results(first_output)


@pytest.mark.slow
def test_the_thorax_sample_gives_identical_results_twice(sample_run: Run, tmp_path: Path) -> None:
    _assert_same_results(sample_run, SAMPLE_STUDY / "dicom", tmp_path)


@pytest.mark.slow
def test_the_ct_perfusion_sample_gives_identical_results_twice(ctp_run: Run, tmp_path: Path) -> None:
    _assert_same_results(ctp_run, CTP_STUDY / "dicom", tmp_path)


@pytest.mark.slow
def test_the_dsc_sample_gives_identical_results_twice(dsc_run: Run, tmp_path: Path) -> None:
    _assert_same_results(dsc_run, DSC_STUDY / "dicom", tmp_path)
