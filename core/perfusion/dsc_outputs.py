"""The DICOM objects of the DSC-MRI perfusion pipeline, written into the DSC series' study.

For a :class:`core.perfusion.dsc.DscResult` (and, when the stU-Net ran, its CBV prediction),
:func:`write_dsc_outputs` writes float Parametric Maps, each in a new series with the
StudyInstanceUID and FrameOfReferenceUID of the DSC series, referencing the MR slices of its first
time point (the maps are on that grid):

* ``dsc_cbv.dcm``, ``dsc_cbf.dcm``, ``dsc_mtt.dcm``: CBV, CBF and MTT of the SVD pipeline, quantity
  codes DCM 126391 "Absolute Regional Blood Volume", DCM 126390 "Absolute Regional Blood Flow" and
  DCM 113052 "Mean Transit Time" (CID 4108), brain as anatomic region.  DSC does not measure
  absolute values without a calibration (the tissue-to-blood relaxivity ratio is assumed, see
  :mod:`core.perfusion.dsc`): the series description says "uncalibrated";
* ``dsc_cbv_stunet.dcm`` (with the network): the stU-Net's CBV, standardised over the brain as seed
  004 trains it (z-score, clipped to [-5, 5]), quantity DCM 126391 with the unit UCUM ``{z-score}``.

All or nothing, as the CT perfusion objects (:func:`core.perfusion.ctp_outputs.publish_atomically`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from core.dicom.pm_writer import MapDescription, write_parametric_map
from core.dicom.slice_stack import sorted_along_normal
from core.perfusion.ctp_outputs import BRAIN_LATERALITY, CBF_UNIT, CBV_UNIT, RESEARCH_LABEL, publish_atomically
from core.perfusion.dsc import DscResult
from core.run_record import StageTimings

logger = logging.getLogger(__name__)

FILE_PREFIX = "dsc_"
Z_SCORE_UNIT = Code("{z-score}", "UCUM", "z-score")


@dataclass(frozen=True)
class DscMap:
    """One map: its file, quantity, unit, labels and display range."""

    file_name: str
    quantity: Code
    unit: Code
    label: str
    explanation: str
    window: tuple[float, float]


MAPS = {
    "cbv": DscMap(
        "dsc_cbv.dcm",
        codes.DCM.AbsoluteRegionalBloodVolume,
        CBV_UNIT,
        "CBV",
        "Cerebral blood volume, uncalibrated (ml/100 g)",
        (0.0, 40.0),
    ),
    "cbf": DscMap(
        "dsc_cbf.dcm",
        codes.DCM.AbsoluteRegionalBloodFlow,
        CBF_UNIT,
        "CBF",
        "Cerebral blood flow, uncalibrated (ml/100 g/min)",
        (0.0, 300.0),
    ),
    "mtt": DscMap("dsc_mtt.dcm", codes.DCM.MeanTransitTime, codes.UCUM.Second, "MTT", "Mean transit time (s)", (0, 20)),
    "cbv_stunet": DscMap(
        "dsc_cbv_stunet.dcm",
        codes.DCM.AbsoluteRegionalBloodVolume,
        Z_SCORE_UNIT,
        "CBV STUNET",
        "CBV by the stU-Net, standardised over the brain (z-score)",
        (-2.0, 5.0),
    ),
}


@dataclass(frozen=True)
class DscSeriesNumbers:
    """SeriesNumber of each new series."""

    cbv: int = 930
    cbf: int = 931
    mtt: int = 932
    cbv_stunet: int = 933


def dsc_maps(result: DscResult, stunet_cbv: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The maps to write, by :data:`MAPS` name, float32, in the order written."""
    maps = {"cbv": result.cbv_ml_100g, "cbf": result.cbf_ml_100g_min, "mtt": result.mtt_s}
    if stunet_cbv is not None:
        maps["cbv_stunet"] = stunet_cbv
    return {name: np.ascontiguousarray(values, dtype=np.float32) for name, values in maps.items()}


