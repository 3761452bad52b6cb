"""Write a phantom case as a DICOM study plus its ground truth.

A *lung* study holds a chest CT and Tc-99m MAA perfusion and Tc-99m Technegas ventilation
SPECT (seed 000/001 protocol: 60 views x 30 s over 360 degrees, 128^3 at 4.42 mm).  A *bone*
study holds a CT and two Tc-99m MDP SPECT acquisitions of the same object, standard
(20 s/view) and 1/7-time (3 s/view), 60 views (seed 003 protocol).  A *nema* study acquires
the NEMA IEC body phantom (spheres 12:1, seed 003) both ways, for evaluation only.  A *lung_bone*
study holds the lung study's series plus the 1/7-time bone SPECT of the same phantom, on the chest
CT's coverage (the whole-pipeline benchmark's study).  All series share one
Frame of Reference.  Output layout::

    OUT/dicom/CT_0001.dcm ...           CT Image Storage, one file per slice
    OUT/dicom/NM_<NAME>.dcm             NM Image Storage, multi-frame reconstructed tomo
    OUT/ground_truth/truth.npz          masks and true function (see ``write_truth``)
    OUT/ground_truth/truth.json         grids, pathologies, counts, parameters

The folder is written beside its final place and renamed at the end: a failed run leaves
no partial study.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from core.dicom.ct_writer import write_ct_series
from core.dicom.nm_writer import write_nm_series
from core.dicom.study import synthetic_patient_study
from core.geometry import Grid
from core.labels import LungLabel
from core.simulation.calibration import ct_ventilation_spearman
from core.simulation.nema import nema_iec_body_phantom
from core.simulation.spect import ReconParams, SpectAcquisition, SpectResult, hu_to_mu_per_mm, simulate_spect
from core.simulation.thorax import ThoraxPhantom, make_thorax_phantom
from core.simulation.tracers import bone_activity, mu_source_hu, perfusion_activity, ventilation_activity

logger = logging.getLogger(__name__)

STUDY_KINDS = ("lung", "bone", "nema", "lung_bone")
BONE_COVERAGE_FACTOR = 2.0
"""Bone studies cover twice the chest CT length: thorax and abdomen down to the bladder."""


@dataclass(frozen=True)
class StudySpec:
    """CT geometry and SPECT protocol of the studies a preset generates."""

    ct_shape: tuple[int, int, int]
    ct_spacing_mm: tuple[float, float, float]
    recon: ReconParams = field(default_factory=ReconParams)
    ct_noise_hu: float = 15.0
    lung_time_per_view_s: float = 30.0
    bone_standard_time_per_view_s: float = 20.0
    bone_fast_time_per_view_s: float = 3.0
    large_embolism_probability: float = 0.0
    """Share of cases with an extra lobar-size embolus (:func:`core.simulation.thorax.make_thorax_phantom`)."""
    bone_soft_tissue_lesions: int = 0
    """Bone studies: up to this many extra-osseous hot lesions the CT does not show (``tracers.bone_activity``)."""


PRESETS = {
    # reduced matrix for the bundled sample (< 25 MB with both SPECTs) and for tests
    "sample": StudySpec((96, 192, 192), (3.0, 2.1, 2.1)),
    # the bundled bone SPECT/CT sample: a coarser CT (the denoiser sees it on the 4.42 mm SPECT grid)
    "bone_sample": StudySpec((64, 128, 128), (4.5, 3.2, 3.2)),
    # training cohorts: enough resolution for the 128x64x64 per-lung crops
    "training": StudySpec((128, 256, 256), (2.5, 1.4, 1.4)),
    # clinical chest CT: 512x512 at 0.8 mm (410 mm field of view), 1.25 mm slices
    "clinical": StudySpec((300, 512, 512), (1.25, 0.8, 0.8)),
}


def generate_study(
    out_dir: Path,
    spec: StudySpec,
    seed: int,
    kind: str = "lung",
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Simulate one case and write it to ``out_dir`` (which must not exist); returns the truth record."""
    if kind not in STUDY_KINDS:
        raise ValueError(f"study kind must be one of {STUDY_KINDS}, got {kind!r}")
    generate = _generate_nema if kind == "nema" else _generate
    return write_atomically(out_dir, lambda tmp: generate(tmp, spec, seed, kind, progress or (lambda _step: None)))


