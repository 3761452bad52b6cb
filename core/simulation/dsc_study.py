"""Write a DSC-MRI phantom case (a brain tumour) as a DICOM study plus its ground truth.

Output layout::

    OUT/dicom/DSC_<frame>_<slice>.dcm   MR Image Storage, one series, one file per slice per time point
    OUT/ground_truth/truth.npz          true maps and masks on the DSC grid (see ``write_dsc_truth``)
    OUT/ground_truth/truth.json         acquisition, contrast, AIF, tumour, physiology, true volumes, timings

The acquisition is the phantom's (:class:`core.simulation.dsc_params.DscSpec`): RepetitionTime is the
time between volumes, EchoTime the spec's; the gadolinium dose (relative to the standard 0.1 mmol/kg)
sets ContrastBolusVolume for the patient's weight, and the injection starts ``injection_delay_s``
after the first time point.  The folder is written beside its final place and renamed at the end
(:func:`core.simulation.study.write_atomically`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from core.dicom.dsc_writer import AGENT_CONCENTRATION_MMOL_PER_ML, write_dsc_series
from core.dicom.study import PatientStudy, synthetic_patient_study
from core.simulation.dsc_params import DscSpec
from core.simulation.dsc_phantom import (
    TRUTH_NAMES,
    TUMOUR_ENHANCING,
    TUMOUR_NECROSIS,
    TUMOUR_OEDEMA,
    DscPhantom,
    make_dsc_phantom,
)
from core.simulation.study import grid_record, write_atomically

DSC_KIND = "dsc"
STUDY_DESCRIPTION = "Synthetic phantom brain tumour DSC perfusion (research use only)"
MR_MODEL_NAME = "Virtual MR 3T"
"""ManufacturerModelName of the synthetic MR scanner (the study's default names a SPECT/CT)."""
STANDARD_DOSE_MMOL_PER_KG = 0.1
"""The standard single dose of a gadolinium-based contrast agent; the phantom's dose 1.0."""
FLIP_ANGLE_DEG = 60.0
MAGNETIC_FIELD_STRENGTH_T = 3.0
_MS_PER_S = 1000.0
_HEAD_FIELDS = (
    "brain_half_width_mm",
    "brain_half_length_mm",
    "brain_half_height_mm",
    "brain_centre_z_mm",
    "skull_mm",
    "scalp_mm",
)
"""The head's shape in :class:`core.simulation.ctp_params.HeadParams` (its stroke layout is not used here)."""


def generate_dsc_study(out_dir: Path, spec: DscSpec, seed: int, progress: Callable[[str], None] | None = None) -> dict:
    """Simulate one DSC case at the standard dose and write it to ``out_dir`` (which must not exist).

    Returns the truth record (also written to ``ground_truth/truth.json``).
    """
    report = progress or (lambda _step: None)
    return write_atomically(out_dir, lambda tmp: _generate(tmp, spec, seed, report))


def head_mr_study(rng: np.random.Generator) -> PatientStudy:
    """A synthetic patient and study (:func:`core.dicom.study.synthetic_patient_study`) for a head DSC-MRI."""
    study = synthetic_patient_study(rng)
    return dataclasses.replace(
        study,
        patient_name=study.patient_name.replace("THORAX", "HEAD"),
        study_description=STUDY_DESCRIPTION,
        manufacturer_model_name=MR_MODEL_NAME,
    )


def contrast_bolus_volume_ml(dose: float, patient_weight_kg: float) -> float:
    """Volume (ml) of the contrast agent for ``dose`` times :data:`STANDARD_DOSE_MMOL_PER_KG`."""
    return dose * STANDARD_DOSE_MMOL_PER_KG * patient_weight_kg / AGENT_CONCENTRATION_MMOL_PER_ML


def _generate(tmp: Path, spec: DscSpec, seed: int, progress: Callable[[str], None]) -> dict:
    t0 = time.perf_counter()
    phantom = make_dsc_phantom(spec, seed)
    timings = {"phantom_s": time.perf_counter() - t0}
    progress("phantom")
    t = time.perf_counter()
    study = head_mr_study(np.random.default_rng([seed, 7]))
    volume_ml = contrast_bolus_volume_ml(phantom.dose, study.patient_weight_kg)
    write_dsc_series(
        phantom.signal,
        phantom.times_s,
        phantom.grid,
        study,
        tmp / "dicom",
        frame_of_reference_uid=generate_uid(),
        echo_time_ms=spec.te_ms,
        repetition_time_ms=spec.dt_s * _MS_PER_S,
        flip_angle_deg=FLIP_ANGLE_DEG,
        magnetic_field_strength_t=MAGNETIC_FIELD_STRENGTH_T,
        contrast_bolus_volume_ml=volume_ml,
        contrast_bolus_start_s=spec.injection_delay_s,
    )
    timings["write_dicom_s"] = time.perf_counter() - t
    progress("dicom")
    record = write_dsc_truth(tmp / "ground_truth", phantom)
    record["contrast"]["volume_ml"] = volume_ml
    record["timings"] = {**timings, "total_s": time.perf_counter() - t0}
    (tmp / "ground_truth" / "truth.json").write_text(json.dumps(record, indent=2))
    return record


def _volumes_ml(phantom: DscPhantom) -> dict[str, float]:
    """True volumes (ml) of the tumour regions in the parenchyma."""
    voxel_ml = phantom.grid.voxel_volume_ml
    regions = {"enhancing_tumour_ml": TUMOUR_ENHANCING, "necrosis_ml": TUMOUR_NECROSIS, "oedema_ml": TUMOUR_OEDEMA}
    return {
        name: float(((phantom.tumour_regions == value) & phantom.tissue_mask).sum() * voxel_ml)
        for name, value in regions.items()
    }


def write_dsc_truth(folder: Path, phantom: DscPhantom) -> dict:
    """Save the true maps and masks (npz) and return the JSON-able record.

    ``truth.npz`` holds, on the DSC grid ``(nz, ny, nx)``: the true maps of
    :data:`core.simulation.dsc_phantom.TRUTH_NAMES` (float32, zero outside the parenchyma), ``s0``
    (noise-free baseline signal), ``labels`` (:class:`core.labels.BrainTissue`), ``tissue_mask``,
    ``brain_mask``, ``tumour_mask`` (enhancing tumour), ``tumour_regions``
    (:mod:`core.simulation.dsc_phantom` ``TUMOUR_*``); and ``times_s``, ``arterial_dr2_per_s``,
    ``venous_dr2_per_s`` ``(T,)`` (noise-free ``Delta R2*`` of arterial and venous blood at this dose).
    """
    folder.mkdir(parents=True)
    arrays = {
        **{name: phantom.truth[name] for name in TRUTH_NAMES},
        "s0": phantom.s0,
        "labels": phantom.anatomy.labels,
        "tissue_mask": phantom.tissue_mask,
        "brain_mask": phantom.brain_mask,
        "tumour_mask": phantom.tumour_mask,
        "tumour_regions": phantom.tumour_regions,
        "times_s": phantom.times_s,
        "arterial_dr2_per_s": phantom.arterial_dr2,
        "venous_dr2_per_s": phantom.venous_dr2,
    }
    np.savez_compressed(folder / "truth.npz", **arrays)  # type: ignore[arg-type]
    spec = phantom.spec
    return {
        "kind": DSC_KIND,
        "seed": phantom.seed,
        "synthetic": "digital phantom, research use only",
        "mr_grid": grid_record(phantom.grid),
        "acquisition": {
            "dt_s": spec.dt_s,
            "n_frames": spec.n_frames,
            "injection_delay_s": spec.injection_delay_s,
            "echo_time_ms": spec.te_ms,
            "repetition_time_ms": spec.dt_s * _MS_PER_S,
            "flip_angle_deg": FLIP_ANGLE_DEG,
            "magnetic_field_strength_t": MAGNETIC_FIELD_STRENGTH_T,
            "s0_reference": spec.s0_reference,
            "noise_sd": spec.noise_sd,
            "blur_sigma_mm": spec.blur_sigma_mm,
            "arterial_peak_dr2_per_s": spec.arterial_peak_dr2_per_s,
            "tissue_relaxivity_ratio": spec.tissue_relaxivity_ratio,
        },
        "contrast": {"dose": phantom.dose, "standard_dose_mmol_per_kg": STANDARD_DOSE_MMOL_PER_KG},
        "aif": {
            **dataclasses.asdict(phantom.aif),
            "dr2_per_unit": phantom.dr2_per_unit,
            "arterial_peak_dr2_per_s": float(phantom.arterial_dr2.max()),
            "venous_peak_dr2_per_s": float(phantom.venous_dr2.max()),
        },
        "volumes_ml": _volumes_ml(phantom),
        "tumour": dataclasses.asdict(phantom.tumour),
        "head": {name: getattr(phantom.anatomy.params, name) for name in _HEAD_FIELDS},
        "physiology": dataclasses.asdict(phantom.physiology),
        "n_distinct_tissue_curves": phantom.n_curves,
    }
