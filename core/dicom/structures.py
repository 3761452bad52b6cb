"""Named, coded 3-D regions on a CT series: what the SEG and the RT Structure Set writers both write.

A :class:`Structure` is one binary mask in the CT volume layout (``mask[k]`` belongs to the
``k``-th slice of :func:`core.dicom.slice_stack.sorted_along_normal`, then rows, columns) with
the codes that describe it (DICOM Segment Description Macro: category CID 7150, type, and an
optional modifier such as laterality) and how a planning system should treat it
(RTROIInterpretedType).  :func:`lung_function_structures` builds the set the functional lung
pipeline writes: both lungs, six zones, and the high-/low-function volumes of each map.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from core.dicom.provenance import (
    FUNCTION_CATEGORY,
    HIGH_PERFUSION,
    HIGH_VENTILATION,
    LOW_PERFUSION,
    LOW_VENTILATION,
    PRIVATE_SCHEME,
)
from core.labels import LungLabel
from core.lung.quantification import FunctionalVolumes

logger = logging.getLogger(__name__)

ORGAN = "ORGAN"
AVOIDANCE = "AVOIDANCE"
"""RTROIInterpretedType of the high-function volumes: what functional-avoidance planning spares."""

LATERALITY = {"right": codes.SCT.Right, "left": codes.SCT.Left}
ZONE_TYPES = {
    "upper": codes.SCT.UpperZoneOfLung,
    "middle": codes.SCT.MiddleZoneOfLung,
    "lower": codes.SCT.LowerZoneOfLung,
}
ZONE_COLOURS = {"upper": "lightpink", "middle": "khaki", "lower": "lightgreen"}
LUNG_COLOURS = {"right": "lightskyblue", "left": "palegoldenrod"}
FUNCTION_TYPES = {
    ("perfusion", "high"): (HIGH_PERFUSION, "red"),
    ("perfusion", "low"): (LOW_PERFUSION, "royalblue"),
    ("ventilation", "high"): (HIGH_VENTILATION, "orange"),
    ("ventilation", "low"): (LOW_VENTILATION, "mediumpurple"),
}


@dataclass(frozen=True)
class Structure:
    """One coded region of the CT.

    Parameters
    ----------
    label
        SegmentLabel and ROIName (64 characters at most), e.g. ``"Right lung upper zone"``.
    category
        Segmented Property Category (CID 7150).
    property_type
        Segmented Property Type.
    modifier
        Segmented Property Type Modifier (laterality), or ``None``.
    colour
        CSS3 colour name (display colour of the segment and the ROI).
    interpreted_type
        RTROIInterpretedType (``ORGAN``, ``AVOIDANCE``).
    mask
        Boolean ``(slices, rows, columns)`` in the CT volume layout.
    """

    label: str
    category: Code
    property_type: Code
    modifier: Code | None
    colour: str
    interpreted_type: str
    mask: np.ndarray

    def __post_init__(self) -> None:
        if self.mask.ndim != 3 or self.mask.dtype != np.bool_:
            raise ValueError(f"{self.label}: mask must be a 3-D boolean array, got {self.mask.dtype} {self.mask.shape}")
        if not 0 < len(self.label) <= 64:
            raise ValueError(f"label must have 1 to 64 characters, got {self.label!r}")


def lung_function_structures(
    lung_labels: np.ndarray,
    zones: Mapping[str, np.ndarray],
    volumes: Mapping[str, FunctionalVolumes],
) -> list[Structure]:
    """Both lungs, the six zones and the high-/low-function volumes, in that order; empty masks left out.

    Parameters
    ----------
    lung_labels
        :class:`core.labels.LungLabel` values in the CT volume layout.
    zones
        ``"<right|left> <upper|middle|lower>"`` -> boolean mask (see :func:`core.lung.quantification.zone_labels`).
    volumes
        ``"perfusion"`` / ``"ventilation"`` -> :class:`core.lung.quantification.FunctionalVolumes`.
    """
    structures = []
    for side, label in (("right", LungLabel.RIGHT_LUNG), ("left", LungLabel.LEFT_LUNG)):
        structures.append(
            Structure(
                f"{side.capitalize()} lung",
                codes.SCT.AnatomicalStructure,
                codes.SCT.Lung,
                LATERALITY[side],
                LUNG_COLOURS[side],
                ORGAN,
                lung_labels == label,
            )
        )
    for name, mask in zones.items():
        side, zone = name.split()
        structures.append(
            Structure(
                f"{side.capitalize()} lung {zone} zone",
                codes.SCT.AnatomicalStructure,
                ZONE_TYPES[zone],
                LATERALITY[side],
                ZONE_COLOURS[zone],
                ORGAN,
                np.asarray(mask, dtype=bool),
            )
        )
    for (function, level), (code, colour) in FUNCTION_TYPES.items():
        mask = getattr(volumes[function], level)
        interpreted = AVOIDANCE if level == "high" else ORGAN
        structures.append(
            Structure(code.meaning, FUNCTION_CATEGORY, code, None, colour, interpreted, np.asarray(mask, dtype=bool))
        )
    return [s for s in structures if s.mask.any()]


def present_structures(structures: Sequence[Structure], volume_shape: tuple[int, int, int]) -> list[Structure]:
    """The structures with at least one voxel, after checking them against the CT volume's shape.

    Raises
    ------
    ValueError
        If a mask is not boolean or not ``volume_shape`` (slices, rows, columns), labels repeat, or
        every mask is empty.
    """
    for structure in structures:
        if tuple(structure.mask.shape) != tuple(volume_shape):
            raise ValueError(
                f"mask of {structure.label!r} must have the CT volume's shape (slices, rows, columns) = "
                f"{tuple(volume_shape)}, got {structure.mask.shape}"
            )
        if structure.mask.dtype != np.bool_:
            raise ValueError(f"mask of {structure.label!r} must be boolean, got {structure.mask.dtype}")
    labels = [s.label for s in structures]
    if len(set(labels)) != len(labels):
        raise ValueError(f"structure labels must be unique, got {labels}")
    present = [s for s in structures if s.mask.any()]
    if not present:
        raise ValueError("every structure's mask is empty; there is nothing to write")
    left_out = [s.label for s in structures if not s.mask.any()]
    if left_out:
        logger.info("empty structures left out: %s", left_out)
    return present


def uses_private_codes(structures: Sequence[Structure]) -> bool:
    """Whether a structure is coded in the local scheme (the object must then declare it)."""
    return any(
        code.scheme_designator == PRIVATE_SCHEME
        for s in structures
        for code in (s.category, s.property_type, s.modifier)
        if code is not None
    )
