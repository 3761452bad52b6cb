"""Write coded regions of a CT as a DICOM RT Structure Set, and rasterise one back onto the CT.

* :func:`write_rt_structure_set`: :class:`core.dicom.structures.Structure` masks -> RTSTRUCT file.
* :func:`rasterise_rt_structure_set`: RTSTRUCT file -> ROIName -> boolean mask on the CT.

Slice order
-----------
``Structure.mask[k]`` belongs to the ``k``-th slice of :func:`sorted_along_normal` (ascending
position along the slice normal), whatever order the CT datasets are passed in; each contour
references the SOPInstanceUID of the slice it was traced on and lies in that slice's plane.

Contours
--------
Per slice and structure, :func:`skimage.measure.find_contours` traces the mask, padded by one
background voxel so that every contour closes, at the level 0.5 on the grid of voxel centres.
Each contour is a closed planar polygon (CLOSED_PLANAR, the closing point not repeated) that
runs along the faces between inside and outside voxels and cuts every convex corner (adds at
every concave corner) by a triangle of 1/8 voxel.  Consequences:

* Every inside voxel centre lies inside the polygon and every outside voxel centre outside it,
  at least ``0.5 / sqrt(2)`` voxel away, so rasterising by the voxel-centre rule
  (:func:`rasterise_rt_structure_set`, :func:`skimage.draw.polygon`) gives back the mask
  exactly: Dice 1, not merely close to it.  A system that weighs partial coverage sees inside
  voxels at least half covered and outside voxels at most half (7/8 and 1/8 at ordinary
  corners; exactly 1/2 only for an isolated voxel or a one-voxel hole).
* The area inside an outer contour is its voxel count minus half a voxel (a hole contour gives
  half a voxel back), so contour volumes agree with voxel-count volumes to half a voxel per
  contour and slice.
* Diagonally touching voxels are separate regions (``fully_connected="low"``: the mask is
  4-connected within a slice).

Points are converted from (row, column) indices to LPS patient coordinates in mm with the
slice's ImagePositionPatient, ImageOrientationPatient and PixelSpacing (``[row spacing,
column spacing]``) and rounded to :data:`CONTOUR_DECIMALS` decimals of a mm.

Holes and nested contours
-------------------------
The contours of a hole (and of an island inside a hole) are written as further contours of the
same ROI on the same slice, with nothing marking them as holes.  Their meaning is the even-odd
(XOR) rule, the convention planning systems commonly follow for nested contours of one ROI on
one slice: a point is inside the ROI when an odd number of the slice's contours enclose it.
:func:`rasterise_rt_structure_set` fills that way.

The object
----------
RT Structure Set Storage, Modality RTSTRUCT, in the CT's study (Patient and General Study
attributes copied from the CT) and frame of reference, in a new series whose description and
StructureSetDescription say it is synthetic and for research use.  One ROI per non-empty
structure: ROIName is the structure's label, ROIGenerationAlgorithm AUTOMATIC, ROIDisplayColor
the RGB of its CSS colour, RTROIInterpretedType its interpreted type, and its codes in
SegmentedPropertyCategoryCodeSequence and RTROIIdentificationCodeSequence (with the laterality
modifier) of the RT ROI Observations.  The algorithm's name and version are in the
ContributingEquipmentSequence (IHE AI Results); private codes come with a
CodingSchemeIdentificationSequence item.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pydicom
from highdicom.sr import CodedConcept
from matplotlib.colors import to_rgb
from pydicom import Dataset
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag
from pydicom.uid import RTStructureSetStorage, generate_uid
from skimage.draw import polygon
from skimage.measure import find_contours

from core.dicom.modules import copy_patient_and_study, dicom_date_time, file_meta
from core.dicom.provenance import (
    DEVICE_SERIAL_NUMBER,
    MANUFACTURER,
    RESEARCH_NOTICE,
    contributing_equipment,
    private_coding_scheme,
)
from core.dicom.slice_stack import slice_normal, sorted_along_normal
from core.dicom.structures import Structure, present_structures, uses_private_codes
from core.errors import InputDataError

logger = logging.getLogger(__name__)

ALGORITHM_NAME = "perfusion-map lung function structures"
SERIES_DESCRIPTION = "Lung function structures (SYNTHETIC, research use only)"
STRUCTURE_SET_LABEL = "LUNG FUNCTION"
STRUCTURE_SET_DESCRIPTION = "Lung function structures (SYNTHETIC). " + RESEARCH_NOTICE
CONTENT_DESCRIPTION = "Automatic lung function structures - research use only"
ROI_GENERATION_DESCRIPTION = "Mask contoured at level 0.5 - research use only"
ROI_GENERATION_ALGORITHM = "AUTOMATIC"
DEFAULT_SERIES_NUMBER = 910
CLOSED_PLANAR = "CLOSED_PLANAR"
CONTOUR_LEVEL = 0.5
"""Level at which the 0/1 mask is traced: halfway between inside and outside voxel centres."""
CONTOUR_DECIMALS = 2
"""ContourData is rounded to 0.01 mm."""
COLLINEAR_TOLERANCE_PX = 1e-6
"""A contour point whose neighbours' cross product is below this (squared pixels) is collinear and dropped."""
MIN_POLYGON_POINTS = 3
CONTOUR_DATA_TAG = Tag(0x3006, 0x0050)
CONTOUR_SEQUENCE_TAG = Tag(0x3006, 0x0040)
CONTOUR_IMAGE_SEQUENCE_TAG = Tag(0x3006, 0x0016)
NUMBER_OF_CONTOUR_POINTS_TAG = Tag(0x3006, 0x0046)
CONTOUR_NUMBER_TAG = Tag(0x3006, 0x0048)
REFERENCED_SOP_CLASS_UID_TAG = Tag(0x0008, 0x1150)
REFERENCED_SOP_INSTANCE_UID_TAG = Tag(0x0008, 0x1155)
CONTOUR_PLANE_TOLERANCE_MM = 0.1
"""Largest accepted distance of a contour point from the plane of the slice it references."""
STUDY_SOP_CLASS_UID = "1.2.840.10008.3.1.2.3.1"
"""ReferencedSOPClassUID of the RTReferencedStudySequence item (Detached Study Management, by convention)."""


