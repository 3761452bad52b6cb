"""Every DICOM object of the CT perfusion (stroke) pipeline, written into the CTP's study.

For a :class:`core.perfusion.ctp.CtpResult` of a 4D CTP series, :func:`write_ctp_outputs` writes,
each in a new series with the StudyInstanceUID and FrameOfReferenceUID of the CTP and referencing
the CT slices of its first frame (the maps are on that grid):

* ``ctp_cbf.dcm``, ``ctp_cbv.dcm``, ``ctp_mtt.dcm``, ``ctp_tmax.dcm``: float Parametric Maps
  (:func:`core.dicom.pm_writer.write_parametric_map`) of CBF, CBV, MTT and Tmax, in the units and
  with the quantity codes of :data:`MAPS`, the brain as anatomic region;
* ``ctp_lesions_seg.dcm``: BINARY Segmentation of the ischaemic core (rCBF < 30 %) and the
  hypoperfusion (Tmax > 6 s) (:func:`core.dicom.seg_writer.write_structure_seg`); an empty segment
  is left out with a warning, and without any lesion there is no SEG;
* ``ctp_summary_NN.dcm``: one RGB Secondary Capture per slice with brain tissue
  (:mod:`core.perfusion.ctp_rendering`, :func:`core.dicom.sc_writer.write_key_images`).

Codes (PS3.16 CID 4108 "Perfusion Model Parameter", which retired the brain-specific "Regional
Cerebral Blood Flow/Volume" in 2019a in favour of the general concepts; the Frame Anatomy says
brain): quantities DCM 126390 "Absolute Regional Blood Flow" in UCUM "ml/(100.g)/min", DCM 126391
"Absolute Regional Blood Volume" in "ml/(100.g)", DCM 113052 "Mean Transit Time" and DCM 113084
"Tmax" in "s"; segments in the category SCT 49755003 "Morphologically Abnormal Structure"
(CID 7150), of type SCT 55641003 "Infarct" (core) and SCT 52674009 "Ischemia" (hypoperfusion).

Nothing is half-written: the objects are written into a hidden folder beside ``out_dir``, which
becomes ``out_dir`` (or whose files are moved into an existing ``out_dir``) only once every object
has been written; if a writer raises, the hidden folder is removed and ``out_dir`` is untouched.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from core.dicom.ct_reader import grid_of_slices
from core.dicom.pm_writer import MapDescription, write_parametric_map
from core.dicom.sc_writer import KeyImageSeries, write_key_images
from core.dicom.seg_writer import SegAlgorithm, SegSeries, write_structure_seg
from core.dicom.slice_stack import sorted_along_normal
from core.dicom.structures import Structure
from core.geometry import Grid
from core.perfusion.ctp import CtpResult
from core.perfusion.ctp_rendering import CtpSummary, render_summary_image, summary_slices
from core.perfusion.lesions import CORE_RELATIVE_CBF, HYPOPERFUSION_TMAX_S
from core.run_record import StageTimings

if TYPE_CHECKING:
    from core.perfusion.transformer_model import CtpTransformerModel

logger = logging.getLogger(__name__)

FILE_PREFIX = "ctp_"
SEG_NAME = "ctp_lesions_seg.dcm"
SUMMARY_PREFIX = "ctp_summary"
RESEARCH_LABEL = "research use"
IMAGE_COMMENTS = (
    "CT perfusion maps and stroke lesions computed automatically from the CTP series; "
    "not clinically validated; research use only."
)
ABNORMAL_STRUCTURE = codes.SCT.MorphologicallyAbnormalStructure
"""SCT 49755003, a Segmented Property Category of CID 7150."""
INFARCT = Code("55641003", "SCT", "Infarct")
"""SNOMED CT 55641003 |Infarct (morphologic abnormality)|; not in pydicom's code dictionary."""
ISCHEMIA = Code("52674009", "SCT", "Ischemia")
"""SNOMED CT 52674009 |Ischemia|: the critically hypoperfused tissue; not in pydicom's code dictionary."""
CBF_UNIT = Code("ml/(100.g)/min", "UCUM", "ml/(100.g)/min")
"""The unit PS3.16 CID 4108 gives for Absolute Regional Blood Flow of tissue by mass."""
CBV_UNIT = Code("ml/(100.g)", "UCUM", "ml/(100.g)")
"""The unit PS3.16 CID 4108 gives for Absolute Regional Blood Volume of tissue by mass."""
PLAIN_BRAIN_HU = 40.0
"""Grey of the brain in the summary pictures when no baseline CT is given (mid brain window)."""
BRAIN_LATERALITY = "B"
"""FrameLaterality of the brain maps: both hemispheres."""


