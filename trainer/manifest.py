"""Real paired data: a CSV manifest of CT and SPECT series goes through the same per-lung pipeline.

``python -m trainer.manifest --manifest pairs.csv --out data/site_training``

The manifest has a header and one row per patient::

    case_id,ct,perfusion,ventilation
    P001,/data/P001/ct_dicom_folder,/data/P001/nm_perfusion.dcm,/data/P001/nm_ventilation.dcm
    P002,/data/P002/ct.nii.gz,/data/P002/perfusion.nii.gz,

``ct`` is a folder of CT DICOM slices or a NIfTI file; ``perfusion`` / ``ventilation`` are NM DICOM
(multi-frame reconstructed SPECT) or NIfTI files registered to the CT (same Frame of Reference for
DICOM: checked); either function may be empty.  NIfTI geometry is read with SimpleITK (LPS).
"""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk  # noqa: N813 (the conventional alias)
from tqdm import tqdm

from core.dicom.ct_reader import read_ct_volume
from core.dicom.nm_writer import read_nm_volume
from core.errors import InputDataError
from core.geometry import Grid
from core.orientation import canonical
from trainer.data import FUNCTIONS, LungSample, samples_from_volumes, save_sample

logger = logging.getLogger(__name__)


def read_volume(path: Path) -> tuple[np.ndarray, Grid]:
    """A CT DICOM folder, an NM DICOM file or a NIfTI file as a canonical ``(z, y, x)`` float32 volume."""
    if path.is_dir():
        return read_ct_volume(_ct_files(path))
    if path.name.endswith((".nii", ".nii.gz")):
        image = sitk.ReadImage(str(path))
        affine = np.eye(4)
        direction = np.asarray(image.GetDirection()).reshape(3, 3)
        spacing = np.asarray(image.GetSpacing())
        # SimpleITK's array is (z, y, x) for index (i, j, k) = (x, y, z): columns of the affine in array order
        steps = direction * spacing
        affine[:3, :3] = steps[:, ::-1]
        affine[:3, 3] = image.GetOrigin()
        volume, grid, _ = canonical(sitk.GetArrayFromImage(image).astype(np.float32), affine)
        return np.ascontiguousarray(volume), grid
    return read_nm_volume(path)


def _ct_files(folder: Path) -> list[Path]:
    """The CT slices of a DICOM folder (other modalities in the folder are left out)."""
    files = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if header.get("Modality") == "CT":
            files.append(path)
    if not files:
        raise InputDataError(f"{folder} holds no CT DICOM slices; the manifest's ct column needs a CT series folder")
    return files


def _frame_of_reference(path: Path) -> str | None:
    if path.name.endswith((".nii", ".nii.gz")):
        return None
    first = _ct_files(path)[0] if path.is_dir() else path
    return str(pydicom.dcmread(first, stop_before_pixels=True).get("FrameOfReferenceUID", "")) or None


def manifest_case_samples(row: dict[str, str], base: Path) -> list[LungSample]:
    """Per-lung samples of one manifest row; paths relative to the manifest's folder."""
    ct_path = base / row["ct"]
    hu, grid = read_volume(ct_path)
    reference = _frame_of_reference(ct_path)
    spects = {}
    for name in FUNCTIONS:
        if not row.get(name):
            continue
        path = base / row[name]
        other = _frame_of_reference(path)
        if reference and other and other != reference:
            raise InputDataError(
                f"case {row['case_id']}: {name} SPECT {path.name} is in another Frame of Reference than the CT; "
                "register it to the CT first (the pipeline does not register images)"
            )
        spects[name] = read_volume(path)
    return samples_from_volumes(row["case_id"], hu, grid, spects)


def build_from_manifest(manifest: Path, out: Path) -> list[Path]:
    """Write the samples of every manifest row into ``out`` (skipping cases already there)."""
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = {"case_id", "ct"} - set(rows[0] if rows else {})
    if missing:
        raise ValueError(
            f"{manifest}: the header must name case_id, ct and perfusion and/or ventilation; missing {missing}"
        )
    out.mkdir(parents=True, exist_ok=True)
    for row in tqdm(rows, unit="case", desc="manifest"):
        if list(out.glob(f"{row['case_id']}_*.npz")):
            continue
        for sample in manifest_case_samples(row, manifest.parent):
            save_sample(out, sample)
    return sorted(out.glob("*.npz"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.manifest", description=__doc__)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    paths = build_from_manifest(args.manifest, args.out)
    print(f"{len(paths)} samples in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
