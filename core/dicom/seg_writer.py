"""Write coded regions of a CT (lungs, lung zones, functional volumes) as a DICOM Segmentation (SEG).

Slice order
-----------
A CT volume here is a stack of single-frame slices sorted by their ImagePositionPatient
projected on the slice normal (row cosine x column cosine), ascending: the order of the
MONAI Deploy SDK's DICOMSeriesToVolumeOperator and, for axial head-first or feet-first
series alike, index 0 is the slice nearest the feet.  :func:`sorted_along_normal` defines
that order once; :func:`slice_stack_affine_lps` gives the exact index-to-LPS affine of the
stack, and the writers map mask slice ``k`` to the ``k``-th slice of that order, whatever
order the datasets are passed in (file order and InstanceNumber are never used).

The objects
-----------
BINARY Segmentations built by highdicom, one segment per non-empty
:class:`core.dicom.structures.Structure` (segments may overlap: a zone lies inside its lung),
AUTOMATIC algorithm identification, empty frames omitted, same StudyInstanceUID and
FrameOfReferenceUID as the CT (highdicom takes them from the source images), a new series
whose description says it is automatic and for research use, and the algorithm's name and
version in the ContributingEquipmentSequence (IHE AI Results).

* :func:`write_lung_seg`: "Right lung", "Left lung" (SCT 91723000 Anatomical Structure /
  SCT 39607008 Lung with the laterality modifier SCT 24028007 Right or SCT 7771000 Left, the
  DICOM CID 7150 / 7151 / 244 encoding), from the morphological segmentation.
* :func:`write_structure_seg`: any list of structures, e.g. the lung zones and the synthetic
  high-/low-function volumes (:func:`core.dicom.structures.lung_function_structures`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom
import numpy as np
from highdicom.sr import CodedConcept
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from core.dicom.provenance import (
    DEVICE_SERIAL_NUMBER,
    MANUFACTURER,
    SOURCE_PERSON_NAME_WARNING,
    contributing_equipment,
    private_coding_scheme,
)
from core.dicom.slice_stack import sorted_along_normal
from core.dicom.structures import (
    LATERALITY,
    LUNG_COLOURS,
    ORGAN,
    Structure,
    present_structures,
    uses_private_codes,
)
from core.geometry import bounding_box
from core.labels import LungLabel

logger = logging.getLogger(__name__)

ALGORITHM_NAME = "perfusion-map lung segmentation"
ALGORITHM_FAMILY = codes.DCM.MorphologicalOperations
"""CID 7162: thresholds, connected components and morphology (:mod:`core.lung.segmentation`), no neural network."""
SERIES_DESCRIPTION = "Lungs (automatic, research use only)"
CONTENT_LABEL = "LUNGS"
CONTENT_DESCRIPTION = "Automatic lung segmentation - research use only"
DEFAULT_SERIES_NUMBER = 900


@dataclass(frozen=True)
class SegAlgorithm:
    """Who made the segments, as the SEG records it."""

    name: str
    family: Code
    """CID 7162 Surgical/Segmentation algorithm family."""
    version: str


@dataclass(frozen=True)
class SegSeries:
    """How the new SEG series is labelled."""

    series_number: int
    series_description: str
    content_label: str
    """ContentLabel: upper-case letters, digits, underscore and space, 16 characters at most."""
    content_description: str


def _segment_description(
    number: int, structure: Structure, algorithm: SegAlgorithm
) -> highdicom.seg.SegmentDescription:
    description = highdicom.seg.SegmentDescription(
        segment_number=number,
        segment_label=structure.label,
        segmented_property_category=structure.category,
        segmented_property_type=structure.property_type,
        algorithm_type=highdicom.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=highdicom.AlgorithmIdentificationSequence(
            name=algorithm.name, family=algorithm.family, version=algorithm.version
        ),
        display_color=highdicom.color.CIELabColor.from_string(structure.colour),
    )
    if structure.modifier is not None:
        # the laterality modifier belongs inside the property type item (Segment Description Macro)
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            CodedConcept.from_code(structure.modifier)
        ]
    return description


def write_structure_seg(
    structures: Sequence[Structure],
    ct_datasets: Sequence[Dataset],
    out_path: Path,
    *,
    algorithm: SegAlgorithm,
    series: SegSeries,
) -> Path:
    """Write the non-empty ``structures`` as one BINARY DICOM Segmentation of the CT slices ``ct_datasets``.

    Parameters
    ----------
    structures
        Regions with masks in the CT volume layout: ``mask[k]`` belongs to the ``k``-th slice of
        :func:`sorted_along_normal` (``ct_datasets`` may come in any order).
    ct_datasets
        The CT series' slices (headers suffice; pixel data is not read).
    out_path
        File to write (its folder must exist).
    algorithm
        Name, family and version of the algorithm (AlgorithmIdentificationSequence, SoftwareVersions,
        ContributingEquipmentSequence).
    series
        SeriesNumber, SeriesDescription, ContentLabel and ContentDescription.

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    ValueError
        If a mask's shape is not the CT volume's, labels repeat, or every mask is empty.
    InputDataError
        If the slices are not one series of distinct positions.
    """
    slices = sorted_along_normal(ct_datasets)
    present = present_structures(structures, (len(slices), int(slices[0].Rows), int(slices[0].Columns)))
    pixel_array, frames = _pixel_array(present)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=SOURCE_PERSON_NAME_WARNING, category=UserWarning)
        seg = highdicom.seg.Segmentation(
            source_images=slices,
            pixel_array=pixel_array,
            plane_positions=[_plane_position(slices[k]) for k in range(frames.start, frames.stop)],
            segmentation_type=highdicom.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[_segment_description(n, s, algorithm) for n, s in enumerate(present, 1)],
            series_instance_uid=highdicom.UID(),
            series_number=series.series_number,
            sop_instance_uid=highdicom.UID(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=algorithm.name,
            software_versions=algorithm.version,
            device_serial_number=DEVICE_SERIAL_NUMBER,
            content_label=series.content_label,
            content_description=series.content_description,
            series_description=series.series_description,
            omit_empty_frames=True,
            contributing_equipment=[
                contributing_equipment(algorithm.name, algorithm.version, series.content_description)
            ],
            coding_schemes=[private_coding_scheme()] if uses_private_codes(present) else None,
            # an empty SpecificCharacterSet in the CT means the default repertoire: leave it out
            specific_character_set=slices[0].get("SpecificCharacterSet") or None,
        )
    out_path = Path(out_path)
    seg.save_as(out_path, enforce_file_format=True)
    logger.debug("wrote SEG (%d segments, %d frames) to %s", len(present), int(seg.NumberOfFrames), out_path)
    return out_path


def _pixel_array(present: Sequence[Structure]) -> tuple[np.ndarray, slice]:
    """highdicom's pixel array of the structures and the CT slices it covers.

    Only the slices from the lowest to the highest one holding a structure are passed (highdicom
    leaves empty frames out anyway; its checks then run over fewer voxels).  Structures that do
    not overlap go in as one label map (highdicom only checks its maximum); overlapping ones as a
    ``(frames, rows, columns, segments)`` boolean view of an array stacked segment by segment, so
    that highdicom's overlap check, a sum over the segment axis, and its reading of one segment
    frame at a time run over contiguous blocks.
    """
    boxes = [_slab(structure.mask) for structure in present]
    first = min(box[0].start for box in boxes)
    frames = slice(first, max(box[0].stop for box in boxes))
    shape = (frames.stop - frames.start, *present[0].mask.shape[1:])
    # Each structure is copied from its own box only, into arrays made by np.zeros: the pages
    # outside the boxes are never written, so they take no memory (a lung zone covers a third of
    # the slices, a lung a third of the rows).
    shifted = [(_shift(box, first), box) for box in boxes]
    count = np.zeros(shape, dtype=np.uint8)
    for structure, (target, source) in zip(present, shifted, strict=True):
        count[target] += structure.mask[source]
    overlapping = len(present) >= 256 or int(count.max()) > 1
    del count
    if not overlapping:
        labels = np.zeros(shape, dtype=np.uint8)
        for number, (structure, (target, source)) in enumerate(zip(present, shifted, strict=True), start=1):
            labels[target][structure.mask[source]] = number
        return labels, frames
    stacked = np.zeros((len(present), *shape), dtype=bool)
    for index, (structure, (target, source)) in enumerate(zip(present, shifted, strict=True)):
        stacked[index][target] = structure.mask[source]
    return np.moveaxis(stacked, 0, -1), frames


def _slab(mask: np.ndarray) -> tuple[slice, slice]:
    """The slices and rows of ``mask`` that hold its voxels (it must have one)."""
    box = bounding_box(mask)
    assert box is not None, "a present structure has a voxel"
    return box[0], box[1]


def _shift(box: tuple[slice, slice], first: int) -> tuple[slice, slice]:
    """``box`` in an array whose slice 0 is the volume's slice ``first``."""
    return slice(box[0].start - first, box[0].stop - first), box[1]


