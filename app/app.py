"""The application graph: DICOM in, chosen series as volumes, lungs, synthetic function maps, DICOM results out."""

from __future__ import annotations

import sys

from monai.deploy.conditions import CountCondition
from monai.deploy.core import Application

from app import __version__
from app.config import RunSettings
from core.run_record import RunContext, StageTimings
from operators import (
    CtEnhancementOperator,
    CtPerfusionOperator,
    CtVolumeOperator,
    DicomLoaderOperator,
    DscPerfusionOperator,
    FunctionalSynthesisOperator,
    FunctionalWritersOperator,
    LungSegmentationOperator,
    LungSegWriterOperator,
    NmVolumeOperator,
    RunRecordOperator,
    SeriesSelectionOperator,
    SpectDenoisingOperator,
)

APP_NAME = "perfusion-map"


class PerfusionMapApp(Application):
    """Load a study folder, choose the chest CT and lung/bone SPECT series, segment the lungs.

    The CT volume feeds the lung segmentation, whose mask is written as a DICOM SEG; later
    stages (synthesis, quantification, more writers) hang off the segmentation and the
    SPECT volumes.  Run it through :func:`app.runner.run`, which validates the folders
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
            self,
            CountCondition(self, 1),
            input_folder=settings.input_dir,
            timings=timings,
            min_time_points=settings.config.selection.ct.min_perfusion_frames,
            skipped_files=settings.skipped_files,
            name="dicom_loader",
        )
        selection = SeriesSelectionOperator(
            self, rules=settings.config.selection, timings=timings, name="series_selection"
        )
        ct_volume = CtVolumeOperator(self, timings=timings, name="ct_volume")
        nm_volumes = NmVolumeOperator(self, timings=timings, name="nm_volumes")
        lungs = LungSegmentationOperator(self, timings=timings, name="lung_segmentation")
        lung_seg_writer = LungSegWriterOperator(
            self,
            output_dir=settings.work_dir,
            file_name=settings.config.lung_seg_name,
            algorithm_version=__version__,
            series_number=settings.config.lung_seg_series_number,
            timings=timings,
            name="lung_seg_writer",
        )
        ct_enhancement = CtEnhancementOperator(self, timings=timings, name="ct_enhancement")
        synthesis = FunctionalSynthesisOperator(
            self,
            model_dir=settings.config.function_model_dir,
            app_version=__version__,
            timings=timings,
            name="functional_synthesis",
        )
        functional_writers = FunctionalWritersOperator(
            self,
            output_dir=settings.work_dir,
            timings=timings,
            series_numbers=settings.config.functional_series_numbers,
            name="functional_writers",
        )
        denoising = SpectDenoisingOperator(
            self,
            model_dir=settings.config.denoising_model_dir,
            output_dir=settings.work_dir,
            app_version=__version__,
            timings=timings,
            series_numbers=settings.config.denoising_series_numbers,
            name="spect_denoising",
        )
        ct_perfusion = CtPerfusionOperator(
            self,
            settings=settings.config.ctp,
            model_dir=settings.config.ctp_model_dir,
            output_dir=settings.work_dir,
            app_version=__version__,
            timings=timings,
            series_numbers=settings.config.ctp_series_numbers,
            name="ct_perfusion",
        )
        dsc_perfusion = DscPerfusionOperator(
            self,
            settings=settings.config.dsc,
            use_network=settings.config.dsc_network,
            model_dir=settings.config.dsc_model_dir,
            output_dir=settings.work_dir,
            app_version=__version__,
            timings=timings,
            series_numbers=settings.config.dsc_series_numbers,
            name="dsc_perfusion",
        )
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
        self.add_flow(ct_volume, lungs, {(ct_volume.OUTPUT_CT_VOLUME, lungs.INPUT_CT)})
        self.add_flow(lungs, lung_seg_writer, {(lungs.OUTPUT_SEGMENTATION, lung_seg_writer.INPUT_SEGMENTATION)})
        self.add_flow(lungs, ct_enhancement, {(lungs.OUTPUT_SEGMENTATION, ct_enhancement.INPUT_SEGMENTATION)})
        self.add_flow(lungs, run_record, {(lungs.OUTPUT_SUMMARY, run_record.INPUT_LUNG_SEGMENTATION)})
        self.add_flow(ct_enhancement, run_record, {(ct_enhancement.OUTPUT_LUNGS, run_record.INPUT_ENHANCED_LUNGS)})
        self.add_flow(lungs, synthesis, {(lungs.OUTPUT_SEGMENTATION, synthesis.INPUT_SEGMENTATION)})
        self.add_flow(ct_enhancement, synthesis, {(ct_enhancement.OUTPUT_LUNGS, synthesis.INPUT_LUNGS)})
        self.add_flow(
            nm_volumes,
            synthesis,
            {
                (nm_volumes.OUTPUT_VOLUMES, synthesis.INPUT_NM_VOLUMES),
                (nm_volumes.OUTPUT_FRAMES_OF_REFERENCE, synthesis.INPUT_NM_FRAMES),
            },
        )
        self.add_flow(synthesis, run_record, {(synthesis.OUTPUT_SUMMARY, run_record.INPUT_FUNCTIONAL)})
        self.add_flow(synthesis, functional_writers, {(synthesis.OUTPUT_MAPS, functional_writers.INPUT_MAPS)})
        self.add_flow(
            lung_seg_writer, functional_writers, {(lung_seg_writer.OUTPUT_FILES, functional_writers.INPUT_FILES)}
        )
        self.add_flow(selection, denoising, {(selection.OUTPUT_NM_SERIES, denoising.INPUT_NM_SERIES)})
        self.add_flow(
            nm_volumes,
            denoising,
            {
                (nm_volumes.OUTPUT_VOLUMES, denoising.INPUT_NM_VOLUMES),
                (nm_volumes.OUTPUT_FRAMES_OF_REFERENCE, denoising.INPUT_NM_FRAMES),
            },
        )
        self.add_flow(ct_volume, denoising, {(ct_volume.OUTPUT_CT_VOLUME, denoising.INPUT_CT)})
        self.add_flow(functional_writers, denoising, {(functional_writers.OUTPUT_FILES, denoising.INPUT_FILES)})
        self.add_flow(selection, ct_perfusion, {(selection.OUTPUT_CTP_SERIES, ct_perfusion.INPUT_CTP_SERIES)})
        self.add_flow(denoising, ct_perfusion, {(denoising.OUTPUT_FILES, ct_perfusion.INPUT_FILES)})
        self.add_flow(selection, dsc_perfusion, {(selection.OUTPUT_DSC_SERIES, dsc_perfusion.INPUT_DSC_SERIES)})
        self.add_flow(ct_perfusion, dsc_perfusion, {(ct_perfusion.OUTPUT_FILES, dsc_perfusion.INPUT_FILES)})
        self.add_flow(dsc_perfusion, run_record, {(dsc_perfusion.OUTPUT_FILES, run_record.INPUT_OUTPUT_FILES)})
        self.add_flow(dsc_perfusion, run_record, {(dsc_perfusion.OUTPUT_SUMMARY, run_record.INPUT_DSC_PERFUSION)})
        self.add_flow(ct_perfusion, run_record, {(ct_perfusion.OUTPUT_SUMMARY, run_record.INPUT_CT_PERFUSION)})
        self.add_flow(denoising, run_record, {(denoising.OUTPUT_SUMMARY, run_record.INPUT_DENOISING)})
