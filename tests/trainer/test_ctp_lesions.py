"""trainer.ctp.lesions: seed lists and the table of lesion volumes against the phantoms' truth."""

import pytest

from trainer.ctp.lesions import markdown, parse_seeds


def test_seed_ranges_are_expanded():
    assert parse_seeds("1200,1203-1205") == [1200, 1203, 1204, 1205]
    assert parse_seeds("7") == [7]
    with pytest.raises(ValueError):
        parse_seeds("a-b")


def _row(seed: int, smoothing: str, core_error: float) -> dict:
    return {
        "seed": seed,
        "smoothing": smoothing,
        "core_ml": 10 * (1 + core_error),
        "true_core_ml": 10.0,
        "core_error": core_error,
        "core_dice": 0.5,
        "hypoperfusion_ml": 100.0,
        "true_hypoperfusion_ml": 100.0,
        "hypoperfusion_error": 0.0,
        "hypoperfusion_dice": 0.9,
        "reference_cbf": 15.0,
        "true_reference_cbf": 30.0,
    }


def test_table_has_a_median_per_smoothing():
    rows = [_row(1, "guided", -0.1), _row(2, "guided", -0.3), _row(3, "guided", 0.5), _row(1, "gaussian", -0.5)]
    table = markdown(rows)
    assert "| median of 3 | guided | | -10 % |" in table
    assert "| median of 1 | gaussian | | -50 % |" in table
    assert "| 2 | guided | 7.0 (10.0) | -30 % |" in table