def _plane_position(ds: Dataset) -> highdicom.PlanePositionSequence:
    """The CT slice's position, for the SEG frame of that slice."""
    return highdicom.PlanePositionSequence(
        highdicom.CoordinateSystemNames.PATIENT, [float(v) for v in ds.ImagePositionPatient]
    )


def lung_structures(mask: np.ndarray) -> list[Structure]:
    """ "Right lung" and "Left lung" structures of a :class:`LungLabel` mask (empty ones included)."""
    if mask.ndim != 3 or not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"mask must be a 3-D array of integer LungLabel values, got {mask.dtype} {mask.shape}")
    unknown = set(np.unique(mask).tolist()) - {int(label) for label in LungLabel}
    if unknown:
        raise ValueError(f"mask holds values {sorted(unknown)} that are not LungLabel values (0, 1, 2)")
    return [
        Structure(
            f"{side.capitalize()} lung",
            codes.SCT.AnatomicalStructure,
            codes.SCT.Lung,
            LATERALITY[side],
            LUNG_COLOURS[side],
            ORGAN,
            mask == label,
        )
        for side, label in (("right", LungLabel.RIGHT_LUNG), ("left", LungLabel.LEFT_LUNG))
    ]


def write_lung_seg(
    mask: np.ndarray,
    ct_datasets: Sequence[Dataset],
    out_path: Path,
    *,
    algorithm_version: str,
    series_number: int = DEFAULT_SERIES_NUMBER,
) -> Path:
    """Write a right/left lung mask as a BINARY DICOM Segmentation of the CT slices ``ct_datasets``.

    Parameters
    ----------
    mask
        ``(slices, rows, columns)`` integer :class:`LungLabel` values (0 background, 1 right
        lung, 2 left lung) in the CT volume layout (see :func:`write_structure_seg`).
    ct_datasets
        The CT series' slices (headers suffice; pixel data is not read).
    out_path
        File to write (its folder must exist).
    algorithm_version
        Version of the application, written as AlgorithmVersion, SoftwareVersions and into
        the ContributingEquipmentSequence.
    series_number
        SeriesNumber of the new SEG series.

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    ValueError
        If the mask's shape is not the CT volume's, it holds other values, or it is empty.
    InputDataError
        If the slices are not one series of distinct positions.
    """
    if not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"mask must hold integer LungLabel values, got dtype {mask.dtype}")
    structures = lung_structures(mask)
    if not any(s.mask.any() for s in structures):
        raise ValueError("mask holds no lung voxel; there is no segmentation to write")
    return write_structure_seg(
        structures,
        ct_datasets,
        out_path,
        algorithm=SegAlgorithm(ALGORITHM_NAME, ALGORITHM_FAMILY, algorithm_version),
        series=SegSeries(series_number, SERIES_DESCRIPTION, CONTENT_LABEL, CONTENT_DESCRIPTION),
    )
