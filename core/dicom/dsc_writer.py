"""Write a DSC-MRI perfusion acquisition as one MR Image Storage series, as a scanner does.

Dynamic susceptibility contrast (DSC) perfusion is a 2D multi-slice single-shot gradient-echo EPI
repeated every RepetitionTime during the first pass of a gadolinium bolus.  Time point ``k``
(``times_s[k]`` after the first) of a ``(T, z, y, x)`` signal array becomes ``nz`` legacy
single-frame files ``DSC_<k+1:03d>_<slice+1:03d>.dcm``.  A slice has the same ImagePositionPatient
at every time point; the time points differ in TemporalPositionIdentifier (``k + 1``, with
NumberOfTemporalPositions ``T``: both belong to the MR Image module), AcquisitionNumber (``k + 1``),
AcquisitionDateTime, AcquisitionTime and ContentTime (series start plus ``times_s[k]``, to the
microsecond).  TriggerTime is not written: it is the delay from a cardiac trigger, and a DSC
acquisition is not gated.  InstanceNumber runs over the whole series, time point by time point,
inferior to superior.

The header is the MR template of :mod:`core.dicom.mr_writer` with a GRE-EPI perfusion protocol
(ImageType ``ORIGINAL\\PRIMARY\\OTHER\\PERFUSION``, ScanningSequence EP, SequenceVariant SK\\SS, fat
saturation, one echo train per slice) and the Contrast/Bolus module of the gadolinium bolus.
Pixels are the signal rounded to unsigned 16-bit integers (no rescaling); the default window
shows 0 to the 99.5th percentile of the first time point (the pre-contrast brain).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import highdicom
import numpy as np
import pydicom
from pydicom import Dataset
from pydicom.uid import MRImageStorage

from core.dicom.modules import dicom_date_time, ds_value, ds_values, file_meta, series_datetime
from core.dicom.mr_writer import MrSequence, magnitude_to_stored, mr_template
from core.dicom.study import PatientStudy
from core.geometry import Grid

logger = logging.getLogger(__name__)

SERIES_DESCRIPTION = "DSC perfusion head (synthetic phantom)"
IMAGE_TYPE = ("ORIGINAL", "PRIMARY", "OTHER", "PERFUSION")
"""Value 3 is a defined term of the MR Image module; value 4 (implementation-specific) names the acquisition."""
SEQUENCE_NAME = "epfid2d1_perf"
WINDOW_PERCENTILE = 99.5
"""The default window spans 0 to this percentile of the first time point's stored values."""
CONTRAST_BOLUS_AGENT = "GADOBUTROL 1.0 MMOL/ML"
"""ContrastBolusAgent: a macrocyclic gadolinium chelate, 0.1 ml/kg for the standard 0.1 mmol/kg dose."""
AGENT_CONCENTRATION_MMOL_PER_ML = 1.0
"""Gadolinium concentration of :data:`CONTRAST_BOLUS_AGENT`."""
_INTERVAL_TOLERANCE = 1e-3
"""Relative slack when checking that time points are at least RepetitionTime apart."""
_DATE_TIME_FORMAT = ("%Y%m%d", "%H%M%S.%f")


def _check_inputs(
    signal: np.ndarray, times_s: np.ndarray, grid: Grid, out_dir: Path, repetition_time_ms: float
) -> None:
    if signal.ndim != 4 or tuple(signal.shape[1:]) != tuple(grid.shape):
        raise ValueError(f"signal must be (T, nz, ny, nx) with (nz, ny, nx) = {grid.shape}, got {signal.shape}")
    if times_s.shape != (signal.shape[0],):
        raise ValueError(f"times_s must hold one time per time point ({signal.shape[0]}), got shape {times_s.shape}")
    if not np.all(np.isfinite(times_s)) or np.any(np.diff(times_s) <= 0) or times_s[0] < 0:
        raise ValueError("times_s must be finite, >= 0 and strictly increasing (s from the first time point)")
    if len(times_s) > 1 and np.diff(times_s).min() < repetition_time_ms / 1000.0 * (1.0 - _INTERVAL_TOLERANCE):
        raise ValueError(
            f"time points {np.diff(times_s).min():.3f} s apart are closer than RepetitionTime "
            f"{repetition_time_ms:g} ms; a 2D multi-slice acquisition revisits a slice once per TR"
        )
    if out_dir.exists() and any(out_dir.glob("DSC_*.dcm")):
        raise FileExistsError(f"{out_dir} already holds DSC_*.dcm files; write each series into an empty folder")


def dsc_sequence(
    grid: Grid,
    *,
    echo_time_ms: float,
    repetition_time_ms: float,
    flip_angle_deg: float,
    magnetic_field_strength_t: float,
) -> MrSequence:
    """Single-shot fat-saturated 2D gradient-echo EPI: one echo train of ``ny`` phase encoding lines per slice."""
    return MrSequence(
        scanning_sequence=("EP",),
        sequence_variant=("SK", "SS"),
        scan_options=("FS",),
        sequence_name=SEQUENCE_NAME,
        echo_time_ms=echo_time_ms,
        repetition_time_ms=repetition_time_ms,
        flip_angle_deg=flip_angle_deg,
        echo_train_length=grid.shape[1],
        magnetic_field_strength_t=magnetic_field_strength_t,
    )


