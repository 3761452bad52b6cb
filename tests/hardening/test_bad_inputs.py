"""The bad-input suite: every broken study ends in a correct result or a clear error with a documented exit code.

For every case the test checks the exit code of ``python -m app``, the message fragments that name
the problem and what to do, that the output folder holds either a complete result or nothing (no
hidden ``.partial`` folder either), and that no input file changed (SHA-256 before and after).
The studies are written by :mod:`tests.hardening.cases` from the bundled synthetic sample.

Cases covered elsewhere (not repeated here): empty input folder and a folder without DICOM files
(``tests/app/test_cli.py``, exit 2); a non-empty output folder (same file, exit 2); an unusable
model metadata version (same file, exit 5); a CT without lungs (``tests/app/test_lung_segmentation.py``,
exit 0, no lung objects); SPECT without a CT (same file, exit 3); a SPECT in another Frame of
Reference than the CT (``tests/app/test_functional_outputs.py``, exit 0, not compared).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.__main__ import (
    EXIT_INTERNAL_ERROR,
    EXIT_INTERRUPTED,
    EXIT_MODEL,
    EXIT_NO_MATCHING_SERIES,
    EXIT_OK,
    EXIT_UNREADABLE_SERIES,
    EXIT_USAGE,
)
from app.config import DEFAULT_FUNCTION_MODEL_DIR
from tests.app.conftest import ALL_LUNG_OUTPUTS
from tests.hardening import cases
from tests.hardening.cases import Builder
from tests.hardening.running import AppRun, run_cli
from tests.testdata import REPO_ROOT

LUNG_VOLUME_TOLERANCE = 0.005
"""Relative: a 3 deg gantry tilt shrinks the voxel volume by cos(3 deg), 0.14 %."""
LARGE_STUDY_MAX_EXTRA_RSS_MIB = 60.0
"""The large study adds 150 MiB of unused pixel data; peak memory may grow by at most this much."""


@dataclass(frozen=True)
class Case:
    """One bad input: how to build it, the exit code, and what the log must say."""

    name: str
    build: Builder
    exit_code: int
    messages: tuple[str, ...]


REFUSED = (
    Case(
        "single slice",
        cases.single_slice,
        EXIT_NO_MATCHING_SERIES,
        ("only 1 slice(s); a volume needs at least 3", "add such a series to the input folder, or correct the problem"),
    ),
    Case(
        "gantry tilt 20 deg",
        cases.gantry_tilt(20.0),
        EXIT_NO_MATCHING_SERIES,
        ("slice normal 20 deg from the patient axis; at most 5 deg", "needs axial slices reconstructed first"),
    ),
    Case(
        "two different images at one position",
        cases.conflicting_duplicates,
        EXIT_NO_MATCHING_SERIES,
        ("1 slice position(s) hold two different images", "remove the wrong copies or send the series again"),
    ),
    Case(
        "missing slice",
        cases.missing_slice,
        EXIT_UNREADABLE_SERIES,
        (
            "not on a regular grid",
            "range from 6.00 to 12.00 mm, the widest after file CT_0020.dcm",
            "A slice may be missing",
        ),
    ),
    Case(
        "uneven slice spacing",
        cases.uneven_spacing,
        EXIT_UNREADABLE_SERIES,
        ("range from 6.00 to 7.00 mm", "resample the series to even spacing first"),
    ),
    Case(
        "pixel data cut off",
        cases.truncated_slice,
        EXIT_UNREADABLE_SERIES,
        ("the pixel data of CT file CT_0021.dcm cannot be decoded", "send the series again"),
    ),
    Case(
        "header cut off",
        cases.truncated_header,
        EXIT_UNREADABLE_SERIES,
        ("Ignoring 1 damaged DICOM file(s) (CT_0021.dcm: no StudyInstanceUID", "A slice may be missing"),
    ),
    Case(
        "corrupted JPEG 2000 stream",
        cases.corrupted_pixel_data,
        EXIT_UNREADABLE_SERIES,
        ("the pixel data of CT file CT_0021.dcm cannot be decoded", "the file is damaged or truncated"),
    ),
)
"""Inputs that must be refused, with the exit code and the log fragments that say why and what to do."""


def _assert_nothing_written(parent: Path, output: Path) -> None:
    assert not output.exists(), f"{output} exists after a failed run"
    if not parent.exists():
        return
    leftovers = [p.name for p in parent.iterdir() if cases_partial(p)]
    assert not leftovers, f"working folders left behind: {leftovers}"


def cases_partial(path: Path) -> bool:
    """Whether ``path`` is one of the runner's hidden working folders."""
    return path.name.startswith(".") and ".partial-" in path.name


