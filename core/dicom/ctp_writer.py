"""Write a 4D CT perfusion acquisition as one CT Image Storage series, as a scanner's cine mode does.

Frame ``k`` (time ``times_s[k]`` after the first) of a ``(T, z, y, x)`` HU array becomes ``nz``
single-frame files ``CTP_<k+1:03d>_<slice+1:03d>.dcm``.  A slice has the same
ImagePositionPatient in every frame; the frames differ in AcquisitionNumber (``k + 1``),
AcquisitionDateTime, AcquisitionTime and ContentTime (series start plus ``times_s[k]``, to the
microsecond).  TemporalPositionIdentifier and NumberOfTemporalPositions are not written: they
belong to the MR and PET IODs, and dciodvfy flags them in a CT image as a Standard Extended SOP Class.
InstanceNumber runs over the whole series, frame by frame, inferior to superior.  The header is
the CT template of :mod:`core.dicom.ct_writer` with a head perfusion protocol (80 kVp, axial
cine at a fixed table position, head filter and head dosimetry phantom, brain window).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import highdicom
import numpy as np
import pydicom
from highdicom.sr import CodedConcept
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage

from core.dicom.ct_writer import ct_template, hu_to_stored
from core.dicom.modules import ds_value, ds_values, file_meta, series_datetime
from core.dicom.study import PatientStudy
from core.geometry import Grid

logger = logging.getLogger(__name__)

SERIES_DESCRIPTION = "CT perfusion head (synthetic phantom)"
CTP_WINDOWS = (("BRAIN", 40.0, 80.0), ("VESSELS", 150.0, 600.0))
"""VOI LUT windows ``(explanation, WindowCenter HU, WindowWidth HU)``; the first is the default."""

# Cine head perfusion protocol (CT Image module, type 3); the helical-only SpiralPitchFactor is removed.
_CTP_ACQUISITION = {
    "ScanOptions": "AXIAL MODE",
    "DataCollectionDiameter": ds_value(250.0),
    "FilterType": "HEAD FILTER",
    "RevolutionTime": 1.0,
    "ExposureTime": 1000,
    "XRayTubeCurrent": 100,
    "Exposure": 100,
    "CTDIvol": 160.0,
}
_DATE_TIME_FORMAT = ("%Y%m%d", "%H%M%S.%f")


def _check_inputs(hu: np.ndarray, times_s: np.ndarray, grid: Grid, out_dir: Path) -> None:
    if hu.ndim != 4 or tuple(hu.shape[1:]) != tuple(grid.shape):
        raise ValueError(f"hu must be (T, nz, ny, nx) with (nz, ny, nx) = {grid.shape}, got {hu.shape}")
    if times_s.shape != (hu.shape[0],):
        raise ValueError(f"times_s must hold one time per frame ({hu.shape[0]}), got shape {times_s.shape}")
    if not np.all(np.isfinite(times_s)) or np.any(np.diff(times_s) <= 0) or times_s[0] < 0:
        raise ValueError("times_s must be finite, >= 0 and strictly increasing (s from the first frame)")
    if out_dir.exists() and any(out_dir.glob("CTP_*.dcm")):
        raise FileExistsError(f"{out_dir} already holds CTP_*.dcm files; write each series into an empty folder")


def _head_protocol(ds: Dataset, grid: Grid) -> None:
    """Turn the chest CT template into a head perfusion one (in place)."""
    dz = grid.spacing_mm[0]
    ds.BodyPartExamined = "HEAD"
    for keyword, value in _CTP_ACQUISITION.items():
        setattr(ds, keyword, value)
    del ds.SpiralPitchFactor
    ds.TotalCollimationWidth = float(grid.shape[0] * dz)
    ds.CTDIPhantomTypeCodeSequence = [CodedConcept.from_code(codes.DCM.IECHeadDosimetryPhantom)]
    ds.WindowCenter = ds_values(w[1] for w in CTP_WINDOWS)
    ds.WindowWidth = ds_values(w[2] for w in CTP_WINDOWS)
    ds.WindowCenterWidthExplanation = [w[0] for w in CTP_WINDOWS]


def write_ctp_series(
    hu: np.ndarray,
    times_s: np.ndarray,
    grid: Grid,
    study: PatientStudy,
    out_dir: Path,
    *,
    frame_of_reference_uid: str,
    series_number: int = 1,
    series_description: str = SERIES_DESCRIPTION,
    kvp: float = 80.0,
    convolution_kernel: str = "SOFT",
) -> list[Path]:
    """Write every frame of ``hu`` as single-frame CT images of one series.

    Parameters
    ----------
    hu
        ``(T, nz, ny, nx)`` CT numbers in HU (rounded to integers when stored).
    times_s
        ``(T,)`` time of every frame after the first (s), strictly increasing, ``times_s[0]`` usually 0.
    grid
        Geometry of every frame (see :func:`core.dicom.ct_writer.write_ct_series`).
    study
        Patient, study and equipment attributes.
    out_dir
        Folder for the ``CTP_*.dcm`` files (created; must not already hold any).
    frame_of_reference_uid
        FrameOfReferenceUID shared with the other series of the study.
    series_number, series_description, kvp, convolution_kernel
        SeriesNumber, SeriesDescription, KVP (kV) and ConvolutionKernel.

    Returns
    -------
    list of Path
        The files, frame by frame, inferior to superior within a frame.

    Raises
    ------
    ValueError
        If shapes or times are inconsistent or HU values cannot be stored.
    FileExistsError
        If ``out_dir`` already holds a CTP series.
    """
    out_dir = Path(out_dir)
    times_s = np.asarray(times_s, dtype=np.float64)
    _check_inputs(hu, times_s, grid, out_dir)
    stored = hu_to_stored(hu)
    template = ct_template(
        grid,
        study,
        frame_of_reference_uid=frame_of_reference_uid,
        series_number=series_number,
        series_description=series_description,
        kvp=kvp,
        convolution_kernel=convolution_kernel,
    )
    _head_protocol(template, grid)
    started = series_datetime(study, series_number)
    positions = grid.slice_positions_lps_mm()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, t in enumerate(times_s):
        frame = Dataset()
        frame.update(template)
        moment = started + timedelta(seconds=float(t))
        date, time = (moment.strftime(f) for f in _DATE_TIME_FORMAT)
        frame.AcquisitionNumber = k + 1
        frame.AcquisitionDate, frame.AcquisitionTime = date, time
        frame.ContentDate, frame.ContentTime = date, time
        frame.AcquisitionDateTime = date + time
        for j, position in enumerate(positions):
            ds = Dataset()
            ds.update(frame)  # shares the frame's elements; only new elements are added below
            sop_instance_uid = highdicom.UID()
            ds.file_meta = file_meta(CTImageStorage, sop_instance_uid)
            ds.SOPInstanceUID = sop_instance_uid
            ds.InstanceNumber = k * grid.shape[0] + j + 1
            ds.ImagePositionPatient = ds_values(position)
            ds.SliceLocation = ds_value(position[2])
            ds.PixelData = stored[k, j].tobytes()
            path = out_dir / f"CTP_{k + 1:03d}_{j + 1:03d}.dcm"
            pydicom.dcmwrite(path, ds, enforce_file_format=True)
            paths.append(path)
    logger.info("wrote CTP series %s: %d frames x %d slices to %s", series_number, len(times_s), grid.shape[0], out_dir)
    return paths
