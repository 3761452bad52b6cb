"""Write a synthetic functional map as a DICOM Parametric Map on the CT series it was computed from.

The map (float32, the CT volume layout of :mod:`core.dicom.seg_writer`: ``values[k]`` belongs to
the ``k``-th slice of :func:`core.dicom.slice_stack.sorted_along_normal`) is stored as
FloatPixelData with an identity Real World Value Mapping (slope 1, intercept 0, unit UCUM "1":
the values are relative, 1 = the lung's 75th percentile, seed 000 Eq. 2) whose quantity is a
private code of :mod:`core.dicom.provenance` (no standard terminology codes "synthetic relative
lung perfusion").  Only the slices that hold a non-zero value are written (the map is 0 outside
the lungs), each at the exact position of its CT slice, so the object stays small on a chest
CT whose lungs fill part of the scan.  Same StudyInstanceUID and FrameOfReferenceUID as the CT,
a new series, ContentQualification RESEARCH, the algorithm in the ContributingEquipmentSequence.
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

logger = logging.getLogger(__name__)

WINDOW_CENTER = 0.5
WINDOW_WIDTH = 1.0
"""Display window over the Eq. 2 range [0, 1]."""
BOTH_SIDES = "B"


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
    """

    quantity: Code
    lut_label: str
    lut_explanation: str
    series_number: int
    series_description: str
    content_label: str


def _frame_anatomy() -> Dataset:
    """Frame Anatomy: the chest, both sides (General Series Laterality is then not needed)."""
    item = Dataset()
    item.AnatomicRegionSequence = [CodedConcept.from_code(codes.SCT.Chest)]
    item.FrameLaterality = BOTH_SIDES
    return item


def write_parametric_map(
    values: np.ndarray,
    ct_datasets: Sequence[Dataset],
    out_path: Path,
    *,
    description: MapDescription,
    algorithm_name: str,
    algorithm_version: str,
) -> Path:
    """Write ``values`` as a float Parametric Map of the CT slices ``ct_datasets``.

    Parameters
    ----------
    values
        ``(slices, rows, columns)`` finite, non-negative map in the CT volume layout.
    ct_datasets
        The CT series' slices (headers suffice), in any order.
    out_path
        File to write (its folder must exist).
    description
        Quantity, labels and series.
    algorithm_name, algorithm_version
        The model and application that computed the map.

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    ValueError
        If the shape is not the CT volume's, a value is negative or not finite, or the map is 0 everywhere.
    """
    slices = sorted_along_normal(ct_datasets)
    expected = (len(slices), int(slices[0].Rows), int(slices[0].Columns))
    if values.shape != expected:
        raise ValueError(f"map must have the CT volume's shape (slices, rows, columns) {expected}, got {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("map values must be finite and non-negative")
    kept = np.flatnonzero(values.reshape(len(slices), -1).any(axis=1))
    if kept.size == 0:
        raise ValueError("the map is 0 everywhere; there is nothing to write")
    frames = np.ascontiguousarray(values[kept], dtype=np.float32)
    mapping = highdicom.pm.RealWorldValueMapping(
        lut_label=description.lut_label,
        lut_explanation=description.lut_explanation,
        unit=codes.UCUM.NoUnits,
        value_range=(0.0, float(max(1.0, frames.max()))),
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
                highdicom.VOILUTTransformation(window_center=WINDOW_CENTER, window_width=WINDOW_WIDTH)
            ],
            plane_positions=positions,
            content_label=description.content_label,
            content_description=description.lut_explanation,
            series_description=description.series_description,
            contributing_equipment=[
                contributing_equipment(algorithm_name, algorithm_version, description.lut_explanation)
            ],
            coding_schemes=[private_coding_scheme()],
            specific_character_set=slices[0].get("SpecificCharacterSet") or None,
        )
    pmap.SharedFunctionalGroupsSequence[0].FrameAnatomySequence = [_frame_anatomy()]
    out_path = Path(out_path)
    pmap.save_as(out_path, enforce_file_format=True)
    logger.debug("wrote Parametric Map %s (%d frames) to %s", description.lut_label, len(kept), out_path)
    return out_path
