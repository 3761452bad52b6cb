"""Write a CT-perfusion phantom case as a DICOM study plus its ground truth.

Output layout::

    OUT/dicom/CTP_<frame>_<slice>.dcm   CT Image Storage, one series, one file per slice per frame
    OUT/ground_truth/truth.npz          true maps and masks on the CTP grid (see ``write_ctp_truth``)
    OUT/ground_truth/truth.json         acquisition, AIF, anatomy, physiology, true volumes, timings

The folder is written beside its final place and renamed at the end (:func:`core.simulation.study.write_atomically`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from core.dicom.ctp_writer import write_ctp_series
from core.dicom.study import PatientStudy, synthetic_patient_study
from core.perfusion.lesions import CORE_RELATIVE_CBF, HYPOPERFUSION_TMAX_S, NORMAL_TMAX_S
from core.simulation.ctp_params import CtpSpec
from core.simulation.ctp_phantom import PARAMETER_NAMES, CtpPhantom, make_ctp_phantom
from core.simulation.study import grid_record, write_atomically

CTP_KIND = "ctp"
CTP_KVP = 80.0
STUDY_DESCRIPTION = "Synthetic phantom stroke CT perfusion (research use only)"


def generate_ctp_study(out_dir: Path, spec: CtpSpec, seed: int, progress: Callable[[str], None] | None = None) -> dict:
    """Simulate one CTP case and write it to ``out_dir`` (which must not exist); returns the truth record."""
    report = progress or (lambda _step: None)
    return write_atomically(out_dir, lambda tmp: _generate(tmp, spec, seed, report))


def head_study(rng: np.random.Generator) -> PatientStudy:
    """A synthetic patient and study (:func:`core.dicom.study.synthetic_patient_study`) for a head CTP."""
    study = synthetic_patient_study(rng)
    return dataclasses.replace(
        study, patient_name=study.patient_name.replace("THORAX", "HEAD"), study_description=STUDY_DESCRIPTION
    )


def _generate(tmp: Path, spec: CtpSpec, seed: int, progress: Callable[[str], None]) -> dict:
    t0 = time.perf_counter()
    phantom = make_ctp_phantom(spec, seed)
    timings = {"phantom_s": time.perf_counter() - t0}
    progress("phantom")
    t = time.perf_counter()
    write_ctp_series(
        phantom.hu,
        phantom.times_s,
        phantom.grid,
        head_study(np.random.default_rng([seed, 7])),
        tmp / "dicom",
        frame_of_reference_uid=generate_uid(),
        kvp=CTP_KVP,
    )
    timings["write_dicom_s"] = time.perf_counter() - t
    progress("dicom")
    record = write_ctp_truth(tmp / "ground_truth", phantom)
    record["timings"] = {**timings, "total_s": time.perf_counter() - t0}
    (tmp / "ground_truth" / "truth.json").write_text(json.dumps(record, indent=2))
    return record


def write_ctp_truth(folder: Path, phantom: CtpPhantom) -> dict:
    """Save the true maps and masks (npz) and return the JSON-able record.

    ``truth.npz`` holds, on the CTP grid ``(nz, ny, nx)``: the true maps of
    :data:`core.simulation.ctp_phantom.PARAMETER_NAMES` (float32, zero outside the parenchyma),
    ``labels`` (:class:`core.labels.BrainTissue`), ``tissue_mask``, ``brain_mask``, ``core_mask``,
    ``hypoperfusion_mask`` (true lesions), ``ischaemia`` (designed: 0 normal, 1 penumbra, 2 core); and
    ``times_s``, ``arterial_hu``, ``venous_hu`` ``(T,)`` (noise-free enhancement of arterial and venous blood).
    """
    folder.mkdir(parents=True)
    anatomy, lesions = phantom.anatomy, phantom.lesions
    arrays = {
        **{name: phantom.truth[name] for name in PARAMETER_NAMES},
        "labels": anatomy.labels,
        "tissue_mask": anatomy.tissue_mask,
        "brain_mask": anatomy.brain_mask,
        "core_mask": lesions.core,
        "hypoperfusion_mask": lesions.hypoperfusion,
        "ischaemia": anatomy.ischaemia,
        "times_s": phantom.times_s,
        "arterial_hu": phantom.arterial_hu,
        "venous_hu": phantom.venous_hu,
    }
    np.savez_compressed(folder / "truth.npz", **arrays)  # type: ignore[arg-type]
    spec = phantom.spec
    return {
        "kind": CTP_KIND,
        "seed": phantom.seed,
        "synthetic": "digital phantom, research use only",
        "ct_grid": grid_record(phantom.grid),
        "acquisition": {
            "dt_s": spec.dt_s,
            "n_frames": spec.n_frames,
            "injection_delay_s": spec.injection_delay_s,
            "kvp": CTP_KVP,
            "noise_hu": spec.noise_hu,
            "blur_sigma_mm": spec.blur_sigma_mm,
        },
        "aif": {
            **dataclasses.asdict(phantom.aif),
            "hu_per_unit": phantom.hu_per_unit,
            "arterial_peak_hu": float(phantom.arterial_hu.max()),
            "venous_peak_hu": float(phantom.venous_hu.max()),
            "venous_to_arterial_area_in_window": float(phantom.venous_hu.sum() / phantom.arterial_hu.sum()),
        },
        "lesion_definitions": {
            "core_relative_cbf": CORE_RELATIVE_CBF,
            "hypoperfusion_tmax_s": HYPOPERFUSION_TMAX_S,
            "normal_tmax_s": NORMAL_TMAX_S,
            "reference_cbf_ml_100g_min": lesions.reference_cbf_ml_100g_min,
        },
        "volumes_ml": phantom.volumes_ml(),
        "affected_hemisphere": anatomy.params.affected_hemisphere,
        "anatomy": dataclasses.asdict(anatomy.params),
        "physiology": dataclasses.asdict(phantom.physiology),
        "n_distinct_tissue_curves": phantom.n_curves,
    }
