"""Write and read a reconstructed SPECT volume as one multi-frame NM Image Storage object.

Layout
------
ImageType ``ORIGINAL\\PRIMARY\\RECON TOMO\\EMISSION``; frame ``k + 1`` is array
slice ``k`` of the ``(z, y, x)`` volume (index 0 the most inferior), with
FrameIncrementPointer -> SliceVector ``[1, 2, ..., nz]``.  The legacy NM IOD has
no per-frame position: as in GDCM/ITK, frame ``k`` lies at
``ImagePositionPatient + k * SpacingBetweenSlices * (row x column direction)``,
both taken from the Detector Information Sequence.  With ImageOrientationPatient
``[1, 0, 0, 0, 1, 0]`` that normal is +z (towards the head).

Scaling
-------
The NM IOD has no Modality LUT (no RescaleSlope/RescaleIntercept), and its
pixels are unsigned integers.  A float volume ``v >= 0`` is stored as
``stored = round(v / slope)`` in uint16 with ``slope = max(v) / 65535``, and the
slope goes into the standard Real World Value Mapping Sequence of the NM Image
module (RealWorldValueSlope, intercept 0, units UCUM ``{counts}``), so that
``v = stored * RealWorldValueSlope`` to within ``slope / 2`` (0.0008 % of the
maximum).  Units (0054,1001) ``CNTS`` (from the PET Series module) is written too,
for viewers that look there; dciodvfy reports it as a warning (Standard Extended
SOP Class), not an error.  RescaleSlope is deliberately not written: it is not
part of the NM IOD.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import highdicom
import numpy as np
import pydicom
from highdicom.pm import RealWorldValueMapping
from highdicom.sr import CodedConcept
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.tag import Tag
from pydicom.uid import NuclearMedicineImageStorage

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
from core.dicom.plane import AXIAL_ORIENTATION, require_axial
from core.dicom.radiopharmaceuticals import (
    TC99M,
    TC99M_PHOTOPEAK_WINDOW_KEV,
    TC99M_PHOTOPEAK_WINDOW_NAME,
    radiopharmaceutical_for,
)
from core.dicom.study import SYNTHETIC_NOTICE, PatientStudy
from core.errors import InputDataError
from core.geometry import Grid

logger = logging.getLogger(__name__)

UINT16_MAX = 65535
"""Largest stored value; the maximum of the volume is stored as this."""

CORRECTED_IMAGE = ("UNIF", "COR", "ATTN")
"""CorrectedImage flags: uniformity, centre of rotation and attenuation correction."""

_SLICE_VECTOR = Tag(0x0054, 0x0080)


def counts_to_stored(volume: np.ndarray) -> tuple[np.ndarray, float]:
    """Quantise a non-negative float volume to uint16 and return ``(stored, slope)``.

    ``volume ~= stored * slope`` with ``slope = max(volume) / 65535`` (1.0 for an
    all-zero volume); the absolute error is at most ``slope / 2``.  Negative
    values (e.g. from post-filtering) are clipped to 0 with a warning.

    Raises
    ------
    ValueError
        If ``volume`` holds NaN or infinite values.
    """
    if not np.all(np.isfinite(volume)):
        raise ValueError("volume holds NaN or infinite values; replace them with 0 counts before writing")
    n_negative = int(np.count_nonzero(volume < 0))
    if n_negative:
        logger.warning("NM volume has %d negative voxels (min %.3g); they are stored as 0", n_negative, volume.min())
    clipped = np.clip(volume.astype(np.float64), 0.0, None)
    peak = float(clipped.max())
    if peak == 0.0:
        logger.warning("NM volume is all zero; it is written with RealWorldValueSlope 1")
        return np.zeros(volume.shape, dtype="<u2"), 1.0
    slope = peak / UINT16_MAX
    stored = np.rint(clipped / slope).astype("<u2")
    return stored, slope


def _add_isotope(ds: Dataset, tracer: str, acquisition_start: datetime) -> None:
    """NM Isotope module: energy window and radiopharmaceutical."""
    drug = radiopharmaceutical_for(tracer)
    window_range = Dataset()
    window_range.EnergyWindowLowerLimit = ds_value(TC99M_PHOTOPEAK_WINDOW_KEV[0])
    window_range.EnergyWindowUpperLimit = ds_value(TC99M_PHOTOPEAK_WINDOW_KEV[1])
    window = Dataset()
    window.EnergyWindowRangeSequence = [window_range]
    window.EnergyWindowName = TC99M_PHOTOPEAK_WINDOW_NAME
    ds.EnergyWindowInformationSequence = [window]
    ds.NumberOfEnergyWindows = 1

    injected = acquisition_start - timedelta(minutes=drug.uptake_min)
    item = Dataset()
    item.Radiopharmaceutical = drug.name
    item.RadiopharmaceuticalRoute = drug.route
    item.RadiopharmaceuticalStartTime = injected.strftime("%H%M%S")
    item.RadionuclideTotalDose = ds_value(drug.dose_mbq)
    item.RadionuclideCodeSequence = [CodedConcept.from_code(TC99M)]
    item.AdministrationRouteCodeSequence = [CodedConcept.from_code(drug.route_code)]
    item.RadiopharmaceuticalCodeSequence = [CodedConcept.from_code(drug.code)]
    ds.RadiopharmaceuticalInformationSequence = [item]


def _add_detector_and_rotation(ds: Dataset, grid: Grid, n_views: int, time_per_view_s: float) -> None:
    """NM Detector and NM TOMO Acquisition modules (one LEHR head record, one 360-degree rotation)."""
    detector = Dataset()
    detector.CollimatorGridName = "LEHR"
    detector.CollimatorType = "PARA"
    detector.FocalDistance = None
    detector.FieldOfViewShape = "RECTANGLE"
    detector.FieldOfViewDimensions = [533, 387]
    detector.ImagePositionPatient = ds_values(grid.origin_lps_mm)
    detector.ImageOrientationPatient = ds_values(AXIAL_ORIENTATION)
    detector.StartAngle = ds_value(0.0)
    ds.DetectorInformationSequence = [detector]
    ds.NumberOfDetectors = 1

    rotation = Dataset()
    rotation.StartAngle = ds_value(0.0)
    rotation.AngularStep = ds_value(360.0 / n_views)
    rotation.RotationDirection = "CW"
    rotation.ScanArc = ds_value(360.0)
    rotation.ActualFrameDuration = round(time_per_view_s * 1000.0)
    rotation.NumberOfFramesInRotation = n_views
    ds.RotationInformationSequence = [rotation]
    ds.NumberOfRotations = 1


def _add_image(ds: Dataset, grid: Grid, stored: np.ndarray, slope: float) -> None:
    """Image Pixel, NM Image Pixel, Multi-frame, NM Multi-frame, NM Image and NM Reconstruction modules."""
    nz, ny, nx = grid.shape
    dz, dy, dx = grid.spacing_mm
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.ImageComments = SYNTHETIC_NOTICE
    ds.PatientOrientation = ["L", "P"]
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.CountsAccumulated = None
    ds.CorrectedImage = list(CORRECTED_IMAGE)
    ds.Units = "CNTS"
    ds.RealWorldValueMappingSequence = [
        RealWorldValueMapping(
            lut_label="COUNTS",
            lut_explanation="Reconstructed counts per voxel",
            unit=codes.UCUM.Counts,
            value_range=(0.0, float(UINT16_MAX)),
            slope=slope,
            intercept=0.0,
        )
    ]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ny, nx
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.PixelSpacing = ds_values((dy, dx))
    ds.NumberOfFrames = nz
    ds.FrameIncrementPointer = _SLICE_VECTOR
    ds.SliceVector = list(range(1, nz + 1))
    ds.NumberOfSlices = nz
    ds.SliceThickness = ds_value(dz)
    ds.SpacingBetweenSlices = ds_value(dz)
    ds.ReconstructionDiameter = ds_value(max(nx * dx, ny * dy))
    ds.PixelData = stored.tobytes()


def _add_patient_orientation(ds: Dataset) -> None:
    """NM/PET Patient Orientation module: recumbent, supine, head first."""
    orientation = CodedConcept.from_code(codes.SCT.Recumbent)
    orientation.PatientOrientationModifierCodeSequence = [CodedConcept.from_code(codes.SCT.Supine)]
    ds.PatientOrientationCodeSequence = [orientation]
    ds.PatientGantryRelationshipCodeSequence = [CodedConcept.from_code(codes.SCT.Headfirst)]


def _check_inputs(volume: np.ndarray, grid: Grid, n_views: int, time_per_view_s: float) -> None:
    if volume.ndim != 3 or tuple(volume.shape) != tuple(grid.shape):
        raise ValueError(f"volume must have the grid's shape (nz, ny, nx) = {grid.shape}, got {volume.shape}")
    if n_views < 1 or time_per_view_s <= 0:
        raise ValueError(f"n_views must be >= 1 and time_per_view_s > 0, got {n_views} and {time_per_view_s}")


def write_nm_series(
    volume: np.ndarray,
    grid: Grid,
    study: PatientStudy,
    out_path: Path,
    *,
    frame_of_reference_uid: str,
    tracer: str,
    n_views: int,
    time_per_view_s: float,
    series_number: int,
    series_description: str,
) -> Path:
    """Write a reconstructed SPECT volume as one multi-frame NM Image Storage file.

    Parameters
    ----------
    volume
        ``(nz, ny, nx)`` non-negative reconstructed counts per voxel (float or int).
        Stored as uint16 with a Real World Value Mapping slope, see the module docstring.
    grid
        Geometry of ``volume`` (axial, LPS).
    study
        Patient, study and equipment attributes.
    out_path
        File to write (parent folders are created; an existing file is replaced).
    frame_of_reference_uid
        FrameOfReferenceUID shared with the CT of the same SPECT/CT study.
    tracer
        ``"perfusion"`` (Tc-99m MAA), ``"ventilation"`` (Tc-99m Technegas) or ``"bone"`` (Tc-99m MDP).
    n_views
        Number of projection angles over the 360-degree acquisition arc.
    time_per_view_s
        Acquisition time per projection in s (written in ms as ActualFrameDuration).
    series_number, series_description
        SeriesNumber and SeriesDescription.

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    ValueError
        If the shape disagrees with ``grid``, the tracer is unknown, the
        acquisition parameters are not positive or the volume is not finite.
    """
    out_path = Path(out_path)
    radiopharmaceutical_for(tracer)
    _check_inputs(volume, grid, n_views, time_per_view_s)
    stored, slope = counts_to_stored(volume)
    started = series_datetime(study, series_number)
    sop_instance_uid = highdicom.UID()
    ds = Dataset()
    ds.file_meta = file_meta(NuclearMedicineImageStorage, sop_instance_uid)
    add_patient_and_study(ds, study)
    add_series_and_frame_of_reference(
        ds,
        modality="NM",
        series_instance_uid=highdicom.UID(),
        series_number=series_number,
        series_description=series_description,
        started=started,
        frame_of_reference_uid=frame_of_reference_uid,
        patient_position=None,
    )
    _add_patient_orientation(ds)
    add_equipment(ds, study)
    ds.AcquisitionDate, ds.AcquisitionTime = dicom_date_time(started)
    ds.ContentDate, ds.ContentTime = dicom_date_time(started + timedelta(seconds=n_views * time_per_view_s))
    ds.InstanceNumber = 1
    _add_image(ds, grid, stored, slope)
    _add_isotope(ds, tracer, started)
    _add_detector_and_rotation(ds, grid, n_views, time_per_view_s)
    add_sop_common(ds, NuclearMedicineImageStorage, started)
    ds.SOPInstanceUID = sop_instance_uid
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(out_path, ds, enforce_file_format=True)
    logger.info("wrote NM %s series %s (%d frames) to %s", tracer, series_number, grid.shape[0], out_path)
    return out_path


def _stored_to_counts_parameters(ds: Dataset) -> tuple[float, float]:
    """``(slope, intercept)`` from the Real World Value Mapping, else the Modality LUT, else identity."""
    for mapping in ds.get("RealWorldValueMappingSequence", []):
        if "RealWorldValueSlope" in mapping:
            return float(mapping.RealWorldValueSlope), float(mapping.get("RealWorldValueIntercept", 0.0))
    return float(ds.get("RescaleSlope", 1.0)), float(ds.get("RescaleIntercept", 0.0))


def _frame_geometry(ds: Dataset, source: str) -> tuple[tuple[float, float, float], float]:
    """``(ImagePositionPatient of frame 1, signed spacing along +z)`` of a RECON TOMO object."""
    detector = ds.DetectorInformationSequence[0] if ds.get("DetectorInformationSequence") else ds
    orientation = detector.get("ImageOrientationPatient") or ds.get("ImageOrientationPatient")
    position = detector.get("ImagePositionPatient") or ds.get("ImagePositionPatient")
    if orientation is None or position is None:
        raise InputDataError(
            f"{source}: no ImagePositionPatient/ImageOrientationPatient in DetectorInformationSequence"
        )
    require_axial(orientation, source)
    spacing = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness")
    if not spacing:
        raise InputDataError(f"{source}: neither SpacingBetweenSlices nor SliceThickness is set; slice spacing unknown")
    x, y, z = (float(v) for v in position)
    return (x, y, z), float(spacing)


def read_nm_volume(path: Path) -> tuple[np.ndarray, Grid]:
    """Read a reconstructed tomographic NM Image (RECON TOMO) as a float volume and its grid.

    The inverse of :func:`write_nm_series`; also reads other vendors' axial
    RECON TOMO objects (see the module docstring for the frame geometry).

    Parameters
    ----------
    path
        NM Image Storage file.

    Returns
    -------
    volume : numpy.ndarray
        ``(nz, ny, nx)`` float32 counts, slice 0 the most inferior, after the
        Real World Value Mapping (or RescaleSlope/Intercept where a vendor wrote one).
    grid : Grid
        Its geometry.

    Raises
    ------
    InputDataError
        If the file is not an axial reconstructed tomographic NM image.
    """
    ds = pydicom.dcmread(path)
    source = Path(path).name
    image_type = [str(v) for v in ds.get("ImageType", [])]
    if ds.SOPClassUID != NuclearMedicineImageStorage or image_type[2:3] != ["RECON TOMO"]:
        raise InputDataError(
            f"{source} is not a reconstructed tomographic NM image (SOP class {ds.SOPClassUID}, "
            f"ImageType {image_type}); only RECON TOMO volumes can be read, not projections or gated data"
        )
    pointers = ds.FrameIncrementPointer
    pointers = list(pointers) if isinstance(pointers, (list, pydicom.multival.MultiValue)) else [pointers]
    if pointers != [_SLICE_VECTOR]:
        raise InputDataError(f"{source}: FrameIncrementPointer {pointers} is not just SliceVector; cannot stack frames")
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    frames = frames[np.argsort(np.asarray(ds.SliceVector, dtype=np.int64), kind="stable")]
    slope, intercept = _stored_to_counts_parameters(ds)
    volume = (frames.astype(np.float64) * slope + intercept).astype(np.float32)
    (x, y, z), spacing = _frame_geometry(ds, source)
    if spacing < 0:  # frames run towards the feet: flip so that index 0 is the most inferior
        volume = volume[::-1]
        z += spacing * (volume.shape[0] - 1)
    dy, dx = (float(v) for v in ds.PixelSpacing)
    grid = Grid(tuple(volume.shape), (abs(spacing), dy, dx), (x, y, z))
    return np.ascontiguousarray(volume), grid
