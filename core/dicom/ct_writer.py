"""Write a CT volume as a single-frame CT Image Storage series, as a scanner would.

Every slice of a ``(z, y, x)`` Hounsfield-unit volume on a :class:`core.geometry.Grid`
becomes one file ``CT_0001.dcm, CT_0002.dcm, ...``: file ``k + 1`` holds array
slice ``k`` (index 0 is the most inferior slice).  Pixels are stored as signed
16-bit integers with RescaleIntercept -1024 and RescaleSlope 1, the convention of
many scanners, so ``HU = stored - 1024`` covers -33792 to 31743 HU without clipping.

The attributes common to all slices are built once into a template; each slice
only adds its own SOPInstanceUID, InstanceNumber, ImagePositionPatient,
SliceLocation and PixelData, which keeps a 512x512x300 series to a few seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path

import highdicom
import numpy as np
import pydicom
from highdicom.sr import CodedConcept
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage

from core.dicom.modules import (
    add_equipment,
    add_patient_and_study,
    add_series_and_frame_of_reference,
    add_sop_common,
    dicom_date_time,
    ds_value,
    ds_values,
    file_meta,
    series_datetime,
)
from core.dicom.plane import AXIAL_ORIENTATION
from core.dicom.study import SYNTHETIC_NOTICE, PatientStudy
from core.geometry import Grid

logger = logging.getLogger(__name__)

RESCALE_INTERCEPT_HU = -1024
"""HU = stored value + RESCALE_INTERCEPT_HU (RescaleSlope 1)."""

WINDOWS = (("LUNG", -600.0, 1500.0), ("MEDIASTINUM", 40.0, 400.0))
"""VOI LUT windows ``(explanation, WindowCenter HU, WindowWidth HU)``; the first is the default."""

_INT16 = np.iinfo(np.int16)

# Helical chest protocol of a typical 64-slice scanner (CT Image module, type 3).
_CT_ACQUISITION = {
    "ScanOptions": "HELICAL MODE",
    "DataCollectionDiameter": ds_value(500.0),
    "GantryDetectorTilt": ds_value(0.0),
    "TableHeight": ds_value(160.0),
    "RotationDirection": "CW",
    "ExposureTime": 500,
    "XRayTubeCurrent": 120,
    "Exposure": 60,
    "FilterType": "BODY FILTER",
    "GeneratorPower": 14,
    "FocalSpots": ds_value(0.7),
    "RevolutionTime": 0.5,
    "SingleCollimationWidth": 0.625,
    "TotalCollimationWidth": 40.0,
    "SpiralPitchFactor": 0.984,
    "CTDIvol": 4.5,
}


def hu_to_stored(hu: np.ndarray) -> np.ndarray:
    """Round HU to the int16 stored values (``stored = round(HU) - RescaleIntercept``).

    Raises
    ------
    ValueError
        If ``hu`` holds NaN/inf or values the int16 encoding cannot represent.
    """
    if not np.all(np.isfinite(hu)):
        raise ValueError("hu holds NaN or infinite values; replace them (e.g. with -1024 HU for air) before writing")
    stored = np.rint(hu).astype(np.int32) - RESCALE_INTERCEPT_HU
    low, high = int(stored.min()), int(stored.max())
    if low < _INT16.min or high > _INT16.max:
        raise ValueError(
            f"hu spans {low + RESCALE_INTERCEPT_HU}..{high + RESCALE_INTERCEPT_HU} HU, outside the representable "
            f"{_INT16.min + RESCALE_INTERCEPT_HU}..{_INT16.max + RESCALE_INTERCEPT_HU} HU; clip the volume first"
        )
    return stored.astype("<i2")


def _check_inputs(hu: np.ndarray, grid: Grid, out_dir: Path) -> None:
    if hu.ndim != 3 or tuple(hu.shape) != tuple(grid.shape):
        raise ValueError(f"hu must have the grid's shape (nz, ny, nx) = {grid.shape}, got {hu.shape}")
    if out_dir.exists() and any(out_dir.glob("CT_*.dcm")):
        raise FileExistsError(
            f"{out_dir} already holds CT_*.dcm files; write each series into an empty folder "
            "(or delete the old files) so that series are not mixed"
        )


def ct_template(
    grid: Grid,
    study: PatientStudy,
    *,
    frame_of_reference_uid: str,
    series_number: int,
    series_description: str,
    kvp: float,
    convolution_kernel: str,
) -> Dataset:
    """Attributes shared by every slice of the series."""
    _, ny, nx = grid.shape
    dz, dy, dx = grid.spacing_mm
    started = series_datetime(study, series_number)
    ds = Dataset()
    add_patient_and_study(ds, study)
    add_series_and_frame_of_reference(
        ds,
        modality="CT",
        series_instance_uid=highdicom.UID(),
        series_number=series_number,
        series_description=series_description,
        started=started,
        frame_of_reference_uid=frame_of_reference_uid,
    )
    add_equipment(ds, study)
    ds.AcquisitionNumber = 1
    ds.AcquisitionDate, ds.AcquisitionTime = dicom_date_time(started)
    ds.ContentDate, ds.ContentTime = dicom_date_time(started)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImageComments = SYNTHETIC_NOTICE
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PixelSpacing = ds_values((dy, dx))
    ds.ImageOrientationPatient = ds_values(AXIAL_ORIENTATION)
    ds.SliceThickness = ds_value(dz)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ny, nx
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = ds_value(RESCALE_INTERCEPT_HU)
    ds.RescaleSlope = ds_value(1.0)
    ds.RescaleType = "HU"
    ds.KVP = ds_value(kvp)
    ds.ReconstructionDiameter = ds_value(max(nx * dx, ny * dy))
    ds.ConvolutionKernel = convolution_kernel
    for keyword, value in _CT_ACQUISITION.items():
        setattr(ds, keyword, value)
    ds.CTDIPhantomTypeCodeSequence = [CodedConcept.from_code(codes.DCM.IECBodyDosimetryPhantom)]
    ds.WindowCenter = ds_values(w[1] for w in WINDOWS)
    ds.WindowWidth = ds_values(w[2] for w in WINDOWS)
    ds.WindowCenterWidthExplanation = [w[0] for w in WINDOWS]
    add_sop_common(ds, CTImageStorage, started)
    return ds


def write_ct_series(
    hu: np.ndarray,
    grid: Grid,
    study: PatientStudy,
    out_dir: Path,
    *,
    frame_of_reference_uid: str,
    series_number: int = 1,
    series_description: str = "Chest CT (synthetic phantom)",
    kvp: float = 120.0,
    convolution_kernel: str = "STANDARD",
) -> list[Path]:
    """Write ``hu`` as one CT Image Storage file per axial slice.

    Parameters
    ----------
    hu
        ``(nz, ny, nx)`` CT numbers in HU (any real dtype; rounded to integers).
    grid
        Geometry of ``hu``; slice ``k`` is written at ImagePositionPatient
        ``grid.slice_positions_lps_mm()[k]`` with ImageOrientationPatient
        ``[1, 0, 0, 0, 1, 0]``, PixelSpacing ``(dy, dx)``, SliceThickness ``dz``.
    study
        Patient, study and equipment attributes.
    out_dir
        Folder for ``CT_0001.dcm`` ... (created; must not already hold ``CT_*.dcm``).
    frame_of_reference_uid
        FrameOfReferenceUID shared with the other series of the study.
    series_number, series_description, kvp, convolution_kernel
        SeriesNumber, SeriesDescription, KVP (kV) and ConvolutionKernel.

    Returns
    -------
    list of Path
        The written files, in slice order (index 0 = most inferior).

    Raises
    ------
    ValueError
        If the shape disagrees with ``grid`` or HU values cannot be stored.
    FileExistsError
        If ``out_dir`` already holds a CT series.
    """
    out_dir = Path(out_dir)
    _check_inputs(hu, grid, out_dir)
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
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, position in enumerate(grid.slice_positions_lps_mm()):
        ds = Dataset()
        ds.update(template)  # shares the template's elements; only new elements are added below
        sop_instance_uid = highdicom.UID()
        ds.file_meta = file_meta(CTImageStorage, sop_instance_uid)
        ds.SOPInstanceUID = sop_instance_uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = ds_values(position)
        ds.SliceLocation = ds_value(position[2])
        ds.PixelData = stored[k].tobytes()
        path = out_dir / f"CT_{k + 1:04d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    logger.info("wrote CT series %s: %d slices of %dx%d to %s", series_number, len(paths), *grid.shape[1:], out_dir)
    return paths
