"""Per-lung samples, the split protocol and the configuration file."""

from pathlib import Path

import numpy as np
import pytest

from trainer.config import load_config
from trainer.data import load_sample, save_sample
from trainer.split import split_cases


@pytest.fixture(scope="module")
def samples(phantom_samples):
    return phantom_samples


def test_two_lungs_on_the_paper_crop_with_eq1_inputs_and_eq2_targets(samples):
    assert [s.side for s in samples] == ["right", "left"]
    for sample in samples:
        assert sample.ct.shape == sample.mask.shape == (128, 64, 64)
        assert sample.ct.min() >= 0.0 and sample.ct.max() <= 1.0
        for name in ("perfusion", "ventilation"):
            target = sample.targets[name]
            levels = np.unique(target[sample.mask])
            assert len(levels) <= 11 and np.allclose(levels * 10, np.round(levels * 10))
            assert not target[~sample.mask].any()
            # P75 normalisation: a quarter of the lung at or above 1 before clipping
            assert 0.2 <= (sample.spect[name][sample.mask] >= 1.0).mean() <= 0.3
            # the simulated SPECT follows the phantom's true function
            r = np.corrcoef(sample.spect[name][sample.mask], sample.truth[name][sample.mask])[0, 1]
            assert r > 0.5, (sample.name, name, r)


def test_sample_round_trip(tmp_path, samples):
    path = save_sample(tmp_path, samples[0])
    assert path.name == "phantom00003_right.npz" and not list(tmp_path.glob(".*"))
    back = load_sample(path)
    assert back.case_id == "phantom00003" and back.side == "right"
    np.testing.assert_allclose(back.ct, samples[0].ct, atol=1e-3)
    np.testing.assert_array_equal(back.mask, samples[0].mask)
    np.testing.assert_allclose(back.targets["perfusion"], samples[0].targets["perfusion"], atol=1e-3)
    np.testing.assert_allclose(back.hu, samples[0].hu, atol=0.5)  # float16 keeps HU to about 0.5
    assert back.crop_grid == samples[0].crop_grid
    for name in ("perfusion", "ventilation"):
        native, original = back.native[name], samples[0].native[name]
        assert native.grid == original.grid
        np.testing.assert_array_equal(native.values, original.values)
        np.testing.assert_array_equal(native.mask, original.mask)


def test_native_spect_voxels_cover_the_crop_at_spect_spacing(samples):
    for sample in samples:
        crop = sample.crop_grid
        assert crop is not None and crop.shape == (128, 64, 64)
        for name in ("perfusion", "ventilation"):
            native = sample.native[name]
            assert native.grid.spacing_mm[0] > crop.spacing_mm[0]  # coarser: the SPECT's own voxels
            assert native.values.shape == native.mask.shape == native.grid.shape
            # the covering voxels span the crop to within one SPECT voxel on every axis
            for axis in range(3):
                assert abs(native.grid.extent_mm[axis] - crop.extent_mm[axis]) <= native.grid.spacing_mm[axis]
            # lung volume agrees between the crop mask and the native mask (within 15 %)
            crop_ml = sample.mask.sum() * crop.voxel_volume_ml
            native_ml = native.mask.sum() * native.grid.voxel_volume_ml
            assert abs(native_ml / crop_ml - 1.0) < 0.15, (crop_ml, native_ml)
            # SPECT / P75 in the lung: a quarter of the lung at or above 1, zero outside
            assert 0.2 <= (native.values[native.mask] >= 1.0).mean() <= 0.3
            assert not native.values[~native.mask].any()


def test_split_keeps_patients_together_and_follows_the_protocol():
    cases = [f"case{i:03d}" for i in range(20)]
    split = split_cases(cases, test_fraction=0.4, folds=4, seed=1)
    assert len(split.test) == 8 and len(split.train) == 12
    assert not set(split.test) & set(split.train)
    assert sorted(c for fold in split.folds for c in fold) == sorted(split.train)
    train, validation = split.fold(2)
    assert set(train) | set(validation) == set(split.train) and not set(train) & set(validation)
    assert split == split_cases(list(reversed(cases)), test_fraction=0.4, folds=4, seed=1)
    assert split != split_cases(cases, test_fraction=0.4, folds=4, seed=2)


def test_config_file_is_read_into_dataclasses(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\nsamples = "s"\n[model]\nkind = "arnn"\nfunction = "ventilation"\nchannels = [4, 8]\n')
    config = load_config(path)
    assert config.data.samples == (tmp_path / "s").resolve()
    assert config.model.channels == (4, 8) and config.model.kind == "arnn"
    path.write_text('[model]\nkind = "unet"\n')
    with pytest.raises(ValueError, match=r"model\.kind"):
        load_config(path)
    path.write_text("[optim]\nlr = 0.1\n")
    with pytest.raises(ValueError, match="unknown keys"):
        load_config(Path(path))