@dataclass(frozen=True)
class SlicePlane:
    """The pixel grid of one CT slice in LPS patient coordinates (mm).

    ``point = origin + row * row_spacing * column_cosine + column * column_spacing * row_cosine``
    """

    origin_mm: np.ndarray
    row_cosine: np.ndarray
    """Direction of increasing column index (ImageOrientationPatient[:3])."""
    column_cosine: np.ndarray
    """Direction of increasing row index (ImageOrientationPatient[3:])."""
    row_spacing_mm: float
    column_spacing_mm: float

    @classmethod
    def from_dataset(cls, ds: Dataset) -> SlicePlane:
        """The plane of a CT header (ImagePositionPatient, ImageOrientationPatient, PixelSpacing)."""
        cosines = np.array([float(v) for v in ds.ImageOrientationPatient])
        row_spacing, column_spacing = (float(v) for v in ds.PixelSpacing)
        origin = np.array([float(v) for v in ds.ImagePositionPatient])
        return cls(origin, cosines[:3], cosines[3:], row_spacing, column_spacing)

    def to_patient(self, rows_cols: np.ndarray) -> np.ndarray:
        """``(n, 2)`` (row, column) indices -> ``(n, 3)`` LPS points in mm."""
        rows_mm = rows_cols[:, :1] * self.row_spacing_mm
        cols_mm = rows_cols[:, 1:] * self.column_spacing_mm
        return self.origin_mm + rows_mm * self.column_cosine + cols_mm * self.row_cosine

    def to_pixel(self, points_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(n, 3)`` LPS points in mm -> ``(n, 2)`` (row, column) indices and ``(n,)`` distances (mm) off the plane."""
        offset = points_mm - self.origin_mm
        rows = offset @ self.column_cosine / self.row_spacing_mm
        cols = offset @ self.row_cosine / self.column_spacing_mm
        normal = slice_normal(np.concatenate([self.row_cosine, self.column_cosine]))
        return np.stack([rows, cols], axis=1), offset @ normal


def trace_contours(mask: np.ndarray) -> list[np.ndarray]:
    """Closed polygons around the regions and holes of one slice's mask, see the module docstring.

    Parameters
    ----------
    mask
        Boolean ``(rows, columns)``.

    Returns
    -------
    list of numpy.ndarray
        One ``(n, 2)`` array of (row, column) indices per contour, closing point not repeated.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return []
    # Trace only the mask's bounding box (padded by one voxel): the same contours, many fewer voxels.
    box = mask[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    padded = np.pad(box, 1).astype(np.float32)
    contours = find_contours(padded, CONTOUR_LEVEL, fully_connected="low")
    offset = np.array([rows[0] - 1.0, columns[0] - 1.0])
    return [_without_collinear_points(contour[:-1]) + offset for contour in contours]


def _without_collinear_points(ring: np.ndarray) -> np.ndarray:
    """The same polygon without the points on the straight line through their neighbours (2-10x fewer points).

    ``ring`` is ``(n, 2)`` with the closing point not repeated.  A traced mask boundary runs in
    straight steps of half a voxel, so most of its points are such in-between points.
    """
    before = ring - np.roll(ring, 1, axis=0)
    after = np.roll(ring, -1, axis=0) - ring
    corner = np.abs(before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]) > COLLINEAR_TOLERANCE_PX
    return ring[corner] if np.count_nonzero(corner) >= MIN_POLYGON_POINTS else ring


def display_color(colour: str) -> list[int]:
    """ROIDisplayColor (RGB, 0-255) of a CSS colour name."""
    try:
        return [round(255 * c) for c in to_rgb(colour)]
    except ValueError as error:
        raise ValueError(f"{colour!r} is not a CSS colour name") from error


def _check_structures(structures: Sequence[Structure], slices: Sequence[Dataset]) -> list[Structure]:
    """The non-empty structures (:func:`present_structures`), each with a known display colour."""
    present = present_structures(structures, (len(slices), int(slices[0].Rows), int(slices[0].Columns)))
    for structure in present:
        display_color(structure.colour)
    return present


def _check_ct_series(slices: Sequence[Dataset]) -> None:
    """InputDataError unless the slices are one series in one frame of reference."""
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        values = {str(ds.get(keyword, "")) for ds in slices}
        if len(values) != 1 or "" in values:
            raise InputDataError(f"the CT slices must share one non-empty {keyword}; found {len(values)} value(s)")


def _image_reference(ds: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    return item


_DECIMAL_FORMAT = f"%.{CONTOUR_DECIMALS}f"
_ITEM = struct.Struct("<HHI")  # (FFFE,E000) Item tag and its 32-bit length
_SHORT_ELEMENT = struct.Struct("<HH2sH")  # tag, VR, 16-bit length (explicit VR little endian)
_LONG_ELEMENT = struct.Struct("<HH2s2xI")  # tag, VR, 2 reserved bytes, 32-bit length (SQ, UN)


def _element(tag: int, vr: str, value: bytes) -> bytes:
    """One CS, DS, IS or UI data element, explicit VR little endian, padded to even length.

    A value longer than the 16-bit length field allows (a contour of some 3000 points) goes out
    with VR UN and a 32-bit length, as PS3.5 section 6.2.2 prescribes and pydicom does; readers
    take its VR from the data dictionary.
    """
    if len(value) % 2:
        value += b"\0" if vr == "UI" else b" "
    group, element = tag >> 16, tag & 0xFFFF
    if len(value) > 0xFFFF:
        return _LONG_ELEMENT.pack(group, element, b"UN", len(value)) + value
    return _SHORT_ELEMENT.pack(group, element, vr.encode("ascii"), len(value)) + value


def _item(content: bytes) -> bytes:
    """A sequence item of defined length."""
    return _ITEM.pack(0xFFFE, 0xE000, len(content)) + content


def _decimal_strings(values: np.ndarray) -> bytes:
    """The DS value of numbers already rounded to 0.01 mm (pydicom's per-value DS checks are slow).

    Each value prints as at most 16 characters (``-99999.99``..), so the encoding is valid DS.
    """
    return "\\".join(map(_DECIMAL_FORMAT.__mod__, values.tolist())).encode("ascii")  # Python floats: 2x faster


_SliceContours = list[tuple[bytes, bytes]]
"""One slice's contours: the encoded NumberOfContourPoints and ContourData elements of each."""


def _slice_contours(mask: np.ndarray, ct: Dataset) -> _SliceContours:
    """The contours of one slice's mask, in patient coordinates (mm), encoded."""
    plane = SlicePlane.from_dataset(ct)
    contours = []
    for rows_cols in trace_contours(mask):
        points_mm = np.round(plane.to_patient(rows_cols), CONTOUR_DECIMALS) + 0.0  # + 0.0: no "-0.0"
        contours.append(
            (
                _element(NUMBER_OF_CONTOUR_POINTS_TAG, "IS", str(len(points_mm)).encode("ascii")),
                _element(CONTOUR_DATA_TAG, "DS", _decimal_strings(points_mm.ravel())),
            )
        )
    return contours


class _ContourCache:
    """Contours of the slice masks already traced, by slice and mask content.

    A lung zone is its lung on every slice it covers, so most zone slices repeat a lung slice:
    they are traced and encoded once.
    """

    def __init__(self) -> None:
        self._done: dict[tuple[int, bytes], _SliceContours] = {}

    def contours(self, k: int, mask: np.ndarray, ct: Dataset) -> _SliceContours:
        key = (k, hashlib.blake2b(np.packbits(mask).tobytes(), digest_size=16).digest())
        if key not in self._done:
            self._done[key] = _slice_contours(mask, ct)
        return self._done[key]


def _contour_image_sequence(ct: Dataset) -> bytes:
    """The encoded ContourImageSequence element of a contour on slice ``ct``: one item referencing it."""
    reference = _element(REFERENCED_SOP_CLASS_UID_TAG, "UI", str(ct.SOPClassUID).encode("ascii")) + _element(
        REFERENCED_SOP_INSTANCE_UID_TAG, "UI", str(ct.SOPInstanceUID).encode("ascii")
    )
    value = _item(reference)
    return (
        _LONG_ELEMENT.pack(CONTOUR_IMAGE_SEQUENCE_TAG >> 16, CONTOUR_IMAGE_SEQUENCE_TAG & 0xFFFF, b"SQ", len(value))
        + value
    )


_CLOSED_PLANAR_ELEMENT = _element(0x30060042, "CS", CLOSED_PLANAR.encode("ascii"))  # ContourGeometricType


def _contour_sequence(structure: Structure, slices: Sequence[Dataset], cache: _ContourCache) -> tuple[bytes, int]:
    """The encoded value of a ROI's ContourSequence (its items, contours numbered from 1) and its contour count.

    The items are encoded here, not by pydicom: a lung function structure set has some 15 000 contour
    items, and pydicom's per-element writing of them took seconds.  Each item holds, in tag order,
    ContourImageSequence, ContourGeometricType, NumberOfContourPoints, ContourNumber, ContourData
    (explicit VR little endian, defined lengths); the tests read the file back with pydicom and
    check it with dciodvfy.
    """
    items: list[bytes] = []
    for k, ct in enumerate(slices):
        if not structure.mask[k].any():
            continue
        image = _contour_image_sequence(ct)
        for n_points, contour_data in cache.contours(k, structure.mask[k], ct):
            number = _element(CONTOUR_NUMBER_TAG, "IS", str(len(items) + 1).encode("ascii"))
            items.append(_item(image + _CLOSED_PLANAR_ELEMENT + n_points + number + contour_data))
    return b"".join(items), len(items)


def _roi_contour_item(
    number: int, structure: Structure, slices: Sequence[Dataset], cache: _ContourCache
) -> tuple[Dataset, int]:
    """ROIContourSequence item of ROI ``number`` (colour and the contours of every slice) and its contour count."""
    contours, count = _contour_sequence(structure, slices, cache)
    item = Dataset()
    item.ROIDisplayColor = display_color(structure.colour)
    item[CONTOUR_SEQUENCE_TAG] = RawDataElement(CONTOUR_SEQUENCE_TAG, "SQ", len(contours), contours, 0, False, True)
    item.ReferencedROINumber = number
    # Declared as already encoded the way the file is written (explicit VR little endian, ASCII):
    # pydicom then writes the raw ContourSequence as it is.
    item.set_original_encoding(is_implicit_vr=False, is_little_endian=True, character_encoding=default_encoding)
    return item, count


def _structure_set_roi_item(number: int, structure: Structure, frame_of_reference_uid: str) -> Dataset:
    item = Dataset()
    item.ROINumber = number
    item.ReferencedFrameOfReferenceUID = frame_of_reference_uid
    item.ROIName = structure.label
    item.ROIGenerationAlgorithm = ROI_GENERATION_ALGORITHM
    item.ROIGenerationDescription = ROI_GENERATION_DESCRIPTION
    return item


def _observation_item(number: int, structure: Structure) -> Dataset:
    """RTROIObservationsSequence item: interpreted type and the structure's codes."""
    identification = CodedConcept.from_code(structure.property_type)
    if structure.modifier is not None:
        identification.SegmentedPropertyTypeModifierCodeSequence = [CodedConcept.from_code(structure.modifier)]
    item = Dataset()
    item.ObservationNumber = number
    item.ReferencedROINumber = number
    item.SegmentedPropertyCategoryCodeSequence = [CodedConcept.from_code(structure.category)]
    item.RTROIIdentificationCodeSequence = [identification]
    item.RTROIInterpretedType = structure.interpreted_type
    item.ROIInterpreter = ""
    return item


def _referenced_frame_of_reference(slices: Sequence[Dataset]) -> Dataset:
    """ReferencedFrameOfReferenceSequence item: the CT's frame, study, series and every slice."""
    series = Dataset()
    series.SeriesInstanceUID = slices[0].SeriesInstanceUID
    series.ContourImageSequence = [_image_reference(ds) for ds in slices]
    study = Dataset()
    study.ReferencedSOPClassUID = STUDY_SOP_CLASS_UID
    study.ReferencedSOPInstanceUID = slices[0].StudyInstanceUID
    study.RTReferencedSeriesSequence = [series]
    item = Dataset()
    item.FrameOfReferenceUID = slices[0].FrameOfReferenceUID
    item.RTReferencedStudySequence = [study]
    return item


def _header(ct: Dataset, algorithm_version: str, series_number: int, created: datetime) -> Dataset:
    """Patient, General Study, RT Series, Frame of Reference, General Equipment and SOP Common attributes."""
    ds = Dataset()
    ds.file_meta = file_meta(RTStructureSetStorage, generate_uid())
    if ct.get("SpecificCharacterSet"):
        ds.SpecificCharacterSet = ct.SpecificCharacterSet
    ds.SOPClassUID = RTStructureSetStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.InstanceCreationDate, ds.InstanceCreationTime = dicom_date_time(created)
    copy_patient_and_study(ds, ct)
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDate, ds.SeriesTime = dicom_date_time(created)
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.OperatorsName = ""
    ds.FrameOfReferenceUID = ct.FrameOfReferenceUID
    ds.PositionReferenceIndicator = ct.get("PositionReferenceIndicator", "")
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = ALGORITHM_NAME
    ds.DeviceSerialNumber = DEVICE_SERIAL_NUMBER
    ds.SoftwareVersions = algorithm_version
    ds.ContributingEquipmentSequence = [contributing_equipment(ALGORITHM_NAME, algorithm_version, CONTENT_DESCRIPTION)]
    return ds


def write_rt_structure_set(
    structures: Sequence[Structure],
    ct_datasets: Sequence[Dataset],
    out_path: Path,
    *,
    algorithm_version: str,
    series_number: int = DEFAULT_SERIES_NUMBER,
) -> Path:
    """Write the non-empty ``structures`` as one DICOM RT Structure Set of the CT slices ``ct_datasets``.

    Parameters
    ----------
    structures
        Regions with boolean ``(slices, rows, columns)`` masks in the CT volume layout:
        ``mask[k]`` belongs to the ``k``-th slice of :func:`sorted_along_normal`
        (``ct_datasets`` may come in any order).  Empty ones are left out.
    ct_datasets
        The CT series' slices (headers suffice; pixel data is not read).
    out_path
        File to write (its folder must exist).
    algorithm_version
        Version of the application, written as SoftwareVersions and into the
        ContributingEquipmentSequence.
    series_number
        SeriesNumber of the new RTSTRUCT series.

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    ValueError
        If a mask's shape is not the CT volume's or it is not boolean, a colour is not a CSS
        name, labels repeat, or every mask is empty.
    InputDataError
        If the slices are not one series of distinct positions in one frame of reference.
    """
    slices = sorted_along_normal(ct_datasets)
    _check_ct_series(slices)
    present = _check_structures(structures, slices)
    created = datetime.now(UTC).astimezone()
    ds = _header(slices[0], algorithm_version, series_number, created)
    ds.StructureSetLabel = STRUCTURE_SET_LABEL
    ds.StructureSetDescription = STRUCTURE_SET_DESCRIPTION
    ds.InstanceNumber = 1
    ds.StructureSetDate, ds.StructureSetTime = dicom_date_time(created)
    ds.ReferencedFrameOfReferenceSequence = [_referenced_frame_of_reference(slices)]
    frame_of_reference_uid = str(slices[0].FrameOfReferenceUID)
    numbered = list(enumerate(present, start=1))
    ds.StructureSetROISequence = [_structure_set_roi_item(n, s, frame_of_reference_uid) for n, s in numbered]
    cache = _ContourCache()
    roi_contours = [_roi_contour_item(n, s, slices, cache) for n, s in numbered]
    ds.ROIContourSequence = [item for item, _ in roi_contours]
    ds.RTROIObservationsSequence = [_observation_item(n, s) for n, s in numbered]
    if uses_private_codes(present):
        ds.CodingSchemeIdentificationSequence = [private_coding_scheme()]
    # The whole object declared as already in the file's encoding: otherwise pydicom would look for
    # ambiguous VRs through every sequence and parse the raw ContourSequences back to datasets
    # (an element left with an ambiguous VR would then make the writing fail, not pass silently).
    ds.set_original_encoding(
        is_implicit_vr=False,
        is_little_endian=True,
        character_encoding=convert_encodings(ds.get("SpecificCharacterSet") or default_encoding),
    )
    out_path = Path(out_path)
    ds.save_as(out_path, enforce_file_format=True)
    n_contours = sum(count for _, count in roi_contours)
    logger.debug("wrote RT Structure Set (%d ROIs, %d contours) to %s", len(present), n_contours, out_path)
    return out_path


def _read_structure_set(path: Path, slices: Sequence[Dataset]) -> Dataset:
    """The RTSTRUCT at ``path``; InputDataError if it is none or lies in another frame of reference."""
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as error:
        raise InputDataError(f"{path} is not a DICOM file") from error
    if ds.get("SOPClassUID") != RTStructureSetStorage or ds.get("Modality") != "RTSTRUCT":
        raise InputDataError(
            f"{path} is not an RT Structure Set (SOPClassUID {ds.get('SOPClassUID')}, Modality {ds.get('Modality')})"
        )
    frames = {str(item.ReferencedFrameOfReferenceUID) for item in ds.get("StructureSetROISequence", [])}
    ct_frame = str(slices[0].FrameOfReferenceUID)
    if frames - {ct_frame}:
        raise InputDataError(
            f"{path} has ROIs in frame of reference {sorted(frames - {ct_frame})}, the CT is in {ct_frame}"
        )
    return ds


def _contour_slice(contour: Dataset, index_by_uid: dict[str, int], path: Path) -> int:
    """Index (in volume order) of the CT slice a contour references."""
    if contour.get("ContourGeometricType") != CLOSED_PLANAR:
        raise InputDataError(f"{path}: only CLOSED_PLANAR contours can be filled, got {contour.ContourGeometricType}")
    references = contour.get("ContourImageSequence", [])
    if len(references) != 1:
        raise InputDataError(f"{path}: a contour must reference exactly one CT slice, it references {len(references)}")
    uid = str(references[0].ReferencedSOPInstanceUID)
    if uid not in index_by_uid:
        raise InputDataError(f"{path} refers to slice {uid}, which is not one of the CT slices given")
    return index_by_uid[uid]


def _contour_data(contour: Dataset) -> np.ndarray:
    """ContourData as numbers, also when it came as UN (a value over 64 KB in explicit VR, PS3.5 6.2.2)."""
    element = contour[CONTOUR_DATA_TAG]
    if element.VR == "UN":
        return np.asarray([float(v) for v in bytes(element.value).decode("ascii").split("\\")])
    return np.asarray([float(v) for v in contour.ContourData])


def _fill_contour(contour: Dataset, plane: SlicePlane, shape: tuple[int, int], path: Path) -> np.ndarray:
    """Boolean ``shape`` mask of the voxel centres inside one contour."""
    points_mm = _contour_data(contour).reshape(-1, 3)
    rows_cols, off_plane_mm = plane.to_pixel(points_mm)
    worst_mm = float(np.max(np.abs(off_plane_mm)))
    if worst_mm > CONTOUR_PLANE_TOLERANCE_MM:
        raise InputDataError(
            f"{path}: a contour lies {worst_mm:.3f} mm off the plane of the CT slice it references "
            f"(tolerance {CONTOUR_PLANE_TOLERANCE_MM} mm); it belongs to another slice"
        )
    filled = np.zeros(shape, dtype=bool)
    rr, cc = polygon(rows_cols[:, 0], rows_cols[:, 1], shape=shape)
    filled[rr, cc] = True
    return filled


def rasterise_rt_structure_set(path: Path, ct_datasets: Sequence[Dataset]) -> dict[str, np.ndarray]:
    """The ROIs of an RT Structure Set as boolean masks on the CT, filled by the even-odd rule.

    A voxel is inside an ROI when its centre lies inside an odd number of the ROI's contours on
    its slice (nested contours are holes and islands, see the module docstring).

    Parameters
    ----------
    path
        RTSTRUCT file.
    ct_datasets
        The CT slices the contours reference (headers suffice), in any order.

    Returns
    -------
    dict of str to numpy.ndarray
        ROIName -> boolean ``(slices, rows, columns)`` mask in the CT volume layout
        (:func:`sorted_along_normal` order); an ROI without contours gives an empty mask.

    Raises
    ------
    InputDataError
        If the file is not an RT Structure Set or lies in another frame of reference, or a
        contour is not CLOSED_PLANAR, does not reference exactly one of the given CT slices,
        or lies off the plane of the slice it references.
    """
    path = Path(path)
    slices = sorted_along_normal(ct_datasets)
    ds = _read_structure_set(path, slices)
    index_by_uid = {str(ct.SOPInstanceUID): k for k, ct in enumerate(slices)}
    planes = [SlicePlane.from_dataset(ct) for ct in slices]
    shape = (int(slices[0].Rows), int(slices[0].Columns))
    names = {int(item.ROINumber): str(item.ROIName) for item in ds.get("StructureSetROISequence", [])}
    masks = {name: np.zeros((len(slices), *shape), dtype=bool) for name in names.values()}
    for roi in ds.get("ROIContourSequence", []):
        number = int(roi.ReferencedROINumber)
        if number not in names:
            raise InputDataError(f"{path}: ROIContourSequence refers to ROI {number}, not in StructureSetROISequence")
        for contour in roi.get("ContourSequence", []):
            k = _contour_slice(contour, index_by_uid, path)
            masks[names[number]][k] ^= _fill_contour(contour, planes[k], shape, path)
    return masks
