"""The MR Image Storage header shared by the MR series the project writes, as an MR scanner fills it.

:func:`mr_template` builds the attributes common to every single-frame image of an axial MR series
(MR Image IOD, PS3.3 A.4): Patient, General Study, General Series (head first supine, the head),
Frame of Reference, General Equipment, General Image, Image Plane, Image Pixel (unsigned 16-bit
magnitude, MONOCHROME2, no rescaling), MR Image (the pulse sequence of :class:`MrSequence`),
VOI LUT and SOP Common.  A series writer adds the per-image attributes (SOPInstanceUID,
InstanceNumber, ImagePositionPatient, SliceLocation, times, PixelData) and whatever its protocol
needs (Contrast/Bolus, temporal positions).

MR signal is in arbitrary scanner units: :func:`magnitude_to_stored` rounds it to the stored
unsigned integers, as a scanner's reconstruction does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import highdicom
import numpy as np
from pydicom import Dataset
from pydicom.uid import MRImageStorage

from core.dicom.modules import (
    add_equipment,
    add_patient_and_study,
    add_series_and_frame_of_reference,
    add_sop_common,
    dicom_date_time,
    ds_value,
    ds_values,
    series_datetime,
)
from core.dicom.plane import AXIAL_ORIENTATION
from core.dicom.study import SYNTHETIC_NOTICE, PatientStudy
from core.geometry import Grid

logger = logging.getLogger(__name__)

PROTON_GYROMAGNETIC_RATIO_MHZ_PER_T = 42.577478
"""gamma / 2 pi of the hydrogen nucleus (MHz/T): ImagingFrequency = this x MagneticFieldStrength."""

_UINT16 = np.iinfo(np.uint16)
_MAX_NEGATIVE_FRACTION = 0.01
"""Negative signal below this fraction of the maximum is noise and stored as 0; more is an error."""

_SCANNING_SEQUENCES = frozenset({"SE", "IR", "GR", "EP", "RM"})
_SEQUENCE_VARIANTS = frozenset({"SK", "MTC", "SS", "TRSS", "SP", "MP", "OSP", "NONE"})


@dataclass(frozen=True)
class MrSequence:
    """Pulse sequence and receive chain of an MR acquisition, in the MR Image module's terms.

    Parameters
    ----------
    scanning_sequence
        ScanningSequence values (enumerated: SE, IR, GR, EP, RM).
    sequence_variant
        SequenceVariant values (enumerated: SK, MTC, SS, TRSS, SP, MP, OSP, NONE).
    scan_options
        ScanOptions values (defined terms such as FS, PFP, PER); may be empty.
    sequence_name
        SequenceName (SH, at most 16 characters), the vendor's name of the sequence.
    echo_time_ms, repetition_time_ms
        EchoTime and RepetitionTime (ms).
    flip_angle_deg
        FlipAngle (degrees, 0-180].
    echo_train_length
        EchoTrainLength: lines of k-space acquired per excitation (the phase encoding steps of a
        single-shot EPI).
    magnetic_field_strength_t
        MagneticFieldStrength (T); ImagingFrequency follows for the proton.
    pixel_bandwidth_hz
        PixelBandwidth (Hz per pixel in the frequency encoding direction).
    mr_acquisition_type
        MRAcquisitionType: ``"2D"`` (slice by slice) or ``"3D"``.
    """

    scanning_sequence: tuple[str, ...]
    sequence_variant: tuple[str, ...]
    scan_options: tuple[str, ...]
    sequence_name: str
    echo_time_ms: float
    repetition_time_ms: float
    flip_angle_deg: float
    echo_train_length: int
    magnetic_field_strength_t: float = 3.0
    pixel_bandwidth_hz: float = 1500.0
    mr_acquisition_type: str = "2D"

    def __post_init__(self) -> None:
        if not self.scanning_sequence or not set(self.scanning_sequence) <= _SCANNING_SEQUENCES:
            raise ValueError(f"scanning_sequence must use {sorted(_SCANNING_SEQUENCES)}, got {self.scanning_sequence}")
        if not self.sequence_variant or not set(self.sequence_variant) <= _SEQUENCE_VARIANTS:
            raise ValueError(f"sequence_variant must use {sorted(_SEQUENCE_VARIANTS)}, got {self.sequence_variant}")
        if not 0 < len(self.sequence_name) <= 16:
            raise ValueError(f"sequence_name must be 1-16 characters (VR SH), got {self.sequence_name!r}")
        if self.mr_acquisition_type not in ("2D", "3D"):
            raise ValueError(f"mr_acquisition_type must be '2D' or '3D', got {self.mr_acquisition_type!r}")
        checks = {
            "echo_time_ms": 0 < self.echo_time_ms < self.repetition_time_ms,
            "repetition_time_ms": 0 < self.repetition_time_ms <= 100_000,
            "flip_angle_deg": 0 < self.flip_angle_deg <= 180,
            "echo_train_length": self.echo_train_length >= 1,
            "magnetic_field_strength_t": 0 < self.magnetic_field_strength_t <= 20,
            "pixel_bandwidth_hz": self.pixel_bandwidth_hz > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"{name}={getattr(self, name)} is out of range (EchoTime must be shorter than RepetitionTime)"
                )


def magnitude_to_stored(signal: np.ndarray) -> np.ndarray:
    """Round MR magnitude signal to the stored unsigned 16-bit values.

    Small negative values (noise around a zero background, at most 1 % of the maximum) are clipped
    to 0, as a magnitude image cannot be negative.

    Raises
    ------
    ValueError
        If ``signal`` holds NaN/inf, larger negative values, or values above 65535.
    """
    if not np.all(np.isfinite(signal)):
        raise ValueError("signal holds NaN or infinite values; replace them (e.g. with 0) before writing")
    rounded = np.rint(signal)
    low, high = float(rounded.min()), float(rounded.max())
    if high > _UINT16.max:
        raise ValueError(
            f"signal reaches {high:g}, above the largest stored value {_UINT16.max}; scale the signal down first"
        )
    if low < -_MAX_NEGATIVE_FRACTION * max(high, 1.0):
        raise ValueError(
            f"signal goes down to {low:g}; a magnitude image is non-negative (only noise below "
            f"{_MAX_NEGATIVE_FRACTION:.0%} of the maximum is clipped to 0)"
        )
    if low < 0:
        logger.debug("clipped %d negative signal values (down to %g) to 0", int((rounded < 0).sum()), low)
    return np.clip(rounded, 0, None).astype("<u2")


def mr_template(
    grid: Grid,
    study: PatientStudy,
    *,
    frame_of_reference_uid: str,
    series_number: int,
    series_description: str,
    sequence: MrSequence,
    image_type: tuple[str, ...],
    window: tuple[float, float],
    window_explanation: str,
) -> Dataset:
    """Attributes shared by every image of an axial MR Image Storage series of the head.

    Parameters
    ----------
    grid
        Geometry of the slices: PixelSpacing ``(dy, dx)``, SliceThickness and SpacingBetweenSlices ``dz``
        (contiguous slices), Rows ``ny``, Columns ``nx``; phase encoding along the columns (anterior-posterior).
    study
        Patient, study and equipment attributes.
    frame_of_reference_uid, series_number, series_description
        FrameOfReferenceUID, SeriesNumber and SeriesDescription.
    sequence
        The pulse sequence.
    image_type
        ImageType, e.g. ``("ORIGINAL", "PRIMARY", "PERFUSION")``.
    window, window_explanation
        Default VOI window ``(WindowCenter, WindowWidth)`` in stored units and its explanation.
    """
    nz, ny, nx = grid.shape
    dz, dy, dx = grid.spacing_mm
    started = series_datetime(study, series_number)
    ds = Dataset()
    add_patient_and_study(ds, study)
    add_series_and_frame_of_reference(
        ds,
        modality="MR",
        series_instance_uid=highdicom.UID(),
        series_number=series_number,
        series_description=series_description,
        started=started,
        frame_of_reference_uid=frame_of_reference_uid,
    )
    ds.BodyPartExamined = "HEAD"
    add_equipment(ds, study)
    ds.AcquisitionNumber = 1
    ds.AcquisitionDate, ds.AcquisitionTime = dicom_date_time(started)
    ds.ContentDate, ds.ContentTime = dicom_date_time(started)
    ds.ImageType = list(image_type)
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
    ds.PixelRepresentation = 0
    _add_mr_image(ds, sequence, grid)
    ds.WindowCenter, ds.WindowWidth = ds_value(window[0]), ds_value(window[1])
    ds.WindowCenterWidthExplanation = window_explanation
    add_sop_common(ds, MRImageStorage, started)
    logger.debug("MR template: %s, %d slices of %dx%d", sequence.sequence_name, nz, ny, nx)
    return ds


def _add_mr_image(ds: Dataset, sequence: MrSequence, grid: Grid) -> None:
    """MR Image module (PS3.3 C.8.3.1) of an axial acquisition on ``grid``."""
    _, ny, nx = grid.shape
    dz, dy, dx = grid.spacing_mm
    ds.ScanningSequence = list(sequence.scanning_sequence)
    ds.SequenceVariant = list(sequence.sequence_variant)
    ds.ScanOptions = list(sequence.scan_options)
    ds.MRAcquisitionType = sequence.mr_acquisition_type
    ds.SequenceName = sequence.sequence_name
    ds.AngioFlag = "N"
    ds.RepetitionTime = ds_value(sequence.repetition_time_ms)
    ds.EchoTime = ds_value(sequence.echo_time_ms)
    ds.EchoNumbers = 1
    ds.EchoTrainLength = sequence.echo_train_length
    ds.NumberOfAverages = ds_value(1.0)
    ds.ImagingFrequency = ds_value(PROTON_GYROMAGNETIC_RATIO_MHZ_PER_T * sequence.magnetic_field_strength_t)
    ds.ImagedNucleus = "1H"
    ds.MagneticFieldStrength = ds_value(sequence.magnetic_field_strength_t)
    ds.SpacingBetweenSlices = ds_value(dz)
    ds.NumberOfPhaseEncodingSteps = ny
    ds.PercentSampling = ds_value(100.0)
    ds.PercentPhaseFieldOfView = ds_value(round(100.0 * ny * dy / (nx * dx), 4))
    ds.PixelBandwidth = ds_value(sequence.pixel_bandwidth_hz)
    ds.ReceiveCoilName = "HEAD"
    ds.TransmitCoilName = "BODY"
    ds.AcquisitionMatrix = [0, nx, ny, 0]  # frequency rows, frequency columns, phase rows, phase columns
    ds.InPlanePhaseEncodingDirection = "COL"
    ds.FlipAngle = ds_value(sequence.flip_angle_deg)
    ds.VariableFlipAngleFlag = "N"
