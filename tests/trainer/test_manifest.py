"""Real-data path: a CSV manifest of DICOM or NIfTI pairs goes through the same per-lung pipeline."""

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813

from core.errors import InputDataError
from tests.testdata import REPO_ROOT
from trainer.data import load_sample
from trainer.manifest import build_from_manifest, read_volume

SAMPLE = REPO_ROOT / "dicom_samples" / "thorax_small" / "dicom"


def _write_nifti(volume, grid, path):
    image = sitk.GetImageFromArray(volume)
    image.SetOrigin(grid.origin_lps_mm)
    image.SetSpacing(tuple(reversed(grid.spacing_mm)))
    sitk.WriteImage(image, str(path))


def test_dicom_and_nifti_manifests_give_the_same_samples(tmp_path):
    ct, ct_grid = read_volume(SAMPLE)
    perfusion, nm_grid = read_volume(SAMPLE / "NM_PERFUSION.dcm")
    _write_nifti(ct, ct_grid, tmp_path / "ct.nii.gz")
    _write_nifti(perfusion, nm_grid, tmp_path / "perfusion.nii.gz")
    manifest = tmp_path / "pairs.csv"
    manifest.write_text(
        "case_id,ct,perfusion,ventilation\n"
        f"dicom,{SAMPLE},{SAMPLE / 'NM_PERFUSION.dcm'},{SAMPLE / 'NM_VENTILATION.dcm'}\n"
        "nifti,ct.nii.gz,perfusion.nii.gz,\n"
    )
    paths = build_from_manifest(manifest, tmp_path / "out")
    assert [p.name for p in paths] == ["dicom_left.npz", "dicom_right.npz", "nifti_left.npz", "nifti_right.npz"]
    dicom, nifti = load_sample(paths[1]), load_sample(paths[3])
    assert set(dicom.targets) == {"perfusion", "ventilation"} and set(nifti.targets) == {"perfusion"}
    np.testing.assert_allclose(nifti.ct, dicom.ct, atol=2e-3)
    np.testing.assert_allclose(nifti.targets["perfusion"], dicom.targets["perfusion"], atol=2e-3)


def test_spect_in_another_frame_of_reference_is_refused(tmp_path):
    moved = pydicom.dcmread(SAMPLE / "NM_PERFUSION.dcm")
    moved.FrameOfReferenceUID = pydicom.uid.generate_uid()
    moved.save_as(tmp_path / "nm.dcm")
    manifest = tmp_path / "pairs.csv"
    manifest.write_text(f"case_id,ct,perfusion\nP1,{SAMPLE},nm.dcm\n")
    with pytest.raises(InputDataError, match="Frame of Reference"):
        build_from_manifest(manifest, tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.npz"))