@dataclass(frozen=True)
class CtpMap:
    """One perfusion map: where it is in :class:`CtpResult`, and how its Parametric Map describes it."""

    attribute: str
    file_name: str
    quantity: Code
    unit: Code
    label: str
    """LUTLabel and ContentLabel (16 characters at most)."""
    explanation: str
    window: tuple[float, float]
    """Display range (lower, upper) in the map's unit."""


MAPS = {
    "cbf": CtpMap(
        "cbf_ml_100g_min",
        "ctp_cbf.dcm",
        codes.DCM.AbsoluteRegionalBloodFlow,  # DCM 126390
        CBF_UNIT,
        "CBF",
        "Cerebral blood flow (ml/100 g/min)",
        (0.0, 80.0),
    ),
    "cbv": CtpMap(
        "cbv_ml_100g",
        "ctp_cbv.dcm",
        codes.DCM.AbsoluteRegionalBloodVolume,  # DCM 126391
        CBV_UNIT,
        "CBV",
        "Cerebral blood volume (ml/100 g)",
        (0.0, 8.0),
    ),
    "mtt": CtpMap(
        "mtt_s",
        "ctp_mtt.dcm",
        codes.DCM.MeanTransitTime,
        codes.UCUM.Second,
        "MTT",
        "Mean transit time (s)",
        (0.0, 20.0),
    ),
    "tmax": CtpMap(
        "tmax_s",
        "ctp_tmax.dcm",
        codes.DCM.Tmax,
        codes.UCUM.Second,
        "TMAX",
        "Tmax of the residue function (s)",
        (0.0, 15.0),
    ),
}
"""The four maps, in the order they are written; quantities and units of PS3.16 CID 4108."""


@dataclass(frozen=True)
class CtpSeriesNumbers:
    """SeriesNumber of each new series."""

    cbf: int = 920
    cbv: int = 921
    mtt: int = 922
    tmax: int = 923
    seg: int = 924
    summary: int = 925


@dataclass(frozen=True)
class CtpIdentity:
    """Which algorithm made the maps and lesions, as every object names it.

    Parameters
    ----------
    algorithm_name
        ManufacturerModelName and algorithm name, e.g. ``"CTP oSVD"``.
    algorithm_version
        SoftwareVersions and AlgorithmVersion (the application's version).
    family
        CID 7162 algorithm family of the lesion segments.
    model
        ``name version`` of the network for the ``network`` method, else ``None``.
    """

    algorithm_name: str
    algorithm_version: str
    family: Code
    model: str | None = None

    @classmethod
    def of(cls, method: str, app_version: str, network: CtpTransformerModel | None = None) -> CtpIdentity:
        """The identity of a ``method`` of :data:`core.perfusion.ctp.CTP_METHODS`.

        A deconvolution is ``"CTP oSVD"`` etc., its lesions thresholds on two maps (family
        Multispectral Processing); the network is ``"CTP Transformer"`` (family Artificial
        Intelligence), with the loaded model's name and version.
        """
        if method == "network":
            model = network.identity if network is not None else None
            return cls("CTP Transformer", app_version, codes.DCM.ArtificialIntelligence, model)
        return cls(f"CTP {method[:1]}{method[1:].upper()}", app_version, codes.DCM.MultispectralProcessing)


def lesion_structures(result: CtpResult) -> list[Structure]:
    """The core and hypoperfusion segments that hold a voxel; a warning names each empty one."""
    lesions = result.lesions
    candidates = [
        Structure(
            f"Ischaemic core (rCBF < {100 * CORE_RELATIVE_CBF:.0f} %)",
            ABNORMAL_STRUCTURE,
            INFARCT,
            None,
            "red",
            "ORGAN",
            np.asarray(lesions.core, dtype=bool),
        ),
        Structure(
            f"Hypoperfusion (Tmax > {HYPOPERFUSION_TMAX_S:.0f} s)",
            ABNORMAL_STRUCTURE,
            ISCHEMIA,
            None,
            "lime",
            "ORGAN",
            np.asarray(lesions.hypoperfusion, dtype=bool),
        ),
    ]
    for structure in candidates:
        if not structure.mask.any():
            logger.warning("CTP lesion segment %r is empty and is left out of the SEG", structure.label)
    return [s for s in candidates if s.mask.any()]


