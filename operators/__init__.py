"""Operators of the application: one per file, each thin (receive -> validate -> call core -> emit).

The logic lives in :mod:`core`; an operator only moves data between ports.  Port names are
class constants, e.g. ``SeriesSelectionOperator.OUTPUT_CT_SERIES``.
"""

from core.cuda_runtime import preload_cuda_runtime

preload_cuda_runtime()  # before any operator module imports monai.deploy / holoscan

from operators.ct_enhancement_operator import CtEnhancementOperator  # noqa: E402
from operators.ct_volume_operator import CtVolumeOperator  # noqa: E402
from operators.ctp_operator import CtPerfusionOperator  # noqa: E402
from operators.dicom_loader_operator import DicomLoaderOperator  # noqa: E402
from operators.dsc_operator import DscPerfusionOperator  # noqa: E402
from operators.functional_synthesis_operator import FunctionalSynthesisOperator  # noqa: E402
from operators.functional_writers_operator import FunctionalWritersOperator  # noqa: E402
from operators.lung_segmentation_operator import LungSegmentationOperator  # noqa: E402
from operators.nm_volume_operator import NmVolumeOperator  # noqa: E402
from operators.run_record_operator import RunRecordOperator  # noqa: E402
from operators.seg_writer_operator import LungSegWriterOperator  # noqa: E402
from operators.series_selection_operator import SeriesSelectionOperator  # noqa: E402
from operators.spect_denoising_operator import SpectDenoisingOperator  # noqa: E402

__all__ = [
    "CtEnhancementOperator",
    "CtPerfusionOperator",
    "CtVolumeOperator",
    "DicomLoaderOperator",
    "DscPerfusionOperator",
    "FunctionalSynthesisOperator",
    "FunctionalWritersOperator",
    "LungSegWriterOperator",
    "LungSegmentationOperator",
    "NmVolumeOperator",
    "RunRecordOperator",
    "SeriesSelectionOperator",
    "SpectDenoisingOperator",
]
