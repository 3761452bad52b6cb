"""Image plane conventions shared by the DICOM readers and writers of :mod:`core.dicom`.

Only axial images are supported: ImageOrientationPatient ``[1, 0, 0, 0, 1, 0]``
(rows run along +x, columns along +y, so the slice normal ``row x column`` is +z).
Other orientations (prone, coronal, tilted gantry) must be resampled first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.errors import InputDataError

AXIAL_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
"""ImageOrientationPatient of every axial image read or written here."""

ORIENTATION_TOLERANCE = 1e-4
"""Largest accepted deviation of a direction cosine from :data:`AXIAL_ORIENTATION`."""


def require_axial(image_orientation_patient: Sequence[float], source: str) -> None:
    """Check that ImageOrientationPatient is axial ``[1, 0, 0, 0, 1, 0]``.

    Parameters
    ----------
    image_orientation_patient
        The six direction cosines as stored in the file.
    source
        What is being read (a file name), for the error message.

    Raises
    ------
    InputDataError
        If the orientation is missing or not axial.
    """
    cosines = np.asarray([float(v) for v in image_orientation_patient], dtype=np.float64)
    if cosines.shape != (6,) or np.max(np.abs(cosines - AXIAL_ORIENTATION)) > ORIENTATION_TOLERANCE:
        raise InputDataError(
            f"{source}: ImageOrientationPatient {list(cosines)} is not axial {list(AXIAL_ORIENTATION)}; "
            "only head-first/feet-first supine axial images are supported, resample the series first"
        )