def _add_contrast_bolus(ds: Dataset, volume_ml: float | None, start: str | None) -> None:
    """Contrast/Bolus module (required: every image of a DSC series is acquired around a gadolinium bolus)."""
    ds.ContrastBolusAgent = CONTRAST_BOLUS_AGENT
    ds.ContrastBolusRoute = "IV"
    ds.ContrastBolusIngredient = "GADOLINIUM"
    if volume_ml is not None:
        ds.ContrastBolusVolume = ds_value(volume_ml)
    if start is not None:
        ds.ContrastBolusStartTime = start


def _window(stored: np.ndarray) -> tuple[float, float]:
    """``(WindowCenter, WindowWidth)`` spanning 0 to :data:`WINDOW_PERCENTILE` of the first time point."""
    top = max(float(np.percentile(stored[0], WINDOW_PERCENTILE)), 2.0)
    return round(top / 2.0), round(top)


def write_dsc_series(
    signal: np.ndarray,
    times_s: np.ndarray,
    grid: Grid,
    study: PatientStudy,
    out_dir: Path,
    *,
    frame_of_reference_uid: str,
    echo_time_ms: float = 30.0,
    repetition_time_ms: float = 1000.0,
    flip_angle_deg: float = 60.0,
    magnetic_field_strength_t: float = 3.0,
    series_number: int = 1,
    series_description: str = SERIES_DESCRIPTION,
    contrast_bolus_volume_ml: float | None = None,
    contrast_bolus_start_s: float | None = None,
) -> list[Path]:
    """Write every time point of ``signal`` as single-frame MR images of one series.

    Parameters
    ----------
    signal
        ``(T, nz, ny, nx)`` magnitude signal (arbitrary units, rounded to integers 0-65535 when stored).
    times_s
        ``(T,)`` time of every time point after the first (s), strictly increasing, at least
        RepetitionTime apart; ``times_s[0]`` usually 0.
    grid
        Geometry of every time point (axial, see :func:`core.dicom.mr_writer.mr_template`).
    study
        Patient, study and equipment attributes.
    out_dir
        Folder for the ``DSC_*.dcm`` files (created; must not already hold any).
    frame_of_reference_uid
        FrameOfReferenceUID shared with the other series of the study.
    echo_time_ms, repetition_time_ms, flip_angle_deg, magnetic_field_strength_t
        EchoTime (ms), RepetitionTime (ms, the time between two excitations of one slice),
        FlipAngle (degrees) and MagneticFieldStrength (T).
    series_number, series_description
        SeriesNumber and SeriesDescription.
    contrast_bolus_volume_ml, contrast_bolus_start_s
        ContrastBolusVolume (ml) and the injection's start after the first time point (s,
        ContrastBolusStartTime); not written when ``None``.

    Returns
    -------
    list of Path
        The files, time point by time point, inferior to superior within a time point.

    Raises
    ------
    ValueError
        If shapes, times or sequence parameters are inconsistent, or the signal cannot be stored.
    FileExistsError
        If ``out_dir`` already holds a DSC series.
    """
    out_dir = Path(out_dir)
    times_s = np.asarray(times_s, dtype=np.float64)
    _check_inputs(signal, times_s, grid, out_dir, repetition_time_ms)
    sequence = dsc_sequence(
        grid,
        echo_time_ms=echo_time_ms,
        repetition_time_ms=repetition_time_ms,
        flip_angle_deg=flip_angle_deg,
        magnetic_field_strength_t=magnetic_field_strength_t,
    )
    stored = magnitude_to_stored(signal)
    template = mr_template(
        grid,
        study,
        frame_of_reference_uid=frame_of_reference_uid,
        series_number=series_number,
        series_description=series_description,
        sequence=sequence,
        image_type=IMAGE_TYPE,
        window=_window(stored),
        window_explanation="BRAIN",
    )
    started = series_datetime(study, series_number)
    bolus_start = None
    if contrast_bolus_start_s is not None:
        bolus_start = dicom_date_time(started + timedelta(seconds=contrast_bolus_start_s))[1]
    _add_contrast_bolus(template, contrast_bolus_volume_ml, bolus_start)
    template.NumberOfTemporalPositions = len(times_s)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, t in enumerate(times_s):
        time_point = _time_point(template, k, started + timedelta(seconds=float(t)))
        for j, position in enumerate(grid.slice_positions_lps_mm()):
            ds = Dataset()
            ds.update(time_point)  # shares the time point's elements; only new elements are added below
            sop_instance_uid = highdicom.UID()
            ds.file_meta = file_meta(MRImageStorage, sop_instance_uid)
            ds.SOPInstanceUID = sop_instance_uid
            ds.InstanceNumber = k * grid.shape[0] + j + 1
            ds.ImagePositionPatient = ds_values(position)
            ds.SliceLocation = ds_value(position[2])
            ds.PixelData = stored[k, j].tobytes()
            path = out_dir / f"DSC_{k + 1:03d}_{j + 1:03d}.dcm"
            pydicom.dcmwrite(path, ds, enforce_file_format=True)
            paths.append(path)
    logger.info(
        "wrote DSC series %s: %d time points x %d slices to %s", series_number, len(times_s), grid.shape[0], out_dir
    )
    return paths


def _time_point(template: Dataset, k: int, moment: datetime) -> Dataset:
    """The template plus the attributes of time point ``k`` (0-based) acquired at ``moment``."""
    ds = Dataset()
    ds.update(template)
    date, time = (moment.strftime(f) for f in _DATE_TIME_FORMAT)
    ds.TemporalPositionIdentifier = k + 1
    ds.AcquisitionNumber = k + 1
    ds.AcquisitionDate, ds.AcquisitionTime = date, time
    ds.ContentDate, ds.ContentTime = date, time
    ds.AcquisitionDateTime = date + time
    return ds