def write_atomically(out_dir: Path, write: Callable[[Path], dict]) -> dict:
    """Run ``write`` on an empty sibling folder and rename it to ``out_dir`` once it has returned.

    ``out_dir`` must not exist; if ``write`` fails the partial folder is removed, so a case folder
    is either complete or absent.  Returns what ``write`` returns.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; choose a new folder so that nothing is overwritten")
    tmp = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        record = write(tmp)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record


def _generate(tmp: Path, spec: StudySpec, seed: int, kind: str, progress: Callable[[str], None]) -> dict:
    """Thorax phantom case: CT plus lung (Q, V) or bone (standard, 1/7) SPECT."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    nz, ny, nx = spec.ct_shape
    if kind == "bone":  # chest-abdomen coverage, so that kidneys and bladder are in the field of view
        nz = round(nz * BONE_COVERAGE_FACTOR)
    grid = Grid.centred((nz, ny, nx), spec.ct_spacing_mm)
    phantom = make_thorax_phantom(
        grid, seed, ct_noise_hu=spec.ct_noise_hu, large_embolism_probability=spec.large_embolism_probability
    )
    timings["phantom_s"] = time.perf_counter() - t0
    progress("phantom")
    rng = np.random.default_rng([seed, 7])
    study = synthetic_patient_study(rng)
    frame_of_reference = generate_uid()
    dicom = tmp / "dicom"
    dicom.mkdir()
    t = time.perf_counter()
    write_ct_series(phantom.hu, grid, study, dicom, frame_of_reference_uid=frame_of_reference)
    timings["write_ct_s"] = time.perf_counter() - t
    progress("ct")
    mu = hu_to_mu_per_mm(mu_source_hu(phantom))
    spects: dict[str, tuple[SpectResult, SpectAcquisition, str]] = {}
    extra: dict[str, np.ndarray] = {}
    for name, activity, acquisition, tracer in spect_acquisitions(phantom, spec, kind, rng, extra):
        t = time.perf_counter()
        result = simulate_spect(activity, mu, phantom.function_grid, acquisition, spec.recon, rng)
        timings[f"spect_{name}_s"] = time.perf_counter() - t
        spects[name] = (result, acquisition, tracer)
        progress(name)
    for number, (name, (result, acquisition, tracer)) in enumerate(spects.items(), start=2):
        write_nm_series(
            result.recon,
            result.spect_grid,
            study,
            dicom / f"NM_{name.upper()}.dcm",
            frame_of_reference_uid=frame_of_reference,
            tracer=tracer,
            n_views=acquisition.n_views,
            time_per_view_s=acquisition.time_per_view_s,
            series_number=number,
            series_description=_description(name, acquisition),
        )
    record = write_truth(tmp / "ground_truth", phantom, spects, extra, kind)
    record["timings"] = {**timings, "total_s": time.perf_counter() - t0}
    (tmp / "ground_truth" / "truth.json").write_text(json.dumps(record, indent=2))
    return record


def _generate_nema(tmp: Path, spec: StudySpec, seed: int, kind: str, progress: Callable[[str], None]) -> dict:
    """NEMA IEC body phantom: CT plus standard and 1/7-time SPECT, spheres and background as truth."""
    t0 = time.perf_counter()
    grid = Grid.centred(spec.ct_shape, spec.ct_spacing_mm)
    nema = nema_iec_body_phantom(grid)
    rng = np.random.default_rng([seed, 11])
    study = synthetic_patient_study(rng)
    frame_of_reference = generate_uid()
    dicom = tmp / "dicom"
    dicom.mkdir()
    write_ct_series(
        nema.hu,
        grid,
        study,
        dicom,
        frame_of_reference_uid=frame_of_reference,
        series_description="NEMA IEC body phantom CT (synthetic)",
    )
    spheres = np.zeros(grid.shape, dtype=np.uint8)
    for number, diameter in enumerate(sorted(nema.sphere_masks), start=1):
        spheres[nema.sphere_masks[diameter]] = number
    record: dict = {
        "kind": kind,
        "seed": seed,
        "synthetic": "digital phantom, research use only",
        "ct_grid": grid_record(grid),
        "sphere_diameters_mm": sorted(nema.sphere_masks),
        "spect": {},
    }
    arrays = {"sphere_labels": spheres, "background_mask": nema.background_mask}
    for number, (name, seconds) in enumerate(
        (("bone_standard", spec.bone_standard_time_per_view_s), ("bone_fast", spec.bone_fast_time_per_view_s)), start=2
    ):
        acquisition = SpectAcquisition(time_per_view_s=seconds)
        result = simulate_spect(nema.activity_mbq(), nema.mu_per_mm, grid, acquisition, spec.recon, rng)
        write_nm_series(
            result.recon,
            result.spect_grid,
            study,
            dicom / f"NM_NEMA_{name.upper()}.dcm",
            frame_of_reference_uid=frame_of_reference,
            tracer="bone",
            n_views=acquisition.n_views,
            time_per_view_s=seconds,
            series_number=number,
            series_description=f"NEMA IEC phantom SPECT Tc-99m {seconds:g}s/view (synthetic)",
        )
        arrays[f"activity_{name}"] = result.activity_on_spect_grid
        record["spect"][name] = {"time_per_view_s": seconds, "total_counts": result.total_counts}
        record["spect_grid"] = grid_record(result.spect_grid)
        progress(name)
    (tmp / "ground_truth").mkdir()
    np.savez_compressed(tmp / "ground_truth" / "truth.npz", **arrays)  # type: ignore[arg-type]
    record["timings"] = {"total_s": time.perf_counter() - t0}
    (tmp / "ground_truth" / "truth.json").write_text(json.dumps(record, indent=2))
    return record


