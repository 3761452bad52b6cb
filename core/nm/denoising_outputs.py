"""Denoise the study's fast bone SPECT and write the results: a derived NM series and a comparison picture.

Framework-free: the app's :class:`operators.SpectDenoisingOperator` calls :func:`denoise_study`
and :func:`write_denoising_outputs`; tests and scripts can too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from core.dicom.nm_derived_writer import write_comparison_capture, write_derived_nm
from core.dicom.provenance import SYNTHETIC_NOTICE, contributing_equipment
from core.geometry import Grid
from core.nm.denoising import count_ratio, ct_on_spect_grid, preserve_total_counts
from core.nm.denoising_model import DenoisingModel
from core.run_record import StageTimings

logger = logging.getLogger(__name__)

DERIVED_NM_NAME = "bone_spect_denoised.dcm"
COMPARISON_NAME = "bone_spect_denoising_comparison.dcm"
COUNT_TOLERANCE = 0.02
"""Total counts of the denoised volume must stay within this fraction of the input's (else a warning)."""


@dataclass(frozen=True)
class DenoisingSeriesNumbers:
    """SeriesNumber of the derived NM series and of the comparison Secondary Capture."""

    derived_nm: int = 910
    comparison: int = 911


@dataclass
class DenoisingResult:
    """The denoised volume on the fast SPECT's grid and how it was made."""

    fast: np.ndarray
    denoised: np.ndarray
    grid: Grid
    count_ratio: float
    """Total counts out / in of the written volume."""
    network_count_ratio: float
    """Total counts out / in of the network alone, before :func:`~core.nm.denoising.preserve_total_counts`."""
    used_ct: bool
    model: str
    seconds: float

    def summary(self) -> dict[str, object]:
        """What the run record says about the denoising."""
        return {
            "model": self.model,
            "used_ct": self.used_ct,
            "count_ratio": round(self.count_ratio, 5),
            "network_count_ratio": round(self.network_count_ratio, 5),
            "counts_preserved_within_2_percent": abs(self.count_ratio - 1.0) <= COUNT_TOLERANCE,
            "seconds": round(self.seconds, 3),
            "limitations": "trained on digital bone phantoms only; research use, not clinically validated",
        }


def denoise_study(
    model: DenoisingModel,
    fast: np.ndarray,
    fast_grid: Grid,
    ct_hu: np.ndarray | None = None,
    ct_grid: Grid | None = None,
) -> DenoisingResult:
    """Denoise ``fast`` (counts on ``fast_grid``) with the CT (canonical LPS, same Frame of Reference) when given."""
    start = time.perf_counter()
    ct = None
    if model.needs_ct:
        if ct_hu is None or ct_grid is None:
            raise ValueError("the denoising model needs the CT of the SPECT's Frame of Reference")
        ct = ct_on_spect_grid(ct_hu, ct_grid, fast_grid)
    raw = model.denoise(fast, ct)
    network_ratio = count_ratio(raw, fast)
    denoised = preserve_total_counts(raw, fast)
    ratio = count_ratio(denoised, fast)
    if abs(ratio - 1.0) > COUNT_TOLERANCE:
        logger.warning("denoising changed the total counts by %+.1f %% (more than 2 %%)", 100 * (ratio - 1.0))
    logger.info("network count ratio %.4f; rescaled to the input's total counts", network_ratio)
    return DenoisingResult(
        fast, denoised, fast_grid, ratio, network_ratio, model.uses_ct, model.identity, time.perf_counter() - start
    )


def write_denoising_outputs(
    result: DenoisingResult,
    source_path: Path,
    out_dir: Path,
    *,
    app_version: str,
    numbers: DenoisingSeriesNumbers | None = None,
    timings: StageTimings | None = None,
) -> list[Path]:
    """Write the derived NM series and the comparison picture into ``out_dir``; returns their paths."""
    numbers = numbers or DenoisingSeriesNumbers()
    source = pydicom.dcmread(source_path)
    equipment = contributing_equipment(
        f"perfusion-map {result.model.split()[0]}", app_version, "CT-guided U2-Net denoising of 1/7-time SPECT"
    )
    description = (
        f"Denoised by {result.model} (CT-guided U2-Net, seed 003) from the 1/7-time acquisition; {SYNTHETIC_NOTICE}"
    )
    timings = timings or StageTimings()
    with timings.measure("write_denoised_nm"):
        derived_path = write_derived_nm(
            result.denoised,
            source,
            out_dir / DERIVED_NM_NAME,
            series_number=numbers.derived_nm,
            series_description="Bone SPECT denoised (U2-Net) - SYNTHETIC - research use",
            derivation_description=description[:1024],
            equipment=equipment,
        )
    with timings.measure("write_denoising_comparison"):
        comparison_path = write_comparison_capture(
            result.fast,
            result.denoised,
            source,
            out_dir / COMPARISON_NAME,
            series_number=numbers.comparison,
            equipment=equipment,
            derived=pydicom.dcmread(derived_path, stop_before_pixels=True),
        )
    return [derived_path, comparison_path]
