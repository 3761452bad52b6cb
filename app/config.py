"""Configuration of the application: the series selection rules and the run settings.

Everything here is a frozen dataclass; a site changes behaviour by building another
:class:`AppConfig`, never by editing code elsewhere.  The rule *types* live in
:mod:`core.series_selection` (framework-free); their *values* live here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydicom.uid import CTImageStorage, NuclearMedicineImageStorage

from core.lung.functional_outputs import FunctionalSeriesNumbers
from core.nm.denoising_outputs import DenoisingSeriesNumbers
from core.perfusion.ctp import CtpSettings
from core.perfusion.ctp_outputs import CtpSeriesNumbers
from core.perfusion.dsc import DscSettings
from core.perfusion.dsc_outputs import DscSeriesNumbers
from core.series_selection import CtRule, NmRule, SelectionRules, TracerRule

MODEL_PATH_ENV = "HOLOSCAN_MODEL_PATH"
"""The MAP convention (``/opt/holoscan/models`` in the image): a folder holding one sub-folder per model."""
SHIPPED_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
"""The repository's ``models/``, used when ``$HOLOSCAN_MODEL_PATH`` is not set."""

DEFAULT_FUNCTION_MODEL_DIR = SHIPPED_MODELS_DIR / "ddran_lung"
"""The shipped DDRAN (perfusion and ventilation from CT), made by ``make weights``."""
DEFAULT_DENOISING_MODEL_DIR = SHIPPED_MODELS_DIR / "u2net_spect_bone"
"""The shipped U2-Net (seed 003) that denoises a fast bone SPECT."""
DEFAULT_CTP_MODEL_DIR = SHIPPED_MODELS_DIR / "ctp_transformer"
"""The shipped CTP Transformer (seed 002), used when the CT perfusion method is ``network``."""
DEFAULT_DSC_MODEL_DIR = SHIPPED_MODELS_DIR / "stunet_dsc"
"""The shipped stU-Net (seed 004), used when ``dsc_network`` is set."""


def model_dir(name: str) -> Path:
    """Folder of the model ``name``: under ``$HOLOSCAN_MODEL_PATH`` when it is set, else the shipped one.

    Read when an :class:`AppConfig` is made, so that a MAP container (or a site) can point the app at
    another models folder without code changes.
    """
    root = os.environ.get(MODEL_PATH_ENV)
    return (Path(root) if root else SHIPPED_MODELS_DIR) / name


CHEST_CT_RULE = CtRule(
    modality="CT",
    sop_class_uids=(CTImageStorage,),
    excluded_image_types=("LOCALIZER",),
    max_tilt_deg=5.0,
    min_slices=3,
)
"""Chest CT: single-frame axial CT, no localizers, at least 3 slice positions."""

PERFUSION = TracerRule(
    tracer="perfusion",
    # MAA is "Technetium Tc^99m^ aggregated albumin" (SCT 85693008); microaggregated albumin is lymphoscintigraphy.
    radiopharmaceutical_pattern=r"\bMAA\b|macro-?aggregated|(?<![a-z])aggregated albumin",
    description_pattern=r"perf",
)
VENTILATION = TracerRule(
    tracer="ventilation",
    # Technegas is "Technetium^99m labeled carbon" (SCT 447125008); DTPA aerosol is Tc-99m pentetate.
    radiopharmaceutical_pattern=r"technegas|carbon|\bDTPA\b|pentetate|aerosol",
    description_pattern=r"vent",
)
BONE_PHARMACEUTICALS = r"\b(H?MDP|HDP)\b|medronate|oxidronate"
"""MDP is medronate (SCT 96390006), HDP/HMDP is oxidronate (SCT 53951001)."""
FAST_BONE_MAX_TIME_PER_VIEW_S = 8.0
"""Bone SPECT at most this many seconds per view is a fast acquisition to denoise (seed 003: 3 s
against the standard 20 s; the model was trained on 3 s)."""

BONE_FAST = TracerRule(
    tracer="bone_fast",
    radiopharmaceutical_pattern=BONE_PHARMACEUTICALS,
    description_pattern=r"bone|skelet",
    max_time_per_view_s=FAST_BONE_MAX_TIME_PER_VIEW_S,
)
BONE = TracerRule(
    tracer="bone",
    radiopharmaceutical_pattern=BONE_PHARMACEUTICALS,
    description_pattern=r"bone|skelet",
    min_exclusive_time_per_view_s=FAST_BONE_MAX_TIME_PER_VIEW_S,
)

