"""CT perfusion for stroke (seed 002): 4D CTP series -> CBF/CBV/MTT/Tmax maps, core and hypoperfusion."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from holoscan.core import ExecutionContext, InputContext, OutputContext
from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec
from monai.deploy.core.domain.dicom_series_selection import StudySelectedSeries

from core.dicom.ctp_reader import read_ctp
from core.errors import InputDataError
from core.perfusion.ctp import CtpSettings, analyse_ctp, network_estimator
from core.perfusion.ctp_outputs import CtpIdentity, CtpSeriesNumbers, ctp_summary, write_ctp_outputs
from core.perfusion.transformer_model import CtpTransformerModel
from core.run_record import OutputFile, StageTimings

logger = logging.getLogger(__name__)

CTP = "ctp"
"""Selection role of a CT perfusion series (see core.series_selection.CTP_ROLE)."""


class CtPerfusionOperator(Operator):
    """Analyse the study's CT perfusion series and write maps, the lesion SEG and a summary picture.

    The deconvolution method is a setting (:class:`core.perfusion.ctp.CtpSettings`): oSVD by
    default, or the Transformer of seed 002, whose model is then loaded once, here.  Without a
    CT perfusion series the operator passes the file list on unchanged.

    Named inputs
    ------------
    ``INPUT_CTP_SERIES``: ``list[StudySelectedSeries]`` with the series chosen for ``"ctp"`` (may be empty).
    ``INPUT_FILES``: ``list[core.run_record.OutputFile]`` written before.

    Named outputs
    -------------
    ``OUTPUT_FILES``: the earlier files, then the CTP results.
    ``OUTPUT_SUMMARY``: dict for the run record, or ``None`` without a CT perfusion series.
    """

    INPUT_CTP_SERIES = "ctp_series"
    INPUT_FILES = "files_so_far"
    OUTPUT_FILES = "output_files"
    OUTPUT_SUMMARY = "ctp_summary"

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        settings: CtpSettings,
        model_dir: Path,
        output_dir: Path,
        app_version: str,
        timings: StageTimings,
        series_numbers: CtpSeriesNumbers | None = None,
        **kwargs: Any,
    ) -> None:
        """Keep the settings; load the network once when the method is ``network``."""
        self._settings = settings
        self._network = CtpTransformerModel(model_dir) if settings.method == "network" else None
        self._output_dir = Path(output_dir)
        self._app_version = app_version
        self._timings = timings
        self._numbers = series_numbers or CtpSeriesNumbers()
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the ports."""
        spec.input(self.INPUT_CTP_SERIES)
        spec.input(self.INPUT_FILES)
        spec.output(self.OUTPUT_FILES)
        spec.output(self.OUTPUT_SUMMARY).condition(ConditionType.NONE)

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Analyse when a CT perfusion series was chosen; pass the file list on."""
        selected, written = received_series_and_files(op_input, self.INPUT_CTP_SERIES, self.INPUT_FILES)
        summary = None
        paths = files_of_role(selected, CTP, "CT perfusion")
        if paths:
            summary = self._analyse(paths, written)
        op_output.emit(written, self.OUTPUT_FILES)
        op_output.emit(summary, self.OUTPUT_SUMMARY)

    def _analyse(self, paths: list[Path], written: list[OutputFile]) -> dict[str, Any]:
        with self._timings.measure(self.name):
            series = read_ctp(paths)
            estimator = network_estimator(self._network, self._settings.kappa) if self._network else None
            result = analyse_ctp(series.hu, series.times_s, series.grid, self._settings, estimator)
        volumes = result.lesions.volumes_ml(series.grid.voxel_volume_ml)
        logger.info(
            "CT perfusion (%s): core %.1f ml, hypoperfusion %.1f ml, mismatch ratio %.2f",
            result.method,
            volumes["core_ml"],
            volumes["hypoperfusion_ml"],
            volumes["mismatch_ratio"],
        )
        identity = CtpIdentity.of(result.method, self._app_version, self._network)
        files = write_ctp_outputs(
            result,
            series.first_frame,
            self._output_dir,
            identity=identity,
            baseline_hu=series.hu[: result.baseline_frames].mean(axis=0),
            numbers=self._numbers,
            timings=self._timings,
        )
        written += [OutputFile.from_dicom(path, self._output_dir) for path in files.values()]
        return ctp_summary(result, series.grid, identity)


def received_series_and_files(
    op_input: InputContext, series_port: str, files_port: str
) -> tuple[list[StudySelectedSeries], list[OutputFile]]:
    """The chosen series and a copy of the files written so far, received and type-checked."""
    selected = op_input.receive(series_port)
    earlier = op_input.receive(files_port)
    if not isinstance(selected, list) or not all(isinstance(s, StudySelectedSeries) for s in selected):
        raise TypeError(f"{series_port} must be a list of StudySelectedSeries")
    if not isinstance(earlier, list) or not all(isinstance(f, OutputFile) for f in earlier):
        raise TypeError(f"{files_port} must be a list of OutputFile")
    return selected, list(earlier)


def files_of_role(selected: list[StudySelectedSeries], role: str, what: str) -> list[Path]:
    """The files of the series chosen for ``role`` (``what`` names it in errors), or ``[]`` without one."""
    for study in selected:
        for chosen in study.selected_series:
            if chosen.selection_name != role:
                continue
            paths = [getattr(i.get_native_sop_instance(), "filename", None) for i in chosen.series.get_sop_instances()]
            if not all(paths):
                raise InputDataError(f"the {what} images were not read from files; cannot read the series")
            return [Path(str(p)) for p in paths]
    return []
