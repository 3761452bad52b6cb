"""Write a processed (e.g. denoised) SPECT volume as a DERIVED copy of its source NM object, and a comparison picture.

Derived NM image
----------------
:func:`write_derived_nm` deep-copies the source NM Image Storage object (a
multi-frame RECON TOMO volume, as :func:`core.dicom.nm_writer.write_nm_series`
or a vendor writes it), so that every patient, study, frame of reference,
equipment and acquisition attribute stays: the radiopharmaceutical (dose and
injection time for SUV), PatientWeight, Units, the detector geometry, slice
spacing and SliceVector.  It then gives the copy a new series and instance,
ImageType ``DERIVED\\PRIMARY\\RECON TOMO\\EMISSION``, says how it was made
(DerivationDescription, DerivationCodeSequence, SourceImageSequence,
ReferencedSeriesSequence, ContributingEquipmentSequence) and replaces the pixels.

Pixels are stored as in :mod:`core.dicom.nm_writer`: ``stored = round(v / slope)``
in uint16 with the slope in the Real World Value Mapping Sequence.  Each mapping
item of the source keeps its label, explanation, units and quantity; its slope
and intercept are re-expressed for the new stored values, so that a second
mapping (e.g. to SUV) still maps to the same real-world values.  The volume is
in the units of the first mapping with a slope, the one
:func:`~core.dicom.nm_writer.read_nm_volume` applies.  RescaleSlope/Intercept,
the window, the icon and the pixel statistics of the source are removed: they
describe the old stored values.  The output is Explicit VR Little Endian.

Comparison picture
------------------
:func:`write_comparison_capture` writes one RGB Secondary Capture Image in the
same study: the input and the processed volume side by side, as an axial slice
and a coronal maximum-intensity projection on one grey scale, with the words
:data:`core.dicom.provenance.SYNTHETIC_NOTICE` burned in.  Its BurnedInAnnotation is
NO, as in :mod:`core.dicom.sc_writer`: the attribute says whether the burned-in text
identifies the patient (PS3.3 C.7.6.1), and this text does not.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import highdicom
import numpy as np
import pydicom
from highdicom.pm import RealWorldValueMapping
from highdicom.sr import CodedConcept
from pydicom import Dataset
from pydicom.multival import MultiValue
from pydicom.sr.codedict import codes
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, NuclearMedicineImageStorage

from core.dicom.modules import dicom_date_time, file_meta
from core.dicom.nm_writer import UINT16_MAX, counts_to_stored
from core.dicom.provenance import MANUFACTURER, SOURCE_PERSON_NAME_WARNING, SYNTHETIC_NOTICE

if TYPE_CHECKING:
    from matplotlib.axes import Axes

logger = logging.getLogger(__name__)

DERIVED_IMAGE_TYPE = ("DERIVED", "PRIMARY", "RECON TOMO", "EMISSION")
"""PS3.3 C.8.4.9.1.1: value 2 of an NM Image is always PRIMARY; value 3 stays RECON TOMO."""
DERIVATION_CODE = codes.DCM.Smoothing
"""DCM 113087 "Smoothing": the closest concept to denoising in CID 7203 Image Derivation."""
SOURCE_PURPOSE = codes.DCM.SourceImageForImageProcessingOperation
"""DCM 121322, CID 7202 Source Image Purposes of Reference."""
UNITS_TO_UCUM = {"CNTS": codes.UCUM.Counts, "BQML": codes.UCUM.BecquerelsPerMilliliter}
"""Units (0054,1001) -> UCUM unit of a new mapping, for a source with no Real World Value Mapping."""
OUTDATED_KEYWORDS = (
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "LargestImagePixelValue",
    "SmallestImagePixelValue",
    "PixelPaddingValue",
    "WindowCenter",
    "WindowWidth",
    "WindowCenterWidthExplanation",
    "VOILUTFunction",
    "VOILUTSequence",
    "IconImageSequence",
)
"""Attributes of the source that describe its stored values or its pixels."""
BOTH_SIDES = "B"
INPUT_TITLE = "1/7-time input"
OUTPUT_TITLE = "Denoised"
DISPLAY_PERCENTILE = 99.5
"""Top of the shared grey scale: this percentile of the processed volume."""
FIGURE_SIZE_IN = (10.0, 10.0)
DPI = 96
_SLICE_VECTOR = Tag(0x0054, 0x0080)
_FIRST_VALUE_MAPPED = Tag(0x0040, 0x9216)
_LAST_VALUE_MAPPED = Tag(0x0040, 0x9211)
_PIXEL_DATA = Tag(0x7FE0, 0x0010)


def _equipment_items(
    equipment: highdicom.ContributingEquipment | Sequence[highdicom.ContributingEquipment],
) -> list[highdicom.ContributingEquipment]:
    return [equipment] if isinstance(equipment, highdicom.ContributingEquipment) else list(equipment)


def write_derived_nm(
    volume: np.ndarray,
    source: Dataset,
    out_path: Path,
    *,
    series_number: int,
    series_description: str,
    derivation_description: str,
    equipment: highdicom.ContributingEquipment | Sequence[highdicom.ContributingEquipment],
) -> Path:
    """Write ``volume`` as a DERIVED NM Image of the source's geometry, study and acquisition.

    Parameters
    ----------
    volume
        ``(nz, ny, nx)`` = (NumberOfFrames, Rows, Columns) non-negative finite values in the
        real-world units of the source, in the array order of
        :func:`core.dicom.nm_writer.read_nm_volume` (slice 0 the most inferior); written
        back in the source's frame order.
    source
        The NM Image Storage RECON TOMO dataset the volume was computed from (pixels not needed).
    out_path
        File to write (parent folders are created; an existing file is replaced).
    series_number, series_description
        SeriesNumber and SeriesDescription of the new series.
    derivation_description
        What was done, e.g. ``"Deep-learning denoising of a 1/7-time acquisition"``.
    equipment
        ContributingEquipmentSequence item(s) naming the algorithm, e.g. from
        :func:`core.dicom.provenance.contributing_equipment`; appended to the source's items.

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    ValueError
        If the source is not a multi-frame NM RECON TOMO object stacked by SliceVector, or the
        volume does not have the source's shape, or holds negative or non-finite values.
    """
    out_path = Path(out_path)
    _check_source(source)
    _check_volume(volume, source)
    stored, slope = counts_to_stored(_frames_in_source_order(volume, source))
    now = datetime.now()
    sop_instance_uid = highdicom.UID()
    ds = copy.deepcopy(source)
    ds.file_meta = file_meta(NuclearMedicineImageStorage, sop_instance_uid)
    ds.SOPInstanceUID = sop_instance_uid
    ds.SeriesInstanceUID = highdicom.UID()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description
    ds.SeriesDate, ds.SeriesTime = dicom_date_time(now)
    ds.ContentDate, ds.ContentTime = dicom_date_time(now)
    ds.InstanceCreationDate, ds.InstanceCreationTime = dicom_date_time(now)
    ds.RealWorldValueMappingSequence = _real_world_value_mappings(source, slope)
    for keyword in OUTDATED_KEYWORDS:
        ds.pop(keyword, None)
    _set_pixels(ds, stored)
    _set_derivation(ds, source, derivation_description)
    ds.ContributingEquipmentSequence = [
        *source.get("ContributingEquipmentSequence", []),
        *_equipment_items(equipment),
    ]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(out_path, ds, enforce_file_format=True)
    logger.info("wrote derived NM series %s (%d frames) to %s", series_number, stored.shape[0], out_path)
    return out_path


def _check_source(source: Dataset) -> None:
    image_type = [str(v) for v in source.get("ImageType", [])]
    if source.get("SOPClassUID") != NuclearMedicineImageStorage or image_type[2:3] != ["RECON TOMO"]:
        raise ValueError(
            f"source must be an NM Image Storage RECON TOMO object, got SOP class {source.get('SOPClassUID')} "
            f"with ImageType {image_type}"
        )
    pointers = source.get("FrameIncrementPointer")
    pointers = list(pointers) if isinstance(pointers, (list, MultiValue)) else [pointers]
    if pointers != [_SLICE_VECTOR]:
        raise ValueError(f"source FrameIncrementPointer must be just SliceVector (0054,0080), got {pointers}")
    n_frames = int(source.get("NumberOfFrames", 0))
    if len(source.get("SliceVector", [])) != n_frames or n_frames < 1:
        raise ValueError(f"source SliceVector must have NumberOfFrames ({n_frames}) values")


def _check_volume(volume: np.ndarray, source: Dataset) -> None:
    expected = (int(source.NumberOfFrames), int(source.Rows), int(source.Columns))
    if tuple(volume.shape) != expected:
        raise ValueError(
            f"volume must have the source's shape (NumberOfFrames, Rows, Columns) = {expected}, got {volume.shape}"
        )
    if not np.all(np.isfinite(volume)):
        raise ValueError("volume holds NaN or infinite values; the derived NM image needs finite values")
    if np.any(volume < 0):
        raise ValueError(f"volume holds negative values (min {float(volume.min()):.4g}); NM pixels are non-negative")


def _frames_in_source_order(volume: np.ndarray, source: Dataset) -> np.ndarray:
    """Undo the frame ordering of :func:`~core.dicom.nm_writer.read_nm_volume`: result ``[i]`` is file frame ``i + 1``.

    The reader sorts frames by SliceVector value and then reverses them when the slice
    spacing is negative (frames running towards the feet).
    """
    spacing = float(source.get("SpacingBetweenSlices") or source.get("SliceThickness") or 0.0)
    sorted_frames = volume[::-1] if spacing < 0 else volume
    order = np.argsort(np.asarray(source.SliceVector, dtype=np.int64), kind="stable")
    frames = np.empty_like(sorted_frames)
    frames[order] = sorted_frames
    return frames


def _real_world_value_mappings(source: Dataset, slope: float) -> list[Dataset]:
    """The source's mapping items with slope and intercept for ``real_0 = stored * slope``.

    Item ``k`` of the source maps ``stored_old -> stored_old * s_k + i_k``; with the first
    item's ``(s_0, i_0)`` that is ``real_k = (s_k / s_0) * real_0 + i_k - (s_k / s_0) * i_0``.
    """
    linear = [item for item in source.get("RealWorldValueMappingSequence", []) if "RealWorldValueSlope" in item]
    if len(linear) < len(source.get("RealWorldValueMappingSequence", [])):
        logger.warning("source Real World Value Mapping items with LUT data are not copied to the derived image")
    if not linear:
        return [_new_mapping(source, slope)]
    s_0, i_0 = float(linear[0].RealWorldValueSlope), float(linear[0].get("RealWorldValueIntercept", 0.0))
    items = []
    for old in linear:
        ratio = float(old.RealWorldValueSlope) / s_0
        item = copy.deepcopy(old)
        item.RealWorldValueSlope = slope * ratio
        item.RealWorldValueIntercept = float(old.get("RealWorldValueIntercept", 0.0)) - ratio * i_0
        _set_value_range(item)
        items.append(item)
    return items


def _set_value_range(item: Dataset) -> None:
    """First and last stored value mapped, ``0..65535``, in whichever of the two forms the item uses."""
    if "DoubleFloatRealWorldValueFirstValueMapped" in item:
        item.DoubleFloatRealWorldValueFirstValueMapped = 0.0
        item.DoubleFloatRealWorldValueLastValueMapped = float(UINT16_MAX)
    else:  # US, as the pixels are now unsigned (the source's may have been SS)
        item.add_new(_FIRST_VALUE_MAPPED, "US", 0)
        item.add_new(_LAST_VALUE_MAPPED, "US", UINT16_MAX)


def _new_mapping(source: Dataset, slope: float) -> Dataset:
    """A mapping in the source's Units (RescaleSlope/Intercept sources), counts if unknown."""
    units = str(source.get("Units", "CNTS"))
    return RealWorldValueMapping(
        lut_label=units,
        lut_explanation=f"Derived values in {units}",
        unit=UNITS_TO_UCUM.get(units, codes.UCUM.Counts),
        value_range=(0.0, float(UINT16_MAX)),
        slope=slope,
        intercept=0.0,
    )


