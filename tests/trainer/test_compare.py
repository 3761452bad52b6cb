"""The DDRAN vs ARNN table reads the runs' metrics.json files."""

import json

import pytest

from core.metrics import METRIC_KEYS
from trainer.compare import comparison_table, main


def _write_run(folder, entries):
    folder.mkdir(parents=True)
    summary = {
        key: {metric: {"mean": value, "sd": 0.01, "n": 4} for metric in METRIC_KEYS} for key, value in entries.items()
    }
    (folder / "metrics.json").write_text(json.dumps({"summary": summary, "rows": []}))


def test_table_puts_ddran_arnn_and_baseline_side_by_side(tmp_path):
    _write_run(
        tmp_path / "ddran",
        {"perfusion/network/spect": 0.8, "perfusion/hu_baseline/spect": 0.2, "ventilation/network/spect": 0.7},
    )
    _write_run(tmp_path / "arnn_p", {"perfusion/network/spect": 0.75, "perfusion/hu_baseline/spect": 0.2})
    _write_run(tmp_path / "arnn_v", {"ventilation/network/spect": 0.65})
    text = comparison_table(tmp_path / "ddran", [tmp_path / "arnn_p", tmp_path / "arnn_v"])
    lines = text.splitlines()
    assert lines[2].startswith("| perfusion | spect | DDRAN | 4 | 0.800 +- 0.010")
    assert lines[3].startswith("| perfusion | spect | ARNN | 4 | 0.750 +- 0.010")
    assert lines[4].startswith("| perfusion | spect | HU baseline | 4 | 0.200 +- 0.010")
    assert lines[5].startswith("| ventilation | spect | DDRAN |")
    assert lines[6].startswith("| ventilation | spect | ARNN |")
    assert len(lines) == 7  # no truth rows were given, none are invented
    out = tmp_path / "comparison.md"
    assert main(["--ddran", str(tmp_path / "ddran"), "--arnn", str(tmp_path / "arnn_p"), "--out", str(out)]) == 0
    assert "| perfusion | spect | ARNN |" in out.read_text()


def test_a_missing_run_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="--stage final"):
        comparison_table(tmp_path / "nothing", [])
