"""Series selection rules (core.series_selection with the app's default rules) on headers built here."""

from __future__ import annotations

import pytest

from core.errors import NoMatchingSeriesError
from core.series_selection import (
    CHOSEN,
    CT_ROLE,
    DSC_ROLE,
    NOT_CHOSEN,
    REJECTED,
    SelectionRules,
    SeriesSummary,
    SeriesVerdict,
    TracerRule,
    classify_tracer,
    select_series,
    selection_warnings,
    summarize_series,
)
from tests.app.headers import CORONAL, ct_series, mr_dynamic_series, nm_tomo


def _verdicts_by_number(summaries: list[SeriesSummary], rules: SelectionRules) -> dict[int | None, SeriesVerdict]:
    return {v.summary.series_number: v for v in select_series(summaries, rules).verdicts}


def test_axial_ct_with_more_slices_wins(rules: SelectionRules) -> None:
    few = summarize_series(ct_series(40, series_number=2))
    many = summarize_series(ct_series(120, series_number=3))
    verdicts = _verdicts_by_number([few, many], rules)
    assert verdicts[3].decision == CHOSEN and verdicts[3].role == CT_ROLE
    assert "most slices (120" in verdicts[3].reason
    assert verdicts[2].decision == NOT_CHOSEN and "series 3" in verdicts[2].reason


def test_equal_slice_counts_prefer_the_thinner_series(rules: SelectionRules) -> None:
    thick = summarize_series(ct_series(50, series_number=2, thickness_mm=5.0))
    thin = summarize_series(ct_series(50, series_number=3, thickness_mm=1.0))
    assert select_series([thick, thin], rules).chosen[CT_ROLE].summary.series_number == 3


def test_localizer_is_rejected_even_with_more_images(rules: SelectionRules) -> None:
    localizer = summarize_series(
        ct_series(200, series_number=1, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), orientation=CORONAL)
    )
    axial = summarize_series(ct_series(30, series_number=2))
    verdicts = _verdicts_by_number([localizer, axial], rules)
    assert verdicts[1].decision == REJECTED and verdicts[1].reason.startswith("localizer")
    assert verdicts[2].decision == CHOSEN


def test_coronal_reformat_is_rejected_as_not_axial(rules: SelectionRules) -> None:
    coronal = summarize_series(
        ct_series(300, series_number=5, image_type=("DERIVED", "SECONDARY"), orientation=CORONAL)
    )
    with pytest.raises(NoMatchingSeriesError, match="not axial"):
        select_series([coronal], rules)


def test_too_few_slices_is_rejected(rules: SelectionRules) -> None:
    two = summarize_series(ct_series(2))
    with pytest.raises(NoMatchingSeriesError, match="only 2 slice"):
        select_series([two], rules)


@pytest.mark.parametrize(
    ("radiopharmaceutical", "code_meaning", "tracer"),
    [
        ("Tc-99m MAA", "", "perfusion"),
        ("", "Technetium Tc^99m^ aggregated albumin", "perfusion"),
        ("Technegas", "", "ventilation"),
        ("", "Technetium^99m labeled carbon", "ventilation"),
        ("Tc99m-DTPA aerosol", "", "ventilation"),
        ("Tc-99m MDP", "", "bone"),
        ("HDP", "Technetium Tc^99m^ oxidronate", "bone"),
        ("", "Technetium Tc^99m^ medronate", "bone"),
    ],
)
def test_nm_tracer_from_the_radiopharmaceutical(
    rules: SelectionRules, radiopharmaceutical: str, code_meaning: str, tracer: str
) -> None:
    summary = summarize_series(nm_tomo(radiopharmaceutical=radiopharmaceutical, code_meaning=code_meaning))
    assert classify_tracer(summary, rules.nm.tracers)[0] == tracer
    assert select_series([summary], rules).chosen[tracer].summary is summary


@pytest.mark.parametrize(
    ("time_per_view_s", "tracer"),
    [(3.0, "bone_fast"), (8.0, "bone_fast"), (20.0, "bone"), (10.0, "bone"), (None, "bone")],
)
def test_bone_spect_is_fast_by_its_time_per_view(
    rules: SelectionRules, time_per_view_s: float | None, tracer: str
) -> None:
    summary = summarize_series(nm_tomo(radiopharmaceutical="Tc-99m MDP", time_per_view_s=time_per_view_s))
    assert summary.time_per_view_s == time_per_view_s
    assert classify_tracer(summary, rules.nm.tracers)[0] == tracer


def test_fast_and_standard_bone_spect_of_one_study_are_both_chosen(rules: SelectionRules) -> None:
    fast = summarize_series(nm_tomo(radiopharmaceutical="Tc-99m MDP", time_per_view_s=3.0, series_number=3))
    standard = summarize_series(nm_tomo(radiopharmaceutical="Tc-99m MDP", time_per_view_s=20.0, series_number=2))
    chosen = select_series([standard, fast], rules).chosen
    assert chosen["bone_fast"].summary is fast and chosen["bone"].summary is standard


def test_time_per_view_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        TracerRule("bone_fast", radiopharmaceutical_pattern="MDP", description_pattern="bone", max_time_per_view_s=0.0)