def stored_map(result: CtpResult, name: str) -> np.ndarray:
    """The map ``name`` of :data:`MAPS` as its Parametric Map stores it: float32, negative values set to 0.

    Noise can make the area under a tissue curve, hence CBV and MTT, negative where the tissue
    hardly enhances (the core); these quantities are non-negative, so such voxels are stored as 0.
    """
    values = np.asarray(getattr(result, MAPS[name].attribute), dtype=np.float32)
    negative = int(np.count_nonzero(values < 0))
    if negative:
        logger.info("%s: %d negative voxel values (noise) stored as 0", MAPS[name].label, negative)
    return np.ascontiguousarray(np.clip(values, 0.0, None))


def write_ctp_outputs(
    result: CtpResult,
    ctp_first_frame_datasets: Sequence[Dataset],
    out_dir: Path,
    *,
    identity: CtpIdentity,
    baseline_hu: np.ndarray | None = None,
    numbers: CtpSeriesNumbers | None = None,
    timings: StageTimings | None = None,
) -> dict[str, Path]:
    """Write the CTP maps, lesion SEG and summary pictures into ``out_dir``, all or nothing.

    Parameters
    ----------
    result
        Maps and lesions on the grid of the CTP's frames (:func:`core.perfusion.ctp.analyse_ctp`).
    ctp_first_frame_datasets
        The CT slices of the CTP's first frame (headers suffice), in any order.
    out_dir
        Folder for the objects; created if missing, else it must hold no ``ctp_*.dcm`` file.
    identity
        Algorithm name, version and family.
    baseline_hu
        ``(z, y, x)`` pre-contrast CT (HU) shown under the maps of the summary pictures, e.g. the
        mean of the ``result.baseline_frames`` first frames; without it the brain is plain grey.
    numbers
        SeriesNumber of each new series.
    timings
        Stage timings to add to.

    Returns
    -------
    dict of str to Path
        ``"cbf"``, ``"cbv"``, ``"mtt"``, ``"tmax"``, ``"seg"`` (absent without any lesion) and
        ``"summary_NN"`` (NN = 01, 02...), the files as they lie in ``out_dir``.

    Raises
    ------
    ValueError
        If a map or ``baseline_hu`` does not have the shape of the first frame's volume, or a map is invalid.
    FileExistsError
        If ``out_dir`` already holds CTP objects.
    """
    out_dir = Path(out_dir)
    if out_dir.is_dir() and any(out_dir.glob(f"{FILE_PREFIX}*.dcm")):
        raise FileExistsError(f"{out_dir} already holds {FILE_PREFIX}*.dcm files; write the CTP objects elsewhere")
    slices = sorted_along_normal(ctp_first_frame_datasets)
    shape = (len(slices), int(slices[0].Rows), int(slices[0].Columns))
    if baseline_hu is None:
        baseline_hu = np.where(result.brain_mask, PLAIN_BRAIN_HU, 0.0).astype(np.float32)
    if baseline_hu.shape != shape or result.tissue_mask.shape != shape:
        raise ValueError(
            f"baseline_hu {baseline_hu.shape} and the result's maps {result.tissue_mask.shape} must have the shape "
            f"of the first frame's volume {shape}"
        )
    numbers = numbers or CtpSeriesNumbers()
    timings = timings or StageTimings()

    def write(folder: Path) -> dict[str, Path]:
        written = _write_maps(result, slices, folder, identity, numbers, timings)
        seg = _write_seg(result, slices, folder, identity, numbers.seg, timings)
        if seg is not None:
            written["seg"] = seg
        with timings.measure("write_ctp_summary"):
            written |= _write_summary(result, slices, baseline_hu, folder, identity, numbers.summary)
        return written

    written = publish_atomically(out_dir, write)
    logger.info("Wrote %d CT perfusion objects to %s", len(written), out_dir)
    return written


def ctp_summary(result: CtpResult, grid: Grid, identity: CtpIdentity) -> dict[str, object]:
    """What the run record says about the CT perfusion analysis (JSON-ready: no ``inf``).

    Parameters
    ----------
    result
        The analysis.
    grid
        Its grid (for the voxel volume in ml).
    identity
        The algorithm (and model) that made it.
    """
    volumes = result.lesions.volumes_ml(grid.voxel_volume_ml)
    ratio = volumes["mismatch_ratio"]
    return {
        "algorithm": identity.algorithm_name,
        "method": result.method,
        "model": identity.model,
        "core_ml": round(volumes["core_ml"], 2),
        "hypoperfusion_ml": round(volumes["hypoperfusion_ml"], 2),
        "mismatch_ml": round(volumes["mismatch_ml"], 2),
        "mismatch_ratio": round(ratio, 3) if np.isfinite(ratio) else None,
        "reference_cbf_ml_100g_min": round(result.lesions.reference_cbf_ml_100g_min, 2),
        "aif_scale": round(result.aif_scale, 4),
        "dt_s": round(result.dt_s, 4),
        "baseline_frames": result.baseline_frames,
        "seconds": {name: round(value, 3) for name, value in result.seconds.items()},
        "definitions": (
            f"core: rCBF < {100 * CORE_RELATIVE_CBF:.0f} %; hypoperfusion: Tmax > {HYPOPERFUSION_TMAX_S:.0f} s"
        ),
        "limitations": "validated on digital phantoms only; research use, not clinically validated",
    }