def write_dsc_outputs(
    maps: dict[str, np.ndarray],
    first_time_point: Sequence[Dataset],
    out_dir: Path,
    *,
    algorithm_name: str,
    algorithm_version: str,
    numbers: DscSeriesNumbers | None = None,
    timings: StageTimings | None = None,
) -> dict[str, Path]:
    """Write the maps (:func:`dsc_maps`) as Parametric Maps into ``out_dir``, all or nothing.

    Parameters
    ----------
    maps
        ``(z, y, x)`` float maps by :data:`MAPS` name, on the grid of ``first_time_point``.
    first_time_point
        The MR slices of the DSC series' first time point (headers suffice), in any order.
    out_dir
        Folder for the objects; created if missing, else it must hold no ``dsc_*.dcm`` file.
    algorithm_name, algorithm_version
        ManufacturerModelName / algorithm name (e.g. ``"DSC oSVD"``) and version.

    Raises
    ------
    ValueError
        If a map is unknown or does not have the shape of the first time point's volume.
    FileExistsError
        If ``out_dir`` already holds DSC objects.
    """
    out_dir = Path(out_dir)
    if out_dir.is_dir() and any(out_dir.glob(f"{FILE_PREFIX}*.dcm")):
        raise FileExistsError(f"{out_dir} already holds {FILE_PREFIX}*.dcm files; write the DSC objects elsewhere")
    slices = sorted_along_normal(first_time_point)
    shape = (len(slices), int(slices[0].Rows), int(slices[0].Columns))
    for name, values in maps.items():
        if name not in MAPS:
            raise ValueError(f"unknown DSC map {name!r}; known: {sorted(MAPS)}")
        if values.shape != shape:
            raise ValueError(f"DSC map {name} has shape {values.shape}, the DSC volume {shape}")
    numbers = numbers or DscSeriesNumbers()
    timings = timings or StageTimings()

    def write(folder: Path) -> dict[str, Path]:
        written = {}
        with timings.measure("write_dsc_parametric_maps"):
            for name, values in maps.items():
                spec = MAPS[name]
                low, high = spec.window
                calibration = "standardised" if name == "cbv_stunet" else "uncalibrated"
                description = MapDescription(
                    quantity=spec.quantity,
                    lut_label=spec.label,
                    lut_explanation=spec.explanation,
                    series_number=getattr(numbers, name),
                    series_description=f"DSC {spec.label} map ({calibration}, {RESEARCH_LABEL})",
                    content_label=spec.label.replace(" ", "_"),
                    unit=spec.unit,
                    anatomic_region=codes.SCT.Brain,
                    frame_laterality=BRAIN_LATERALITY,
                    window_center=(low + high) / 2.0,
                    window_width=high - low,
                )
                written[name] = write_parametric_map(
                    values,
                    slices,
                    folder / spec.file_name,
                    description=description,
                    algorithm_name=algorithm_name,
                    algorithm_version=algorithm_version,
                    signed=name == "cbv_stunet",
                )
        return written

    written = publish_atomically(out_dir, write)
    logger.info("Wrote %d DSC perfusion objects to %s", len(written), out_dir)
    return written


def dsc_summary(result: DscResult, voxel_volume_ml: float, algorithm_name: str) -> dict[str, object]:
    """What the run record says about a DSC analysis (no patient identifiers)."""
    brain = result.brain_mask
    return {
        "algorithm": algorithm_name,
        "method": result.method,
        "brain_ml": round(float(brain.sum()) * voxel_volume_ml, 1),
        "baseline_frames": result.baseline_frames,
        "frame_interval_s": result.dt_s,
        "aif_peak_delta_r2_per_s": round(float(result.aif_dr2.max()), 2),
        "aif_partial_volume_scale": round(result.aif_scale, 3),
        "median_brain_cbv_uncalibrated_ml_100g": round(float(np.median(result.cbv_ml_100g[brain])), 2),
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
    }