def test_radiopharmaceutical_outranks_a_misleading_description(rules: SelectionRules) -> None:
    summary = summarize_series(nm_tomo(radiopharmaceutical="Tc-99m MAA", description="Lung ventilation"))
    tracer, how = classify_tracer(summary, rules.nm.tracers)
    assert tracer == "perfusion" and how.startswith("radiopharmaceutical")


def test_description_is_the_fallback_without_a_radiopharmaceutical(rules: SelectionRules) -> None:
    summary = summarize_series(nm_tomo(description="Q SPECT lung perf"))
    tracer, how = classify_tracer(summary, rules.nm.tracers)
    assert tracer == "perfusion" and how.startswith("SeriesDescription")


def test_microaggregated_albumin_is_not_perfusion(rules: SelectionRules) -> None:
    summary = summarize_series(nm_tomo(code_meaning="Technetium Tc^99m^ microaggregated albumin"))
    assert classify_tracer(summary, rules.nm.tracers)[0] is None


def test_unknown_tracer_is_rejected_with_a_warning(rules: SelectionRules) -> None:
    unknown = summarize_series(nm_tomo(radiopharmaceutical="Tc-99m sestamibi", description="SPECT", series_number=4))
    ct = summarize_series(ct_series(10, series_number=1))
    result = select_series([unknown, ct], rules)
    verdict = next(v for v in result.verdicts if v.summary is unknown)
    assert verdict.decision == REJECTED and "sestamibi" in verdict.reason
    assert any("series 4" in w and "not used" in w for w in selection_warnings(result, rules))


@pytest.mark.parametrize(
    "image_type",
    [("ORIGINAL", "PRIMARY", "STATIC", "EMISSION"), ("ORIGINAL", "PRIMARY", "RECON TOMO", "TRANSMISSION")],
)
def test_planar_and_transmission_nm_are_rejected(rules: SelectionRules, image_type: tuple[str, ...]) -> None:
    summary = summarize_series(nm_tomo(radiopharmaceutical="Tc-99m MAA", image_type=image_type))
    with pytest.raises(NoMatchingSeriesError):
        select_series([summary], rules)


def test_attenuation_corrected_spect_is_preferred(rules: SelectionRules) -> None:
    nac = summarize_series(
        nm_tomo(radiopharmaceutical="MAA", attenuation_corrected=False, n_frames=128, series_number=5)
    )
    ac = summarize_series(nm_tomo(radiopharmaceutical="MAA", attenuation_corrected=True, n_frames=64, series_number=6))
    assert select_series([nac, ac], rules).chosen["perfusion"].summary is ac


def test_one_series_per_role_from_one_study(rules: SelectionRules) -> None:
    summaries = [
        summarize_series(ct_series(60, series_number=1)),
        summarize_series(nm_tomo(radiopharmaceutical="Tc-99m MAA", series_number=2)),
        summarize_series(nm_tomo(radiopharmaceutical="Technegas", series_number=3)),
        summarize_series(ct_series(90, series_number=7, study_uid="1.2.3.4")),
    ]
    result = select_series(summaries, rules)
    assert sorted(result.chosen) == ["ct", "perfusion", "ventilation"]
    assert result.chosen[CT_ROLE].summary.series_number == 1
    other_study = next(v for v in result.verdicts if v.summary.series_number == 7)
    assert other_study.decision == NOT_CHOSEN and "another study" in other_study.reason
    assert any("2 studies" in w for w in selection_warnings(result, rules))


def test_no_known_series_raises_with_what_was_found(rules: SelectionRules) -> None:
    localizer = summarize_series(ct_series(2, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), description="Scout"))
    with pytest.raises(
        NoMatchingSeriesError,
        match=r"^no chest CT, CT perfusion, DSC perfusion MR or lung/bone SPECT series found.*'Scout'",
    ):
        select_series([localizer], rules)


def test_summary_holds_no_patient_identifiers() -> None:
    text = repr(summarize_series(ct_series(3))) + repr(summarize_series(nm_tomo(radiopharmaceutical="MAA")))
    assert "TESTPATIENT" not in text and "PID-0123456789" not in text and "19500101" not in text


def test_an_invalid_tracer_pattern_is_refused() -> None:
    with pytest.raises(ValueError, match="radiopharmaceutical_pattern"):
        TracerRule("perfusion", radiopharmaceutical_pattern="(MAA", description_pattern="perf")


def test_dynamic_axial_mr_is_the_dsc_series(rules: SelectionRules) -> None:
    dsc = summarize_series(mr_dynamic_series(6, 40, series_number=20))
    static = summarize_series(mr_dynamic_series(20, 1, series_number=21))
    short = summarize_series(mr_dynamic_series(6, 12, series_number=22))
    verdicts = _verdicts_by_number([dsc, static, short], rules)
    assert verdicts[20].decision == CHOSEN and verdicts[20].role == DSC_ROLE
    assert "40 time points" in verdicts[20].reason
    assert verdicts[21].decision == REJECTED and "static MR" in verdicts[21].reason
    assert verdicts[22].decision == REJECTED and "only 12 time points" in verdicts[22].reason


def test_coronal_dynamic_mr_is_rejected(rules: SelectionRules) -> None:
    coronal = summarize_series(mr_dynamic_series(6, 40, orientation=CORONAL))
    with pytest.raises(NoMatchingSeriesError, match="dynamic MR not axial"):
        select_series([coronal], rules)
