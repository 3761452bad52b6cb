"""Write a left/right lung mask as a DICOM Segmentation (SEG) of the CT series it was computed on.

Slice order
-----------
A CT volume here is a stack of single-frame slices sorted by their ImagePositionPatient
projected on the slice normal (row cosine x column cosine), ascending: the order of the
MONAI Deploy SDK's DICOMSeriesToVolumeOperator and, for axial head-first or feet-first
series alike, index 0 is the slice nearest the feet.  :func:`sorted_along_normal` defines
that order once; :func:`slice_stack_affine_lps` gives the exact index-to-LPS affine of the
stack, and :func:`write_lung_seg` maps mask slice ``k`` to the ``k``-th slice of that order,
whatever order the datasets are passed in (file order and InstanceNumber are never used).

The object
----------
A BINARY Segmentation built by highdicom: one segment per lung present ("Right lung",
"Left lung": SCT 91723000 Anatomical Structure / SCT 39607008 Lung with the laterality
modifier SCT 24028007 Right or SCT 7771000 Left, the DICOM CID 7150 / 7151 / 244 encoding),
AUTOMATIC algorithm identification, empty frames omitted, same StudyInstanceUID and
FrameOfReferenceUID as the CT (highdicom takes them from the source images), a new series
whose description says it is automatic and for research use, and the algorithm's name and
version in the ContributingEquipmentSequence (IHE AI Results).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import highdicom
import numpy as np
from highdicom.sr import CodedConcept
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from core.dicom.slice_stack import sorted_along_normal
from core.labels import LungLabel

logger = logging.getLogger(__name__)

ALGORITHM_NAME = "perfusion-map lung segmentation"
ALGORITHM_FAMILY = codes.DCM.MorphologicalOperations
"""CID 7162: thresholds, connected components and morphology (:mod:`core.lung.segmentation`), no neural network."""
MANUFACTURER = "perfusion-map (research software)"
DEVICE_SERIAL_NUMBER = "none (software)"
SERIES_DESCRIPTION = "Lungs (automatic, research use only)"
CONTENT_LABEL = "LUNGS"
CONTENT_DESCRIPTION = "Automatic lung segmentation - research use only"
DEFAULT_SERIES_NUMBER = 900
SOURCE_PERSON_NAME_WARNING = r".*unlikely to represent the intended person name"
"""highdicom's UserWarning about a one-component PatientName copied from the CT: nobody running the app can fix it."""


@dataclass(frozen=True)
class LungSegment:
    """How one :class:`LungLabel` is described in the SEG."""

    label: LungLabel
    segment_label: str
    laterality: Code
    display_color: str
    """CSS3 colour name for :class:`highdicom.color.CIELabColor`."""


LUNG_SEGMENTS = (
    LungSegment(LungLabel.RIGHT_LUNG, "Right lung", codes.SCT.Right, "lightskyblue"),
    LungSegment(LungLabel.LEFT_LUNG, "Left lung", codes.SCT.Left, "palegoldenrod"),
)


def _check_mask(mask: np.ndarray, slices: Sequence[Dataset]) -> None:
    expected = (len(slices), int(slices[0].Rows), int(slices[0].Columns))
    if mask.ndim != 3 or tuple(mask.shape) != expected:
        raise ValueError(f"mask must have the CT volume's shape (slices, rows, columns) = {expected}, got {mask.shape}")
    if not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"mask must hold integer LungLabel values, got dtype {mask.dtype}")
    unknown = set(np.unique(mask).tolist()) - {int(label) for label in LungLabel}
    if unknown:
        raise ValueError(f"mask holds values {sorted(unknown)} that are not LungLabel values (0, 1, 2)")


def _segment_description(number: int, segment: LungSegment, algorithm_version: str) -> highdicom.seg.SegmentDescription:
    description = highdicom.seg.SegmentDescription(
        segment_number=number,
        segment_label=segment.segment_label,
        segmented_property_category=codes.SCT.AnatomicalStructure,
        segmented_property_type=codes.SCT.Lung,
        algorithm_type=highdicom.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=highdicom.AlgorithmIdentificationSequence(
            name=ALGORITHM_NAME, family=ALGORITHM_FAMILY, version=algorithm_version
        ),
        display_color=highdicom.color.CIELabColor.from_string(segment.display_color),
    )
    # the laterality modifier belongs inside the property type item (Segment Description Macro)
    description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
        CodedConcept.from_code(segment.laterality)
    ]
    return description


def _contributing_equipment(algorithm_version: str) -> highdicom.ContributingEquipment:
    """IHE AIR: the algorithm that produced the content, as processing equipment."""
    return highdicom.ContributingEquipment(
        manufacturer=MANUFACTURER,
        purpose_of_reference=codes.DCM.ProcessingEquipment,
        manufacturer_model_name=ALGORITHM_NAME,
        software_versions=algorithm_version,
        contribution_datetime=datetime.now(UTC),
        contribution_description=CONTENT_DESCRIPTION,
    )


def write_lung_seg(
    mask: np.ndarray,
    ct_datasets: Sequence[Dataset],
    out_path: Path,
    *,
    algorithm_version: str,
    series_number: int = DEFAULT_SERIES_NUMBER,
) -> Path:
    """Write ``mask`` as a BINARY DICOM Segmentation of the CT slices ``ct_datasets``.

    Parameters
    ----------
    mask
        ``(slices, rows, columns)`` integer :class:`LungLabel` values (0 background, 1 right
        lung, 2 left lung) in the CT volume layout: ``mask[k]`` belongs to the ``k``-th slice
        of :func:`sorted_along_normal` (``ct_datasets`` may come in any order).
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
    slices = sorted_along_normal(ct_datasets)
    _check_mask(mask, slices)
    present = [segment for segment in LUNG_SEGMENTS if np.any(mask == segment.label)]
    if not present:
        raise ValueError("mask holds no lung voxel; there is no segmentation to write")
    stacked = np.stack([mask == segment.label for segment in present], axis=-1).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=SOURCE_PERSON_NAME_WARNING, category=UserWarning)
        seg = _segmentation(slices, stacked, present, algorithm_version, series_number)
    out_path = Path(out_path)
    seg.save_as(out_path, enforce_file_format=True)
    logger.debug("wrote lung SEG (%d segments, %d frames) to %s", len(present), int(seg.NumberOfFrames), out_path)
    return out_path


def _segmentation(
    slices: Sequence[Dataset],
    stacked: np.ndarray,
    present: Sequence[LungSegment],
    algorithm_version: str,
    series_number: int,
) -> highdicom.seg.Segmentation:
    """The highdicom object; ``stacked[..., s]`` is the binary mask of ``present[s]``."""
    return highdicom.seg.Segmentation(
        source_images=slices,
        pixel_array=stacked,
        segmentation_type=highdicom.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[
            _segment_description(number, segment, algorithm_version) for number, segment in enumerate(present, 1)
        ],
        series_instance_uid=highdicom.UID(),
        series_number=series_number,
        sop_instance_uid=highdicom.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=ALGORITHM_NAME,
        software_versions=algorithm_version,
        device_serial_number=DEVICE_SERIAL_NUMBER,
        content_label=CONTENT_LABEL,
        content_description=CONTENT_DESCRIPTION,
        series_description=SERIES_DESCRIPTION,
        omit_empty_frames=True,
        contributing_equipment=[_contributing_equipment(algorithm_version)],
        # an empty SpecificCharacterSet in the CT means the default repertoire: leave it out
        specific_character_set=slices[0].get("SpecificCharacterSet") or None,
    )
