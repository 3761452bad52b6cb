"""Inference time of the shipped SPECT denoising model per volume (CPU; and CUDA when present).

Denoises the bundled bone sample's fast SPECT (128^3 at 4.42 mm) with ``models/u2net_spect_bone``
through the app's own path (:class:`core.nm.denoising_model.DenoisingModel`, CT resampled onto the
SPECT grid included), ``--runs`` times per device; prints each wall time and the median, the
count ratio and the PSNR of the fast and the denoised image against the standard acquisition.

    python bench/bench_spect_denoising.py [--runs 5] [--threads 2]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from app.config import DEFAULT_DENOISING_MODEL_DIR
from core.dicom.ct_reader import read_ct_volume
from core.dicom.nm_writer import read_nm_volume
from core.nm.denoising import count_ratio, ct_on_spect_grid, denoise_volume
from core.nm.denoising_model import DenoisingModel

STUDY = Path(__file__).resolve().parents[1] / "dicom_samples" / "bone_small" / "dicom"


def _psnr(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    return float(10 * np.log10(reference.max() ** 2 / np.mean((image[mask] - reference[mask]) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fast, grid = read_nm_volume(STUDY / "NM_BONE_FAST.dcm")
    standard, _ = read_nm_volume(STUDY / "NM_BONE_STANDARD.dcm")
    ct_hu, ct_grid = read_ct_volume(sorted(STUDY.glob("CT_*.dcm")))
    model = DenoisingModel(DEFAULT_DENOISING_MODEL_DIR)
    print(f"model {model.identity}; SPECT {grid.shape} at {grid.spacing_mm[0]:g} mm; torch threads {args.threads}")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        module = model.module.to(device)
        times = []
        denoised = fast
        for run in range(args.runs):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            ct = ct_on_spect_grid(ct_hu, ct_grid, grid) if model.uses_ct else None
            denoised = denoise_volume(module, fast, ct, device=device)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            print(f"  {device} run {run}: {times[-1]:.2f} s")
        print(f"{device}: median {statistics.median(times):.2f} s per volume over {len(times)} runs")
        body = standard > 0.01 * standard.max()
        print(f"  counts out/in {count_ratio(denoised, fast):.4f}")
        fast_db, denoised_db = _psnr(fast, standard, body), _psnr(denoised, standard, body)
        print(f"  PSNR vs standard: fast {fast_db:.2f} dB, denoised {denoised_db:.2f} dB")


if __name__ == "__main__":
    main()