def _set_pixels(ds: Dataset, stored: np.ndarray) -> None:
    """Unsigned 16-bit greyscale frames, uncompressed (the file meta says Explicit VR Little Endian)."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.pop(_PIXEL_DATA, None)  # a compressed source's element is encapsulated (undefined length)
    ds.add_new(_PIXEL_DATA, "OW", stored.astype("<u2").tobytes())


def _source_reference(source: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    item.PurposeOfReferenceCodeSequence = [CodedConcept.from_code(SOURCE_PURPOSE)]
    return item


def _set_derivation(ds: Dataset, source: Dataset, derivation_description: str) -> None:
    """ImageType, DerivationDescription/Code, source references, annotation flag and comments."""
    ds.ImageType = list(DERIVED_IMAGE_TYPE)
    ds.DerivationDescription = derivation_description[:1024]
    ds.DerivationCodeSequence = [CodedConcept.from_code(DERIVATION_CODE)]
    ds.SourceImageSequence = [_source_reference(source)]
    instance = Dataset()
    instance.ReferencedSOPClassUID = source.SOPClassUID
    instance.ReferencedSOPInstanceUID = source.SOPInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = source.SeriesInstanceUID
    series.ReferencedInstanceSequence = [instance]
    ds.ReferencedSeriesSequence = [series]
    ds.BurnedInAnnotation = "NO"
    ds.ImageComments = f"{SYNTHETIC_NOTICE}: {derivation_description}"


def write_comparison_capture(
    fast: np.ndarray,
    denoised: np.ndarray,
    source: Dataset,
    out_path: Path,
    *,
    series_number: int,
    equipment: highdicom.ContributingEquipment | Sequence[highdicom.ContributingEquipment],
    series_description: str = f"Denoising comparison - {SYNTHETIC_NOTICE}",
    axial_index: int | None = None,
    derived: Dataset | None = None,
) -> Path:
    """Write an RGB Secondary Capture of ``fast`` and ``denoised`` side by side, in the source's study.

    Top row: axial slice ``axial_index``; bottom row: coronal maximum-intensity projection
    (head at the top).  Both are shown in the radiological convention (patient's right on
    the left) with the true voxel aspect ratio, on one grey scale from 0 to the
    :data:`DISPLAY_PERCENTILE` th percentile of ``denoised``.

    Parameters
    ----------
    fast, denoised
        ``(nz, ny, nx)`` volumes in :func:`core.dicom.nm_writer.read_nm_volume` order, same units.
    source
        The NM dataset ``fast`` was read from: patient, study and pixel spacing; referenced.
    out_path
        File to write (parent folders are created).
    series_number, series_description
        SeriesNumber and SeriesDescription of the new series.
    equipment
        ContributingEquipmentSequence item(s) naming the algorithm.
    axial_index
        Slice to show; by default the one holding the maximum of ``denoised``.
    derived
        The derived NM dataset of ``denoised``, also referenced when given.

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    ValueError
        If the volumes are not 3-D of one shape, are not finite, or ``axial_index`` is out of range.
    """
    out_path = Path(out_path)
    if fast.ndim != 3 or fast.shape != denoised.shape:
        raise ValueError(f"fast and denoised must be 3-D volumes of one shape, got {fast.shape} and {denoised.shape}")
    if not (np.all(np.isfinite(fast)) and np.all(np.isfinite(denoised))):
        raise ValueError("fast and denoised must hold finite values only")
    index = int(np.argmax(denoised.max(axis=(1, 2)))) if axial_index is None else axial_index
    if not 0 <= index < denoised.shape[0]:
        raise ValueError(f"axial_index must be in 0..{denoised.shape[0] - 1}, got {axial_index}")
    rgb = _render_comparison(fast, denoised, index, _spacing_mm(source), _unit_label(source))
    sc = _comparison_secondary_capture(rgb, source, series_number, series_description, equipment)
    sc.DerivationDescription = (
        f"{INPUT_TITLE} and {OUTPUT_TITLE.lower()} NM side by side: axial slice {index + 1} of "
        f"{denoised.shape[0]} and coronal maximum-intensity projection"
    )
    sc.SourceImageSequence = [_source_reference(item) for item in (source, derived) if item is not None]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sc.save_as(out_path, enforce_file_format=True)
    logger.info("wrote denoising comparison (axial slice %d) to %s", index, out_path)
    return out_path


def _spacing_mm(source: Dataset) -> tuple[float, float, float]:
    """``(dz, dy, dx)`` of the source, 1 mm where it does not say."""
    dz = abs(float(source.get("SpacingBetweenSlices") or source.get("SliceThickness") or 1.0))
    dy, dx = (float(v) for v in source.get("PixelSpacing", (1.0, 1.0)))
    return dz, dy, dx


def _unit_label(source: Dataset) -> str:
    for item in source.get("RealWorldValueMappingSequence", []):
        if item.get("MeasurementUnitsCodeSequence"):
            return str(item.MeasurementUnitsCodeSequence[0].CodeMeaning)
    return str(source.get("Units", ""))


def _render_comparison(
    fast: np.ndarray, denoised: np.ndarray, index: int, spacing_mm: tuple[float, float, float], unit_label: str
) -> np.ndarray:
    """``(rows, columns, 3)`` uint8 picture: axial slice and coronal MIP of both volumes."""
    # imported when a picture is drawn, not when the app starts; no pyplot, so no global figure state
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dz, dy, dx = spacing_mm
    top = float(np.percentile(denoised, DISPLAY_PERCENTILE)) or float(denoised.max()) or 1.0
    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI, facecolor="black")
    canvas = FigureCanvasAgg(figure)
    axes = figure.subplots(2, 2, gridspec_kw={"left": 0.03, "right": 0.85, "bottom": 0.1, "top": 0.9})
    for column, (title, volume) in enumerate(((INPUT_TITLE, fast), (OUTPUT_TITLE, denoised))):
        panels = ((volume[index], dy / dx, ("A", "P")), (volume.max(axis=1)[::-1], dz / dx, ("H", "F")))
        for row, (picture, aspect, (upper, lower)) in enumerate(panels):
            shown = axes[row, column].imshow(picture, cmap="gray", vmin=0.0, vmax=top, aspect=aspect)
            axes[row, column].set_axis_off()
            _orientation_letters(axes[row, column], upper, lower)
        axes[0, column].set_title(f"{title}\naxial slice {index + 1}/{volume.shape[0]}", color="white", fontsize=14)
        axes[1, column].set_title("coronal maximum-intensity projection", color="white", fontsize=11)
    bar = figure.colorbar(shown, cax=figure.add_axes((0.88, 0.25, 0.03, 0.5)))
    bar.set_label(unit_label, color="white", fontsize=11)
    bar.ax.tick_params(colors="white", labelsize=10)
    figure.text(0.5, 0.04, SYNTHETIC_NOTICE, color="yellow", fontsize=22, fontweight="bold", ha="center", va="center")
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _orientation_letters(axes: Axes, upper: str, lower: str) -> None:
    """R and L on the sides (radiological convention), ``upper`` and ``lower`` at the top and bottom."""
    for text, (u, v) in (("R", (0.03, 0.5)), ("L", (0.97, 0.5)), (upper, (0.5, 0.97)), (lower, (0.5, 0.03))):
        axes.text(u, v, text, color="yellow", fontsize=12, ha="center", va="center", transform=axes.transAxes)


def _comparison_secondary_capture(
    rgb: np.ndarray,
    source: Dataset,
    series_number: int,
    series_description: str,
    equipment: highdicom.ContributingEquipment | Sequence[highdicom.ContributingEquipment],
) -> highdicom.sc.SCImage:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=SOURCE_PERSON_NAME_WARNING, category=UserWarning)
        sc = highdicom.sc.SCImage.from_ref_dataset(
            ref_dataset=source,
            pixel_array=rgb,
            photometric_interpretation=highdicom.PhotometricInterpretationValues.RGB,
            bits_allocated=8,
            coordinate_system=highdicom.CoordinateSystemNames.PATIENT,
            series_instance_uid=highdicom.UID(),
            series_number=series_number,
            sop_instance_uid=highdicom.UID(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            patient_orientation=("L", "P"),
            transfer_syntax_uid=ExplicitVRLittleEndian,
            contributing_equipment=_equipment_items(equipment),
            series_description=series_description,
            # an empty SpecificCharacterSet means the default repertoire: leave it out
            specific_character_set=source.get("SpecificCharacterSet") or None,
        )
    sc.PatientOrientation = []  # axial and coronal panels: no one orientation (Type 2, empty)
    # a SPECT field of view holds both sides of the body; General Series Laterality is then not needed
    sc.ImageLaterality = source.get("ImageLaterality") or source.get("Laterality") or BOTH_SIDES
    sc.ImageType = ["DERIVED", "SECONDARY"]
    # YES would mean "enough burned-in text to identify the patient" (PS3.3 C.7.6.1): the notice is not
    sc.BurnedInAnnotation = "NO"
    sc.ImageComments = f"{SYNTHETIC_NOTICE}: comparison of the input and the denoised SPECT"
    return sc