def _assert_complete(run: AppRun, expected: set[str]) -> dict:
    assert run.returncode == EXIT_OK, run.log
    assert {p.name for p in run.output.iterdir()} == expected
    assert not [p for p in run.output.parent.iterdir() if cases_partial(p)]
    record = json.loads((run.output / "run_record.json").read_text(encoding="utf-8"))
    assert record["status"] == "completed"
    assert {o["file"] for o in record["outputs"]} == expected - {"run_record.json"}
    assert "Traceback" not in run.log
    return record


def _run_case(build: Builder, tmp_path: Path, *options: str | Path) -> AppRun:
    """Build the study, run the app on it, and check that no input file changed."""
    study = build(tmp_path / "study")
    before = cases.checksums(study)
    run = run_cli(study, tmp_path / "results" / "out", *options)
    assert cases.checksums(study) == before, "the app changed its input files"
    return run


@pytest.mark.parametrize("case", REFUSED, ids=lambda case: case.name)
def test_a_bad_study_is_refused_with_a_clear_message(case: Case, tmp_path: Path) -> None:
    run = _run_case(case.build, tmp_path)
    assert run.returncode == case.exit_code, run.log
    for message in case.messages:
        assert message in run.log, f"{message!r} not in the log:\n{run.log}"
    assert "Traceback" not in run.log
    _assert_nothing_written(tmp_path / "results", run.output)


# --- studies that end in a result ---------------------------------------------------------------


def _lung_volumes(record: dict) -> dict[str, float]:
    assert record["lung_segmentation"]["status"] == "segmented"
    return record["lung_segmentation"]["lung_volumes_ml"]


def test_the_axial_ct_with_most_slices_is_chosen_among_five_and_the_choice_is_logged(reference: AppRun) -> None:
    record = _assert_complete(reference, ALL_LUNG_OUTPUTS)
    assert record["series_chosen"]["ct"]["series_instance_uid"] == cases.small_ct()[0].SeriesInstanceUID
    assert "chosen as ct: axial CT; most slices (48, 6 mm thick)" in reference.log
    not_chosen = [line for line in reference.log.splitlines() if "not chosen: axial CT, but series 1" in line]
    assert len(not_chosen) == 2  # the thicker and the sparser series
    assert "localizer image" in reference.log
    assert "not axial (coronal" in reference.log


def test_files_that_are_not_dicom_or_damaged_are_named_and_skipped(reference: AppRun) -> None:
    """Non-DICOM files are listed at INFO; a damaged DICOM file gets a WARNING that names it."""
    assert "Ignoring 4 file(s) that are not DICOM: .DS_Store, ct_6mm/Thumbs.db, empty.dcm, notes.txt" in reference.log
    assert "Ignoring 1 damaged DICOM file(s) (garbage.dcm: " in reference.log
    assert "[WARNING]" in reference.log.split("garbage.dcm")[0].splitlines()[-1]


def test_copies_of_slices_under_other_names_change_nothing(reference: AppRun) -> None:
    """Five slices are there twice (the same instances); the CT still has 48 slices."""
    record = json.loads((reference.output / "run_record.json").read_text(encoding="utf-8"))
    assert record["volumes"]["ct"]["shape"] == [cases.SMALL_CT_SLICES, 96, 96]