def _write_maps(
    result: CtpResult,
    slices: list[Dataset],
    folder: Path,
    identity: CtpIdentity,
    numbers: CtpSeriesNumbers,
    timings: StageTimings,
) -> dict[str, Path]:
    written = {}
    with timings.measure("write_ctp_parametric_maps"):
        for name, spec in MAPS.items():
            low, high = spec.window
            description = MapDescription(
                quantity=spec.quantity,
                lut_label=spec.label,
                lut_explanation=spec.explanation,
                series_number=getattr(numbers, name),
                series_description=f"CTP {spec.label} map ({identity.algorithm_name}, {RESEARCH_LABEL})",
                content_label=spec.label,
                unit=spec.unit,
                anatomic_region=codes.SCT.Brain,
                frame_laterality=BRAIN_LATERALITY,
                window_center=(low + high) / 2.0,
                window_width=high - low,
            )
            written[name] = write_parametric_map(
                stored_map(result, name),
                slices,
                folder / spec.file_name,
                description=description,
                algorithm_name=identity.algorithm_name,
                algorithm_version=identity.algorithm_version,
            )
    return written


def _write_seg(
    result: CtpResult,
    slices: list[Dataset],
    folder: Path,
    identity: CtpIdentity,
    series_number: int,
    timings: StageTimings,
) -> Path | None:
    structures = lesion_structures(result)
    if not structures:
        logger.warning("no ischaemic core and no hypoperfusion: no CTP lesion SEG is written")
        return None
    with timings.measure("write_ctp_lesion_seg"):
        return write_structure_seg(
            structures,
            slices,
            folder / SEG_NAME,
            algorithm=SegAlgorithm(identity.algorithm_name, identity.family, identity.algorithm_version),
            series=SegSeries(
                series_number,
                f"CTP stroke lesions (automatic, {RESEARCH_LABEL})",
                "STROKE LESIONS",
                "Automatic CTP core and hypoperfusion - research use only",
            ),
        )


def _write_summary(
    result: CtpResult,
    slices: list[Dataset],
    baseline_hu: np.ndarray,
    folder: Path,
    identity: CtpIdentity,
    series_number: int,
) -> dict[str, Path]:
    grid = grid_of_slices(slices)
    summary = CtpSummary(
        result.lesions.volumes_ml(grid.voxel_volume_ml), result.method, result.lesions.reference_cbf_ml_100g_min
    )
    masks = (result.tissue_mask, result.lesions.core, result.lesions.hypoperfusion)
    images = [
        render_summary_image(
            baseline_hu,
            result.cbf_ml_100g_min,
            result.tmax_s,
            masks,
            summary,
            index=k,
            position_mm=float(slices[k].ImagePositionPatient[2]),
            pixel_aspect=grid.spacing_mm[1] / grid.spacing_mm[2],
        )
        for k in summary_slices(result.tissue_mask)
    ]
    description = f"CTP summary ({identity.algorithm_name}, {RESEARCH_LABEL})"
    paths = write_key_images(
        images,
        slices,
        folder,
        series=KeyImageSeries(series_number, description, SUMMARY_PREFIX),
        algorithm_name=identity.algorithm_name,
        algorithm_version=identity.algorithm_version,
        image_comments=IMAGE_COMMENTS,
    )
    return {f"summary_{n:02d}": path for n, path in enumerate(paths, 1)}


def publish_atomically(out_dir: Path, write: Callable[[Path], dict[str, Path]]) -> dict[str, Path]:
    """Run ``write`` on a new hidden folder beside ``out_dir``, then publish its files in ``out_dir``.

    A missing ``out_dir`` is the renamed folder (one atomic step); into an existing one the files
    are renamed one by one after all were written.  On any error the hidden folder is removed.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        written = write(work)
        umask = os.umask(0)
        os.umask(umask)
        work.chmod(0o777 & ~umask)  # mkdtemp makes it private; a published folder follows the umask
        if not out_dir.exists():
            os.rename(work, out_dir)
        else:
            for path in written.values():
                os.rename(path, out_dir / path.name)
            work.rmdir()
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return {name: out_dir / path.name for name, path in written.items()}
