"""The runner's folder checks and its all-or-nothing output, without starting the framework."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import app.runner as runner
from app.config import RunSettings
from app.runner import UsageError, check_input_folder, check_output_folder


def test_input_folder_problems_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        check_input_folder(tmp_path / "missing")
    with pytest.raises(UsageError, match="is empty"):
        check_input_folder(tmp_path)
    (tmp_path / "notes.txt").write_text("not DICOM")
    with pytest.raises(UsageError, match="no DICOM file"):
        check_input_folder(tmp_path)
    with pytest.raises(UsageError, match="is a file"):
        check_input_folder(tmp_path / "notes.txt")


def test_output_must_be_outside_the_input_and_empty(tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    with pytest.raises(UsageError, match="inside the input folder"):
        check_output_folder(study, study / "out")
    with pytest.raises(UsageError, match="inside the input folder"):
        check_output_folder(study, study)
    full = tmp_path / "full"
    full.mkdir()
    (full / "old.json").write_text("{}")
    with pytest.raises(UsageError, match="not empty"):
        check_output_folder(study, full)
    check_output_folder(study, tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_output_folder(study, tmp_path / "empty")


def _fake_graph(fail: bool) -> Callable[[RunSettings], None]:
    """Stand-in for the graph: writes a run record, then fails if asked to."""

    def run_graph(settings: RunSettings) -> None:
        (settings.work_dir / settings.config.run_record_name).write_text("{}")
        if fail:
            raise RuntimeError("graph failed")

    return run_graph


@pytest.mark.parametrize("existing_empty_output", [False, True])
def test_output_appears_complete_on_success(
    real_ct_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing_empty_output: bool
) -> None:
    monkeypatch.setattr(runner, "_run_graph", _fake_graph(fail=False))
    output = tmp_path / "results"
    if existing_empty_output:
        output.mkdir()
    outcome = runner.run(real_ct_folder, output)
    assert sorted(p.name for p in output.iterdir()) == ["run_record.json"]
    assert outcome.run_record == output.absolute() / "run_record.json"
    assert not list(tmp_path.glob(".*partial*"))


def test_output_stays_absent_when_the_graph_fails(
    real_ct_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "_run_graph", _fake_graph(fail=True))
    with pytest.raises(RuntimeError, match="graph failed"):
        runner.run(real_ct_folder, tmp_path / "results")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real_ct"]