@pytest.mark.slow
@pytest.mark.parametrize(
    "build",
    [cases.feet_first, cases.ras_ordered, cases.gantry_tilt(3.0)],
    ids=["feet first", "RAS order", "tilt 3 deg"],
)
def test_orientation_variants_give_the_same_lungs_on_the_right_sides(
    build: Builder, reference: AppRun, tmp_path: Path
) -> None:
    """The same anatomy stored feet-first, in RAS order or with a small gantry tilt: same lungs, same sides."""
    record = _assert_complete(_run_case(build, tmp_path), ALL_LUNG_OUTPUTS)
    expected = _lung_volumes(json.loads((reference.output / "run_record.json").read_text(encoding="utf-8")))
    volumes = _lung_volumes(record)
    assert volumes["right_lung"] > volumes["left_lung"]  # the phantom's right lung is the larger
    for side, ml in expected.items():
        assert volumes[side] == pytest.approx(ml, rel=LUNG_VOLUME_TOLERANCE), side


@pytest.mark.slow
def test_every_transfer_syntax_gives_the_same_pixels(reference: AppRun, tmp_path: Path) -> None:
    """JPEG 2000, JPEG-LS, RLE, implicit VR and big endian slices, one series: results identical to the reference."""
    run = _run_case(cases.mixed_transfer_syntaxes, tmp_path)
    _assert_complete(run, ALL_LUNG_OUTPUTS)
    assert cases.pixel_digests(run.output) == cases.pixel_digests(reference.output)


@pytest.mark.slow
def test_unused_series_do_not_raise_peak_memory(reference: AppRun, tmp_path: Path) -> None:
    """150 MiB of coronal reformats beside the CT: read as headers only, so memory stays bounded."""
    run = _run_case(cases.large_study, tmp_path)
    record = _assert_complete(run, ALL_LUNG_OUTPUTS)
    # The process's peak when the CT volume was built, after the loader has read every file: unused
    # pixel data read then would show here and stay for the run.  The whole run's peak is reached
    # later, in the network inference, and varies by some 100 MiB between identical runs.
    loaded = record["peak_memory_mib"]["after_operator"]["ct_volume"]
    reference_record = json.loads((reference.output / "run_record.json").read_text(encoding="utf-8"))
    reference_loaded = reference_record["peak_memory_mib"]["after_operator"]["ct_volume"]
    assert loaded - reference_loaded < LARGE_STUDY_MAX_EXTRA_RSS_MIB, (
        loaded,
        reference_loaded,
        run.peak_rss_mib,
        reference.peak_rss_mib,
    )


# --- folders and models -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("file.txt/out", "cannot create the output folder"),
        ("/proc/perfusion-map-output", "its parent is not writable"),
    ],
    ids=["under a file", "in /proc"],
)
def test_an_output_folder_that_cannot_be_created_exits_2(output: str, message: str, tmp_path: Path) -> None:
    """We run as root, so permissions block nothing: a path under a file, and /proc, cannot hold folders."""
    (tmp_path / "file.txt").write_text("not a folder\n", encoding="utf-8")
    target = tmp_path / output if not output.startswith("/") else Path(output)
    study = cases.small_ct_study(tmp_path / "study")  # a usable study: the output folder is what fails
    run = run_cli(study, target)
    assert run.returncode == EXIT_USAGE, run.log
    assert message in run.log and "Traceback" not in run.log
    assert not target.exists()
    assert (tmp_path / "file.txt").read_text(encoding="utf-8") == "not a folder\n"


def _model_without_weights(folder: Path) -> Path:
    folder.mkdir()
    shutil.copy(DEFAULT_FUNCTION_MODEL_DIR / "metadata.json", folder / "metadata.json")
    return folder


