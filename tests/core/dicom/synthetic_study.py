"""A small synthetic SPECT/CT study for the core.dicom tests, and how it is written.

Sizes: CT 10 x 64 x 64 at (2.5, 0.8, 0.75) mm, NM 16 x 32 x 32 at (4.42, 4.0, 4.8) mm, both
with non-zero origins.  Spacings are deliberately different along every axis so that
swapped axes (e.g. PixelSpacing read as (dx, dy)) are caught.  Seeds are fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import highdicom
import numpy as np

from core.dicom.ct_writer import write_ct_series
from core.dicom.nm_writer import write_nm_series
from core.dicom.study import PatientStudy, synthetic_patient_study
from core.geometry import Grid

STUDY_SEED = 20240611
CT_GRID = Grid(shape=(10, 64, 64), spacing_mm=(2.5, 0.8, 0.75), origin_lps_mm=(-23.6, -25.2, -112.5))
NM_GRID = Grid(shape=(16, 32, 32), spacing_mm=(4.42, 4.0, 4.8), origin_lps_mm=(-68.51, -70.2, -150.0))


@dataclass(frozen=True)
class WrittenStudy:
    """A synthetic study on disk and the arrays it was written from."""

    study: PatientStudy
    frame_of_reference_uid: str
    hu: np.ndarray
    ct_paths: list[Path]
    nm_volumes: dict[str, np.ndarray]
    nm_paths: dict[str, Path]


def chest_hu(grid: Grid, rng: np.random.Generator) -> np.ndarray:
    """Air, an elliptic body of soft tissue with two lungs and a spine, plus CT noise, in float HU."""
    z, y, x = np.meshgrid(*(np.linspace(-1.0, 1.0, n) for n in grid.shape), indexing="ij")
    hu = np.full(grid.shape, -1000.0)
    hu[(x / 0.9) ** 2 + (y / 0.7) ** 2 < 1.0] = 40.0
    for side in (-0.45, 0.45):
        hu[((x - side) / 0.3) ** 2 + (y / 0.45) ** 2 + (z / 1.2) ** 2 < 1.0] = -850.0
    hu[(x / 0.12) ** 2 + ((y - 0.5) / 0.12) ** 2 < 1.0] = 700.0
    return hu + rng.normal(0.0, 15.0, size=grid.shape)


def spect_counts(grid: Grid, rng: np.random.Generator) -> np.ndarray:
    """Smooth non-negative blob with Poisson-like noise, float counts."""
    z, y, x = np.meshgrid(*(np.linspace(-1.0, 1.0, n) for n in grid.shape), indexing="ij")
    blob = 800.0 * np.exp(-((x - 0.2) ** 2 + y**2 + (z + 0.1) ** 2) / 0.3)
    return rng.poisson(blob).astype(np.float64) * 0.37 + rng.uniform(0.0, 1.0, size=grid.shape)


def write_study(out_dir: Path, seed: int) -> WrittenStudy:
    """Write a CT series and a perfusion and a ventilation SPECT of one synthetic study."""
    rng = np.random.default_rng(seed)
    study = synthetic_patient_study(rng)
    frame_of_reference_uid = highdicom.UID()
    hu = chest_hu(CT_GRID, rng)
    ct_paths = write_ct_series(hu, CT_GRID, study, out_dir / "ct", frame_of_reference_uid=frame_of_reference_uid)
    nm_volumes, nm_paths = {}, {}
    for series_number, tracer in enumerate(("perfusion", "ventilation"), start=2):
        nm_volumes[tracer] = spect_counts(NM_GRID, rng)
        nm_paths[tracer] = write_nm_series(
            nm_volumes[tracer],
            NM_GRID,
            study,
            out_dir / f"nm_{tracer}.dcm",
            frame_of_reference_uid=frame_of_reference_uid,
            tracer=tracer,
            n_views=120,
            time_per_view_s=20.0,
            series_number=series_number,
            series_description=f"Lung {tracer} SPECT (synthetic phantom)",
        )
    return WrittenStudy(study, frame_of_reference_uid, hu, ct_paths, nm_volumes, nm_paths)
