"""Choose the chest CT and the SPECT series of a study, by the rules of :mod:`core.series_selection`.

The SDK's DICOMSeriesSelectorOperator matches series attributes against JSON rules, but it
cannot read the Radiopharmaceutical Information Sequence (a nested sequence), break ties by
slice thickness, prefer attenuation-corrected SPECT, or say why a series was not chosen;
this operator delegates all of that to the framework-free core and emits the SDK's own
``StudySelectedSeries`` objects, so SDK operators downstream (volume conversion, DICOM SEG
writer) work unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

from holoscan.core import ExecutionContext, InputContext, OutputContext
from monai.deploy.core import Fragment, Operator, OperatorSpec
from monai.deploy.core.domain.dicom_series import DICOMSeries
from monai.deploy.core.domain.dicom_series_selection import SelectedSeries, StudySelectedSeries
from monai.deploy.core.domain.dicom_study import DICOMStudy

from core.run_record import StageTimings
from core.series_selection import (
    CHOSEN,
    CT_ROLE,
    CTP_ROLE,
    DSC_ROLE,
    SelectionResult,
    SelectionRules,
    require_ct,
    select_series,
    selection_warnings,
    summarize_series,
)

logger = logging.getLogger(__name__)


class SeriesSelectionOperator(Operator):
    """Choose at most one series per role (chest CT; perfusion, ventilation, bone SPECT).

    Named input
    -----------
    ``INPUT_STUDIES``: ``list[DICOMStudy]`` from the DICOM loader.

    Named outputs
    -------------
    ``OUTPUT_CT_SERIES``: ``list[StudySelectedSeries]`` holding the chosen CT (selection name
    ``"ct"``), empty without one.  ``OUTPUT_NM_SERIES``: ``list[StudySelectedSeries]`` holding
    the chosen SPECT series, one per tracer (selection name = tracer), empty without any.
    ``OUTPUT_CTP_SERIES``: ``list[StudySelectedSeries]`` holding the chosen CT perfusion series
    (selection name ``"ctp"``), empty without one.  ``OUTPUT_DSC_SERIES``: the same for the DSC
    perfusion MR series (selection name ``"dsc"``).
    ``OUTPUT_SELECTION``: :class:`core.series_selection.SelectionResult`, every series found
    with its verdict.

    Raises
    ------
    NoMatchingSeriesError
        From :func:`core.series_selection.select_series`, when no series qualifies, and from
        :func:`core.series_selection.require_ct` when no chest CT does.
    """

    INPUT_STUDIES = "dicom_study_list"
    OUTPUT_CT_SERIES = "ct_series"
    OUTPUT_NM_SERIES = "nm_series"
    OUTPUT_CTP_SERIES = "ctp_series"
    OUTPUT_DSC_SERIES = "dsc_series"
    OUTPUT_SELECTION = "selection"

    def __init__(
        self, fragment: Fragment, *args: Any, rules: SelectionRules, timings: StageTimings, **kwargs: Any
    ) -> None:
        """Create the operator with its ``rules`` and the shared stage ``timings``."""
        self._rules = rules
        self._timings = timings
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the ports."""
        spec.input(self.INPUT_STUDIES)
        spec.output(self.OUTPUT_CT_SERIES)
        spec.output(self.OUTPUT_NM_SERIES)
        spec.output(self.OUTPUT_CTP_SERIES)
        spec.output(self.OUTPUT_DSC_SERIES)
        spec.output(self.OUTPUT_SELECTION)

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Summarise every series, choose, log the decisions and emit the chosen series."""
        studies = op_input.receive(self.INPUT_STUDIES)
        if not isinstance(studies, list) or not all(isinstance(s, DICOMStudy) for s in studies):
            raise TypeError(f"{self.INPUT_STUDIES} must be a list of DICOMStudy, got {type(studies).__name__}")
        with self._timings.measure(self.name):
            series = {
                str(s.SeriesInstanceUID): (study, s)
                for study in studies
                for s in study.get_all_series()
                if s.get_sop_instances()
            }
            summaries = [
                summarize_series([sop.get_native_sop_instance() for sop in s.get_sop_instances()])
                for _, s in series.values()
            ]
            result = select_series(summaries, self._rules)
            _log_selection(result, selection_warnings(result, self._rules))
            require_ct(result)
            tracers = [rule.tracer for rule in self._rules.nm.tracers]
            ct_series = _study_selected_series(result, series, [CT_ROLE])
            nm_series = _study_selected_series(result, series, tracers)
            ctp_series = _study_selected_series(result, series, [CTP_ROLE])
            dsc_series = _study_selected_series(result, series, [DSC_ROLE])
        op_output.emit(ct_series, self.OUTPUT_CT_SERIES)
        op_output.emit(nm_series, self.OUTPUT_NM_SERIES)
        op_output.emit(ctp_series, self.OUTPUT_CTP_SERIES)
        op_output.emit(dsc_series, self.OUTPUT_DSC_SERIES)
        op_output.emit(result, self.OUTPUT_SELECTION)


def _study_selected_series(
    result: SelectionResult, series: dict[str, tuple[DICOMStudy, DICOMSeries]], roles: list[str]
) -> list[StudySelectedSeries]:
    """The chosen series of ``roles`` as the SDK's StudySelectedSeries (one study), or ``[]``."""
    chosen = [(role, result.chosen[role]) for role in roles if role in result.chosen]
    if not chosen:
        return []
    study, _ = series[chosen[0][1].summary.series_instance_uid]
    selected = StudySelectedSeries(study)
    for role, verdict in chosen:
        selected.add_selected_series(SelectedSeries(role, series[verdict.summary.series_instance_uid][1]))
    return [selected]


def _log_selection(result: SelectionResult, warnings: list[str]) -> None:
    studies = {v.summary.study_instance_uid for v in result.verdicts}
    logger.info("Found %d series in %d study(ies)", len(result.verdicts), len(studies))
    for verdict in result.verdicts:
        role = f" as {verdict.role}" if verdict.decision == CHOSEN else ""
        logger.info("  %s: %s%s: %s", verdict.summary.describe(), verdict.decision, role, verdict.reason)
    for warning in warnings:
        logger.warning(warning)