def _model_with_other_preprocessing(folder: Path) -> Path:
    folder.mkdir()
    (folder / "model.ts").symlink_to(DEFAULT_FUNCTION_MODEL_DIR / "model.ts")
    metadata = json.loads((DEFAULT_FUNCTION_MODEL_DIR / "metadata.json").read_text(encoding="utf-8"))
    metadata["input"]["preprocessing"]["eq1"]["low_hu"] = -900.0
    (folder / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("make_model", "messages"),
    [
        (_model_without_weights, ("model.ts is missing",)),
        (_model_with_other_preprocessing, ("trained with other preprocessing (eq1)", "re-export the model")),
    ],
    ids=["weights missing", "metadata does not match"],
)
def test_an_unusable_model_exits_5_and_writes_nothing(make_model, messages: tuple[str, ...], tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    run = _run_case(cases.small_ct_study, tmp_path, "--model", model)
    assert run.returncode == EXIT_MODEL, run.log
    assert "a model cannot be used" in run.log
    for message in messages:
        assert message in run.log
    _assert_nothing_written(tmp_path / "results", run.output)


# --- the remaining exit codes -------------------------------------------------------------------


def _stop_once_the_graph_runs(tmp_path: Path, stop: Callable[[subprocess.Popen[bytes]], None]) -> tuple[int, str, Path]:
    """Start ``python -m app`` on a small CT, call ``stop`` once the lungs are segmented; exit code, log, output."""
    study = cases.small_ct_study(tmp_path / "study")
    output = tmp_path / "results" / "out"
    log = tmp_path / "log.txt"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOLOSCAN_")}
    with log.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "-i", str(study), "-o", str(output)],
            cwd=REPO_ROOT,
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120.0
        while "Lungs segmented" not in log.read_text(encoding="utf-8") and process.poll() is None:
            assert time.monotonic() < deadline, "the app never reached the lung segmentation"
            time.sleep(0.2)
        assert any(cases_partial(p) for p in output.parent.iterdir()), "no working folder while the graph runs"
        stop(process)
        returncode = process.wait(timeout=120)
    return returncode, log.read_text(encoding="utf-8"), output


def test_ctrl_c_exits_130_and_leaves_nothing(tmp_path: Path) -> None:
    """SIGINT once the graph runs: exit 130, no output folder, no working folder."""
    returncode, text, output = _stop_once_the_graph_runs(tmp_path, lambda process: process.send_signal(signal.SIGINT))
    assert returncode == EXIT_INTERRUPTED, text
    assert "interrupted; the output folder was left unchanged" in text
    _assert_nothing_written(output.parent, output)


def _kill_the_pipeline_process(process: subprocess.Popen[bytes]) -> None:
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    assert len(children) == 1, f"expected one pipeline process, found {children}"
    os.kill(int(children[0]), signal.SIGKILL)


def test_a_killed_pipeline_process_exits_1_and_leaves_nothing(tmp_path: Path) -> None:
    """The pipeline process killed outright (as the kernel's OOM killer does) once its working folder exists."""
    returncode, text, output = _stop_once_the_graph_runs(tmp_path, _kill_the_pipeline_process)
    assert returncode == EXIT_INTERNAL_ERROR, text
    assert "the pipeline process was killed by SIGKILL" in text
    _assert_nothing_written(output.parent, output)


def test_an_internal_error_exits_1_with_the_traceback(tmp_path: Path) -> None:
    """A bug (here: a graph that raises) exits 1, says to report it, and leaves nothing."""
    study = cases.small_ct_study(tmp_path / "study")
    output = tmp_path / "results" / "out"
    program = (
        "import sys, app.runner\n"
        "def broken(settings):\n"
        "    (settings.work_dir / 'half_written.dcm').write_bytes(b'')\n"
        "    raise ZeroDivisionError('simulated bug')\n"
        "app.runner._run_graph = broken\n"
        "from app.__main__ import main\n"
        f"sys.exit(main(['-i', {str(study)!r}, '-o', {str(output)!r}]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == EXIT_INTERNAL_ERROR, result.stderr
    assert "unexpected error; the output folder was left unchanged. Please report this with the log" in result.stderr
    assert "ZeroDivisionError: simulated bug" in result.stderr
    _assert_nothing_written(output.parent, output)
