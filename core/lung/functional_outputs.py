"""Every DICOM object of the functional lung pipeline, written into one folder.

For a :class:`core.lung.functional.FunctionalResult` of a CT series, :func:`write_functional_outputs`
writes, each in the CT's study (and Frame of Reference, where the object has one) in a new series:

* ``lung_function_seg.dcm``: Segmentation (BINARY) of both lungs, six zones, high/low-function volumes;
* ``perfusion_map.dcm``, ``ventilation_map.dcm``: float Parametric Maps on the Eq. 2 scale;
* ``key_images_NN.dcm``: RGB Secondary Captures of the maps fused on the CT, axial and coronal;
* ``lung_function_rtstruct.dcm``: RT Structure Set of the SEG's structures as contours;
* ``lung_function_sr.dcm``: Comprehensive 3D SR with the TID 1500 regional table;
* ``lung_function_report.dcm``: Encapsulated PDF with the table and the key images.

Each writer's time is recorded as its own stage of the shared :class:`core.run_record.StageTimings`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes

from core.dicom.pdf_writer import write_encapsulated_pdf
from core.dicom.pm_writer import MapDescription, write_parametric_map
from core.dicom.provenance import SYNTHETIC_PERFUSION, SYNTHETIC_VENTILATION
from core.dicom.rtstruct_writer import write_rt_structure_set
from core.dicom.sc_writer import KeyImageSeries, write_key_images
from core.dicom.seg_writer import SegAlgorithm, SegSeries, write_structure_seg
from core.dicom.sr_writer import write_measurement_report
from core.dicom.structures import lung_function_structures
from core.lung.functional import FunctionalResult
from core.lung.quantification import FunctionalVolumes
from core.lung.rendering import render_key_images
from core.lung.report import render_report_pdf
from core.orientation import Reorientation
from core.run_record import StageTimings

logger = logging.getLogger(__name__)

UNIT_LABEL = "relative to the lung's 75th percentile (1 = P75)"
SEG_NAME = "lung_function_seg.dcm"
MAP_NAMES = {"perfusion": "perfusion_map.dcm", "ventilation": "ventilation_map.dcm"}
KEY_IMAGE_PREFIX = "key_images"
RTSTRUCT_NAME = "lung_function_rtstruct.dcm"
SR_NAME = "lung_function_sr.dcm"
PDF_NAME = "lung_function_report.dcm"
MAP_QUANTITIES = {"perfusion": SYNTHETIC_PERFUSION, "ventilation": SYNTHETIC_VENTILATION}


@dataclass(frozen=True)
class FunctionalSeriesNumbers:
    """SeriesNumber of each new series (the lung SEG of the segmentation is 900)."""

    seg: int = 901
    perfusion_map: int = 902
    ventilation_map: int = 903
    key_images: int = 904
    rtstruct: int = 905
    sr: int = 906
    pdf: int = 907


@dataclass(frozen=True)
class FunctionalSource:
    """The CT the result was computed on.

    Parameters
    ----------
    datasets
        The CT slices (headers; the writers reference them).
    hu
        Canonical ``(z, y, x)`` CT in HU (for the key images).
    reorientation
        Canonical layout -> CT volume layout (:func:`core.orientation.canonical`).
    """

    datasets: list[Dataset]
    hu: np.ndarray
    reorientation: Reorientation


@dataclass(frozen=True)
class ModelIdentity:
    """Which model made the maps, and which application version wrote them."""

    model_name: str
    model_version: str
    app_version: str

    @property
    def algorithm_name(self) -> str:
        """ManufacturerModelName of the objects: the model's name."""
        return f"perfusion-map {self.model_name}"


def write_functional_outputs(
    result: FunctionalResult,
    source: FunctionalSource,
    out_dir: Path,
    *,
    identity: ModelIdentity,
    timings: StageTimings,
    numbers: FunctionalSeriesNumbers | None = None,
) -> list[Path]:
    """Write all functional objects into ``out_dir``; returns the files in the order of the table above."""
    numbers = numbers or FunctionalSeriesNumbers()
    out_dir = Path(out_dir)
    version = identity.app_version
    to_ct = source.reorientation.to_original
    structures = lung_function_structures(
        to_ct(result.lung_labels),
        {name: to_ct(mask) for name, mask in result.zones.items()},
        {name: FunctionalVolumes(to_ct(v.high), to_ct(v.low)) for name, v in result.volumes.items()},
    )
    written: list[Path] = []
    with timings.measure("write_lung_function_seg"):
        written.append(
            write_structure_seg(
                structures,
                source.datasets,
                out_dir / SEG_NAME,
                algorithm=SegAlgorithm(identity.algorithm_name, codes.DCM.ArtificialIntelligence, version),
                series=SegSeries(
                    numbers.seg,
                    "Lung function volumes (SYNTHETIC, research use)",
                    "LUNG FUNCTION",
                    "Synthetic functional lung volumes - research use only",
                ),
            )
        )
    with timings.measure("write_parametric_maps"):
        for name, file_name in MAP_NAMES.items():
            written.append(
                write_parametric_map(
                    np.ascontiguousarray(to_ct(result.maps[name])),
                    source.datasets,
                    out_dir / file_name,
                    description=MapDescription(
                        MAP_QUANTITIES[name],
                        name.upper()[:16],
                        f"Synthetic relative {name}, 1 = lung P75",
                        getattr(numbers, f"{name}_map"),
                        f"{name.capitalize()} map (SYNTHETIC, research use)",
                        name.upper()[:16],
                    ),
                    algorithm_name=identity.algorithm_name,
                    algorithm_version=version,
                )
            )
    with timings.measure("render_key_images"):
        images = render_key_images(source.hu, result.maps, result.lung_labels, result.grid, unit_label=UNIT_LABEL)
    with timings.measure("write_key_images"):
        written += write_key_images(
            images,
            source.datasets,
            out_dir,
            series=KeyImageSeries(numbers.key_images, "Lung function key images (SYNTHETIC)", KEY_IMAGE_PREFIX),
            algorithm_name=identity.algorithm_name,
            algorithm_version=version,
        )
    with timings.measure("write_rt_structure_set"):
        written.append(
            write_rt_structure_set(
                structures,
                source.datasets,
                out_dir / RTSTRUCT_NAME,
                algorithm_version=version,
                series_number=numbers.rtstruct,
            )
        )
    with timings.measure("write_structured_report"):
        written.append(
            write_measurement_report(
                result.regions,
                source.datasets,
                out_dir / SR_NAME,
                algorithm_version=version,
                model_name=identity.model_name,
                model_version=identity.model_version,
                series_number=numbers.sr,
            )
        )
    with timings.measure("write_pdf_report"):
        pdf = render_report_pdf(
            result.regions,
            [(image.title, image.rgb) for image in images],
            model_name=identity.model_name,
            model_version=identity.model_version,
        )
        written.append(
            write_encapsulated_pdf(
                pdf,
                source.datasets[0],
                out_dir / PDF_NAME,
                title="Lung perfusion and ventilation (synthetic) report",
                algorithm_version=version,
                series_number=numbers.pdf,
            )
        )
    logger.info("Wrote %d functional lung objects", len(written))
    return written