LUNG_AND_BONE_SPECT_RULE = NmRule(
    modality="NM",
    sop_class_uids=(NuclearMedicineImageStorage,),
    required_image_type="RECON TOMO",
    excluded_image_types=("TRANSMISSION",),
    max_tilt_deg=5.0,
    tracers=(PERFUSION, VENTILATION, BONE, BONE_FAST),
)
"""Reconstructed SPECT (NM RECON TOMO, emission) of a known tracer, in one multi-frame instance."""


@dataclass(frozen=True)
class AppConfig:
    """What the application does with a study.

    Parameters
    ----------
    selection
        Which series are used, see :mod:`core.series_selection`.
    run_record_name
        File name of the run record written into the output folder.
    lung_seg_name
        File name of the lung segmentation (DICOM SEG) written into the output folder.
    lung_seg_series_number
        SeriesNumber of the lung segmentation series.
    function_model_dir
        Folder of the perfusion/ventilation model (``model.ts`` and ``metadata.json``).
    functional_series_numbers
        SeriesNumber of each functional output series (SEG, maps, key images, RTSTRUCT, SR, PDF).
    denoising_model_dir
        Folder of the fast bone SPECT denoising model (``model.ts`` and ``metadata.json``).
    denoising_series_numbers
        SeriesNumber of the denoised NM series and of its comparison picture.
    ctp
        How a CT perfusion series is analysed (method: ``osvd`` by default, ``ssvd``, ``csvd`` or ``network``).
    ctp_model_dir
        Folder of the CTP Transformer, read only when ``ctp.method`` is ``network``.
    ctp_series_numbers
        SeriesNumber of each CT perfusion output series (maps, lesion SEG, summary picture).
    dsc
        How a DSC perfusion MR series is analysed (deconvolution ``osvd`` by default, ``ssvd`` or ``csvd``).
    dsc_network
        Also predict CBV with the stU-Net of seed 004 (``dsc_model_dir``).
    dsc_series_numbers
        SeriesNumber of each DSC output series.

    Notes
    -----
    The four model folders default to :func:`model_dir`: ``$HOLOSCAN_MODEL_PATH/<name>`` when that
    variable is set (the MAP image sets ``/opt/holoscan/models``), else the repository's ``models/<name>``.
    """

    selection: SelectionRules = field(
        default_factory=lambda: SelectionRules(ct=CHEST_CT_RULE, nm=LUNG_AND_BONE_SPECT_RULE)
    )
    run_record_name: str = "run_record.json"
    lung_seg_name: str = "lung_seg.dcm"
    lung_seg_series_number: int = 900
    function_model_dir: Path = field(default_factory=lambda: model_dir("ddran_lung"))
    functional_series_numbers: FunctionalSeriesNumbers = field(default_factory=FunctionalSeriesNumbers)
    denoising_model_dir: Path = field(default_factory=lambda: model_dir("u2net_spect_bone"))
    denoising_series_numbers: DenoisingSeriesNumbers = field(default_factory=DenoisingSeriesNumbers)
    ctp: CtpSettings = field(default_factory=CtpSettings)
    ctp_model_dir: Path = field(default_factory=lambda: model_dir("ctp_transformer"))
    ctp_series_numbers: CtpSeriesNumbers = field(default_factory=CtpSeriesNumbers)
    dsc: DscSettings = field(default_factory=DscSettings)
    dsc_network: bool = False
    dsc_model_dir: Path = field(default_factory=lambda: model_dir("stunet_dsc"))
    dsc_series_numbers: DscSeriesNumbers = field(default_factory=DscSeriesNumbers)


@dataclass(frozen=True)
class RunSettings:
    """One run of the application.

    Parameters
    ----------
    input_dir
        Study folder as given by the user (read only).
    output_dir
        Final output folder, as reported in the run record.
    work_dir
        Folder the operators write into; moved to ``output_dir`` when the run succeeds.
    started_at
        Wall-clock start of the run (timezone-aware, UTC).
    started_perf_s
        ``time.perf_counter()`` at the start of the run, for durations.
    config
        What to do.
    skipped_files
        DICOM files the loader must not read: damaged ones and DICOMDIRs (see
        :func:`core.series_selection.scan_folder`).
    """

    input_dir: Path
    output_dir: Path
    work_dir: Path
    started_at: datetime
    started_perf_s: float
    config: AppConfig = field(default_factory=AppConfig)
    skipped_files: tuple[Path, ...] = ()