def spect_acquisitions(
    phantom: ThoraxPhantom, spec: StudySpec, kind: str, rng: np.random.Generator, extra: dict[str, np.ndarray]
) -> list[tuple[str, np.ndarray, SpectAcquisition, str]]:
    """(name, activity MBq per function voxel, protocol, tracer) of each SPECT of a study.

    A *lung_bone* study has the lung pair and the 1/7-time bone SPECT of the same phantom.  Bone
    studies also put their lesion masks into ``extra``.
    """
    scans = []
    if kind in ("lung", "lung_bone"):
        lung = SpectAcquisition(time_per_view_s=spec.lung_time_per_view_s)
        scans += [
            ("perfusion", perfusion_activity(phantom), lung, "perfusion"),
            ("ventilation", ventilation_activity(phantom), lung, "ventilation"),
        ]
    if kind in ("bone", "lung_bone"):
        bone = bone_activity(phantom, rng, max_soft_tissue_lesions=spec.bone_soft_tissue_lesions)
        extra["bone_lesion_mask"] = bone.lesion_mask
        extra["function_bone_lesion_mask"] = bone.function_lesion_mask.astype(np.uint8)
        if kind == "bone":
            standard = SpectAcquisition(time_per_view_s=spec.bone_standard_time_per_view_s)
            scans.append(("bone_standard", bone.activity_mbq, standard, "bone"))
        fast = SpectAcquisition(time_per_view_s=spec.bone_fast_time_per_view_s)
        scans.append(("bone_fast", bone.activity_mbq, fast, "bone"))
    return scans


def _description(name: str, acquisition: SpectAcquisition) -> str:
    label = {
        "perfusion": "Lung perfusion SPECT Tc-99m MAA",
        "ventilation": "Lung ventilation SPECT Tc-99m Technegas",
        "bone_standard": "Bone SPECT Tc-99m MDP standard",
        "bone_fast": "Bone SPECT Tc-99m MDP 1/7 time",
    }[name]
    return f"{label} {acquisition.time_per_view_s:g}s/view (synthetic)"


def grid_record(grid: Grid) -> dict:
    return {"shape": list(grid.shape), "spacing_mm": list(grid.spacing_mm), "origin_lps_mm": list(grid.origin_lps_mm)}


def write_truth(
    folder: Path,
    phantom: ThoraxPhantom,
    spects: dict[str, tuple[SpectResult, SpectAcquisition, str]],
    extra: dict[str, np.ndarray],
    kind: str,
) -> dict:
    """Save masks and true function (npz) and return the JSON-able record.

    ``truth.npz`` holds: ``lung_mask`` and ``labels`` (CT grid), ``perfusion``, ``ventilation``,
    ``function_lung_mask``, ``pathology_map`` (function grid), ``activity_<name>`` (SPECT grid,
    MBq per voxel) and, for bone studies, the lesion masks.
    """
    folder.mkdir(parents=True)
    arrays = {
        "lung_mask": phantom.lung_mask,
        "labels": phantom.labels,
        "perfusion": phantom.perfusion,
        "ventilation": phantom.ventilation,
        "function_lung_mask": phantom.function_lung_mask,
        "pathology_map": phantom.pathology_map,
        **{f"activity_{name}": result.activity_on_spect_grid for name, (result, _, _) in spects.items()},
        **extra,
    }
    np.savez_compressed(folder / "truth.npz", **arrays)  # type: ignore[arg-type]
    spect_grid = next(iter(spects.values()))[0].spect_grid if spects else None
    return {
        "kind": kind,
        "seed": phantom.seed,
        "synthetic": "digital phantom, research use only",
        "ct_grid": grid_record(phantom.grid),
        "function_grid": grid_record(phantom.function_grid),
        "spect_grid": grid_record(spect_grid) if spect_grid else None,
        "lung_volume_ml": {
            "right": phantom.lung_volume_ml(LungLabel.RIGHT_LUNG),
            "left": phantom.lung_volume_ml(LungLabel.LEFT_LUNG),
        },
        "pathologies": [asdict(p) for p in phantom.pathologies],
        "anatomy": asdict(phantom.params),
        "physiology": asdict(phantom.physiology),
        "ct_ventilation_spearman": ct_ventilation_spearman(phantom),
        "spect": {
            name: {
                "tracer": tracer,
                "n_views": acq.n_views,
                "time_per_view_s": acq.time_per_view_s,
                "total_counts": result.total_counts,
                "expected_total_counts": result.expected_total_counts,
            }
            for name, (result, acq, tracer) in spects.items()
        },
    }
