"""Write rendered key images (maps fused on the CT) as a Secondary Capture series any PACS can show.

One single-frame RGB Secondary Capture Image per :class:`core.lung.rendering.KeyImage`, all in
one new series of the CT's study, built by highdicom from a CT slice header (patient and study
copied).  Each image says what it is in DerivationDescription and ImageComments, names the
algorithm in the ContributingEquipmentSequence (IHE AI Results), carries PatientOrientation of
the picture (axial: rows towards the patient's left, columns posterior; coronal: left, feet),
and references the CT slice it shows (axial) in the SourceImageSequence.  The pictures carry no
patient identifiers (BurnedInAnnotation NO); the words "SYNTHETIC - research use" are burned in.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom
import numpy as np
from pydicom import Dataset

from core.dicom.provenance import (
    MANUFACTURER,
    RESEARCH_NOTICE,
    SOURCE_PERSON_NAME_WARNING,
    SYNTHETIC_NOTICE,
    contributing_equipment,
)
from core.dicom.slice_stack import sorted_along_normal
from core.lung.rendering import KeyImage

logger = logging.getLogger(__name__)

BOTH_SIDES = "B"
PATIENT_ORIENTATION = {"axial": ("L", "P"), "coronal": ("L", "F")}
"""Direction of the picture's rows and columns (left to right, top to bottom) in patient terms."""


@dataclass(frozen=True)
class KeyImageSeries:
    """Labels of the Secondary Capture series."""

    series_number: int
    series_description: str
    file_prefix: str


def write_key_images(
    images: Sequence[KeyImage],
    ct_datasets: Sequence[Dataset],
    out_dir: Path,
    *,
    series: KeyImageSeries,
    algorithm_name: str,
    algorithm_version: str,
    image_comments: str = RESEARCH_NOTICE,
) -> list[Path]:
    """Write each picture as one Secondary Capture Image, ``<file_prefix>_<NN>.dcm`` (NN = 01, 02...) in ``out_dir``.

    Parameters
    ----------
    images
        RGB pictures (uint8 ``(rows, columns, 3)``).
    ct_datasets
        The CT slices the pictures were made from (headers suffice), in any order.
    out_dir
        Folder to write into (must exist).
    series
        SeriesNumber, SeriesDescription and file prefix.
    algorithm_name, algorithm_version
        The model and the application that made the maps.
    image_comments
        ImageComments of every picture: what the pictures are and that they are for research use.

    Returns
    -------
    list of Path
        The files written, in the order of ``images``.

    Raises
    ------
    ValueError
        If there is no picture, or one is not a uint8 RGB array.
    """
    if not images:
        raise ValueError("no key image to write")
    for image in images:
        if image.rgb.dtype != np.uint8 or image.rgb.ndim != 3 or image.rgb.shape[2] != 3:
            raise ValueError(
                f"{image.title}: picture must be uint8 (rows, columns, 3), got {image.rgb.dtype} {image.rgb.shape}"
            )
    slices = sorted_along_normal(ct_datasets)
    series_uid = highdicom.UID()
    written = []
    for number, image in enumerate(images, 1):
        reference = _slice_at(slices, image.position_mm) if image.plane == "axial" else None
        sc = _secondary_capture(
            image, slices[0], reference, series_uid, number, series, algorithm_name, algorithm_version
        )
        sc.ImageComments = image_comments
        path = Path(out_dir) / f"{series.file_prefix}_{number:02d}.dcm"
        sc.save_as(path, enforce_file_format=True)
        written.append(path)
    logger.debug("wrote %d key images to %s", len(written), out_dir)
    return written


def _slice_at(slices: Sequence[Dataset], z_mm: float) -> Dataset:
    """The axial slice whose ImagePositionPatient z is nearest ``z_mm`` (the slice an axial picture shows)."""
    return min(slices, key=lambda ds: abs(float(ds.ImagePositionPatient[2]) - z_mm))


def _secondary_capture(
    image: KeyImage,
    header: Dataset,
    shown_slice: Dataset | None,
    series_uid: str,
    number: int,
    series: KeyImageSeries,
    algorithm_name: str,
    algorithm_version: str,
) -> highdicom.sc.SCImage:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=SOURCE_PERSON_NAME_WARNING, category=UserWarning)
        sc = highdicom.sc.SCImage.from_ref_dataset(
            ref_dataset=header,
            pixel_array=image.rgb,
            photometric_interpretation=highdicom.PhotometricInterpretationValues.RGB,
            bits_allocated=8,
            coordinate_system=highdicom.CoordinateSystemNames.PATIENT,
            series_instance_uid=series_uid,
            series_number=series.series_number,
            sop_instance_uid=highdicom.UID(),
            instance_number=number,
            manufacturer=MANUFACTURER,
            patient_orientation=PATIENT_ORIENTATION[image.plane],
            contributing_equipment=[contributing_equipment(algorithm_name, algorithm_version, SYNTHETIC_NOTICE)],
            series_description=series.series_description,
            manufacturer_model_name=algorithm_name,
            software_versions=algorithm_version,
            # an empty SpecificCharacterSet in the CT means the default repertoire: leave it out
            specific_character_set=header.get("SpecificCharacterSet") or None,
        )
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.BurnedInAnnotation = "NO"
    sc.ImageLaterality = BOTH_SIDES  # both lungs; General Series Laterality is then not needed
    sc.DerivationDescription = f"{image.title}; {SYNTHETIC_NOTICE}"[:1024]
    if shown_slice is not None:
        source = Dataset()
        source.ReferencedSOPClassUID = shown_slice.SOPClassUID
        source.ReferencedSOPInstanceUID = shown_slice.SOPInstanceUID
        sc.SourceImageSequence = [source]
    return sc
