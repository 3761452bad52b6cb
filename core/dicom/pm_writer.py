"""Write a float map (lung function, CT perfusion) as a DICOM Parametric Map on the CT series it was computed from.

The map (float32, the CT volume layout of :mod:`core.dicom.seg_writer`: ``values[k]`` belongs to
the ``k``-th slice of :func:`core.dicom.slice_stack.sorted_along_normal`) is stored as
FloatPixelData with an identity Real World Value Mapping (slope 1, intercept 0) whose quantity
and UCUM unit come from the :class:`MapDescription`.  The defaults are those of the synthetic lung
function maps: unit "1" (the values are relative, 1 = the lung's 75th percentile, seed 000 Eq. 2),
a private quantity code of :mod:`core.dicom.provenance`, the chest, and a display window over [0, 1].
Only the slices that hold a non-zero value are written (a map is 0 outside its organ), each at
the exact position of its CT slice, so the object stays small when the organ fills part of the
scan.  Same StudyInstanceUID and FrameOfReferenceUID as the CT, a new series, ContentQualification
RESEARCH, the algorithm in the ContributingEquipmentSequence; the CodingSchemeIdentificationSequence
names the private scheme when the quantity uses it.
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
    PRIVATE_SCHEME,
    SOURCE_PERSON_NAME_WARNING,
    contributing_equipment,
    private_coding_scheme,
)
from core.dicom.slice_stack import sorted_along_normal

logger = logging.getLogger(__name__)

WINDOW_CENTER = 0.5
WINDOW_WIDTH = 1.0
"""Default display window: the Eq. 2 range [0, 1]."""
BOTH_SIDES = "B"
FRAME_LATERALITIES = ("R", "L", "U", BOTH_SIDES)


@dataclass(frozen=True)
class MapDescription:
    """What the stored values are, and how the new series is labelled.

    Parameters
    ----------
    quantity
        QuantityDefinition of the real world value mapping.
    lut_label
        LUTLabel (16 characters at most), e.g. ``"PERFUSION"``.
    lut_explanation
        LUTExplanation (64 characters at most).
    series_number, series_description
        Of the new series.
    content_label
        Upper-case ContentLabel (16 characters at most).
    unit
        UCUM MeasurementUnitsCode of the values; "1" (no units) by default.
    anatomic_region, frame_laterality
        Frame Anatomy of every frame: the region (CID 4031) and FrameLaterality (``"B"`` both
        sides, ``"R"``, ``"L"``, ``"U"`` unpaired); the chest, both sides, by default.
    window_center, window_width
        Default display window, in the units of the values.
    """

    quantity: Code
    lut_label: str
    lut_explanation: str
    series_number: int
    series_description: str
    content_label: str
    unit: Code = codes.UCUM.NoUnits
    anatomic_region: Code = codes.SCT.Chest
    frame_laterality: str = BOTH_SIDES
    window_center: float = WINDOW_CENTER
    window_width: float = WINDOW_WIDTH

    def __post_init__(self) -> None:
        if self.window_width <= 0:
            raise ValueError(f"window_width must be positive, got {self.window_width}")
        if self.frame_laterality not in FRAME_LATERALITIES:
            raise ValueError(f"frame_laterality must be one of {FRAME_LATERALITIES}, got {self.frame_laterality!r}")


def _frame_anatomy(description: MapDescription) -> Dataset:
    """Frame Anatomy: the region and its laterality (with "B", General Series Laterality is not needed)."""
    item = Dataset()
    item.AnatomicRegionSequence = [CodedConcept.from_code(description.anatomic_region)]
    item.FrameLaterality = description.frame_laterality
    return item


def write_parametric_map(
    values: np.ndarray,
    ct_datasets: Sequence[Dataset],
    out_path: Path,
    *,
    description: MapDescription,
    algorithm_name: str,
    algorithm_version: str,
    signed: bool = False,
) -> Path:
    """Write ``values`` as a float Parametric Map of the CT slices ``ct_datasets``.

    Parameters
    ----------
    values
        ``(slices, rows, columns)`` finite map in the CT volume layout, non-negative unless ``signed``.
    ct_datasets
        The CT series' slices (headers suffice), in any order.
    out_path
        File to write (its folder must exist).
    description
        Quantity, labels and series.
    algorithm_name, algorithm_version
        The model and application that computed the map.
    signed
        Accept negative values (a z-score map); the real-world value range then starts at the minimum.

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    ValueError
        If the shape is not the CT volume's, a value is not finite or (unless ``signed``) negative, or the map
        is 0 everywhere.
    """
    slices = sorted_along_normal(ct_datasets)
    expected = (len(slices), int(slices[0].Rows), int(slices[0].Columns))
    if values.shape != expected:
        raise ValueError(f"map must have the CT volume's shape (slices, rows, columns) {expected}, got {values.shape}")
    if not np.all(np.isfinite(values)) or (not signed and np.any(values < 0)):
        raise ValueError("map values must be finite" + ("" if signed else " and non-negative"))
    kept = np.flatnonzero(values.reshape(len(slices), -1).any(axis=1))
    if kept.size == 0:
        raise ValueError("the map is 0 everywhere; there is nothing to write")
    frames = np.ascontiguousarray(values[kept], dtype=np.float32)
    mapping = highdicom.pm.RealWorldValueMapping(
        lut_label=description.lut_label,
        lut_explanation=description.lut_explanation,
        unit=description.unit,
        value_range=(min(0.0, float(frames.min())), float(max(1.0, frames.max()))),
        slope=1.0,
        intercept=0.0,
        quantity_definition=description.quantity,
    )
    positions = [
        highdicom.PlanePositionSequence(
            coordinate_system=highdicom.CoordinateSystemNames.PATIENT,
            image_position=[float(v) for v in slices[int(k)].ImagePositionPatient],
        )
        for k in kept
    ]
    uses_private_scheme = description.quantity.scheme_designator == PRIVATE_SCHEME
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=SOURCE_PERSON_NAME_WARNING, category=UserWarning)
        pmap = highdicom.pm.ParametricMap(
            source_images=[slices[int(k)] for k in kept],
            pixel_array=frames,
            series_instance_uid=highdicom.UID(),
            series_number=description.series_number,
            sop_instance_uid=highdicom.UID(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=algorithm_name,
            software_versions=algorithm_version,
            device_serial_number=DEVICE_SERIAL_NUMBER,
            contains_recognizable_visual_features=False,
            real_world_value_mappings=[mapping],
            voi_lut_transformations=[
                highdicom.VOILUTTransformation(
                    window_center=description.window_center, window_width=description.window_width
                )
            ],
            plane_positions=positions,
            content_label=description.content_label,
            content_description=description.lut_explanation,
            series_description=description.series_description,
            contributing_equipment=[
                contributing_equipment(algorithm_name, algorithm_version, description.lut_explanation)
            ],
            coding_schemes=[private_coding_scheme()] if uses_private_scheme else None,
            specific_character_set=slices[0].get("SpecificCharacterSet") or None,
        )
    pmap.SharedFunctionalGroupsSequence[0].FrameAnatomySequence = [_frame_anatomy(description)]
    out_path = Path(out_path)
    pmap.save_as(out_path, enforce_file_format=True)
    logger.debug("wrote Parametric Map %s (%d frames) to %s", description.lut_label, len(kept), out_path)
    return out_path
