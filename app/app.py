"""The application graph: DICOM in, chosen series as volumes, run record out."""

from __future__ import annotations

import sys

from monai.deploy.conditions import CountCondition
from monai.deploy.core import Application

from app import __version__
from app.config import RunSettings
from core.run_record import RunContext, StageTimings
from operators import (
    CtVolumeOperator,
    DicomLoaderOperator,
    NmVolumeOperator,
    RunRecordOperator,
    SeriesSelectionOperator,
)

APP_NAME = "perfusion-map"


class PerfusionMapApp(Application):
    """Load a study folder, choose the chest CT and lung/bone SPECT series, convert them to volumes.

    Later stages (segmentation, synthesis, quantification, writers) hang off the CT image
    and the SPECT volumes.  Run it through :func:`app.runner.run`, which validates the folders
    and publishes the output atomically.

    Parameters
    ----------
    settings
        Folders, start time and configuration of this run.
    """

    def __init__(self, settings: RunSettings) -> None:
        super().__init__([sys.argv[0]])
        self.name = APP_NAME
        self._settings = settings

    def compose(self) -> None:
        """Build the operators, then connect them by named ports."""
        settings = self._settings
        timings = StageTimings()
        context = RunContext(
            app_name=APP_NAME,
            app_version=__version__,
            input_dir=settings.input_dir,
            output_dir=settings.output_dir,
            started_at=settings.started_at,
            started_perf_s=settings.started_perf_s,
        )

        loader = DicomLoaderOperator(
            self, CountCondition(self, 1), input_folder=settings.input_dir, timings=timings, name="dicom_loader"
        )
        selection = SeriesSelectionOperator(
            self, rules=settings.config.selection, timings=timings, name="series_selection"
        )
        ct_volume = CtVolumeOperator(self, timings=timings, name="ct_volume")
        nm_volumes = NmVolumeOperator(self, timings=timings, name="nm_volumes")
        run_record = RunRecordOperator(
            self,
            record_path=settings.work_dir / settings.config.run_record_name,
            context=context,
            rules=settings.config.selection,
            timings=timings,
            name="run_record",
        )

        self.add_flow(loader, selection, {(loader.OUTPUT_STUDIES, selection.INPUT_STUDIES)})
        self.add_flow(selection, ct_volume, {(selection.OUTPUT_CT_SERIES, ct_volume.INPUT_SERIES)})
        self.add_flow(selection, nm_volumes, {(selection.OUTPUT_NM_SERIES, nm_volumes.INPUT_SERIES)})
        self.add_flow(selection, run_record, {(selection.OUTPUT_SELECTION, run_record.INPUT_SELECTION)})
        self.add_flow(ct_volume, run_record, {(ct_volume.OUTPUT_IMAGE, run_record.INPUT_CT_IMAGE)})
        self.add_flow(nm_volumes, run_record, {(nm_volumes.OUTPUT_VOLUMES, run_record.INPUT_NM_VOLUMES)})
