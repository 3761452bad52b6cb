"""DSC-MRI perfusion (seed 004): dynamic MR series -> CBV, CBF, MTT Parametric Maps (and the stU-Net's CBV)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from holoscan.core import ExecutionContext, InputContext, OutputContext
from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec

from core.dicom.dsc_reader import read_dsc
from core.perfusion.dsc import DscSettings, analyse_dsc
from core.perfusion.dsc_outputs import DscSeriesNumbers, dsc_maps, dsc_summary, write_dsc_outputs
from core.perfusion.stunet_model import StUNetModel
from core.run_record import OutputFile, StageTimings
from operators.ctp_operator import files_of_role, received_series_and_files

logger = logging.getLogger(__name__)

DSC = "dsc"
"""Selection role of a DSC perfusion series (see core.series_selection.DSC_ROLE)."""


class DscPerfusionOperator(Operator):
    """Analyse the study's DSC perfusion MR series and write its perfusion maps.

    The SVD pipeline (:func:`core.perfusion.dsc.analyse_dsc`, automatic AIF) always runs; with
    ``use_network`` the stU-Net of seed 004 (loaded once, here) adds its CBV map.  Without a DSC
    series the operator passes the file list on unchanged.

    Named inputs
    ------------
    ``INPUT_DSC_SERIES``: ``list[StudySelectedSeries]`` with the series chosen for ``"dsc"`` (may be empty).
    ``INPUT_FILES``: ``list[core.run_record.OutputFile]`` written before.

    Named outputs
    -------------
    ``OUTPUT_FILES``: the earlier files, then the DSC results.
    ``OUTPUT_SUMMARY``: dict for the run record, or ``None`` without a DSC series.
    """

    INPUT_DSC_SERIES = "dsc_series"
    INPUT_FILES = "files_so_far"
    OUTPUT_FILES = "output_files"
    OUTPUT_SUMMARY = "dsc_summary"

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        settings: DscSettings,
        use_network: bool,
        model_dir: Path,
        output_dir: Path,
        app_version: str,
        timings: StageTimings,
        series_numbers: DscSeriesNumbers | None = None,
        **kwargs: Any,
    ) -> None:
        """Keep the settings; load the stU-Net once when it is used."""
        self._settings = settings
        self._network = StUNetModel(model_dir) if use_network else None
        self._output_dir = Path(output_dir)
        self._app_version = app_version
        self._timings = timings
        self._numbers = series_numbers or DscSeriesNumbers()
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        """Declare the ports."""
        spec.input(self.INPUT_DSC_SERIES)
        spec.input(self.INPUT_FILES)
        spec.output(self.OUTPUT_FILES)
        spec.output(self.OUTPUT_SUMMARY).condition(ConditionType.NONE)

    def compute(self, op_input: InputContext, op_output: OutputContext, context: ExecutionContext) -> None:
        """Analyse when a DSC series was chosen; pass the file list on."""
        selected, written = received_series_and_files(op_input, self.INPUT_DSC_SERIES, self.INPUT_FILES)
        summary = None
        paths = files_of_role(selected, DSC, "DSC perfusion")
        if paths:
            summary = self._analyse(paths, written)
        op_output.emit(written, self.OUTPUT_FILES)
        op_output.emit(summary, self.OUTPUT_SUMMARY)

    def _analyse(self, paths: list[Path], written: list[OutputFile]) -> dict[str, Any]:
        with self._timings.measure(self.name):
            series = read_dsc(paths)
            result = analyse_dsc(series.signal, series.times_s, series.grid, series.echo_time_s, self._settings)
            stunet = None
            if self._network is not None:
                stunet = self._network.predict(series.signal, series.times_s, result.brain_mask)
        name = f"DSC {self._settings.method[:1]}{self._settings.method[1:].upper()}"
        if self._network is not None:
            name += " + stU-Net"
        files = write_dsc_outputs(
            dsc_maps(result, stunet),
            series.first_frame,
            self._output_dir,
            algorithm_name=name,
            algorithm_version=self._app_version,
            numbers=self._numbers,
            timings=self._timings,
        )
        written += [OutputFile.from_dicom(path, self._output_dir) for path in files.values()]
        summary = dsc_summary(result, series.grid.voxel_volume_ml, name)
        if self._network is not None:
            summary["stunet_model"] = self._network.identity
        logger.info("DSC perfusion (%s): %.0f ml of brain, %d maps", name, summary["brain_ml"], len(files))
        return summary
