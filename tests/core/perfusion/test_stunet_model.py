"""The app-side stU-Net wrapper: contract checks, strips in batches, assembly, shapes, threads.

Models are scripted into temporary folders with the exporter's own metadata (so the exporter and the checker
agree): a tiny untrained StUNet, and a stand-in whose "CBV" is the time average of its input strip, for which
the assembled map is known exactly (``ASSEMBLY_ATOL``: float32 means of up to 16 frames).  Batched and unbatched
predictions of the StUNet agree within ``BATCH_ATOL`` (float32; the same kernels on different batch sizes).
Pasted back onto the acquisition grid, the stand-in's map correlates with the time average of the signal inside
the brain (away from its edge) with ``r > INTERIOR_R`` (only the resampling to 32 x 32 and back differs).
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from core.errors import ModelContractError
from core.perfusion.stunet_model import StUNetModel, check_stunet_contract
from trainer.dsc.config import DscConfig, DscModelConfig, DscPreprocessingConfig
from trainer.dsc.export import stunet_metadata
from trainer.networks.stunet import StUNet

ASSEMBLY_ATOL = 1e-5
BATCH_ATOL = 1e-5
INTERIOR_R = 0.99
CONFIG = DscConfig(
    preprocessing=DscPreprocessingConfig(size=32, frames=16, frame_step_s=2.0, strip_height=16, test_stride=4),
    model=DscModelConfig(levels=2, base_channels=2, convs_per_level=1),
)
T, NZ, NY, NX = 24, 3, 40, 44


class TimeMean(nn.Module):
    """Stand-in network: the average over time of every strip voxel, ``(B, 1, T, H, W) -> (B, 1, H, W)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=2)


def write_folder(folder: Path, module: nn.Module, metadata: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(module).save(str(folder / "model.ts"))
    state = {"history": [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0}]}
    metadata = metadata or stunet_metadata(CONFIG, state, name="stunet_test", version="0.0.1")
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


@pytest.fixture(scope="module")
def stunet_folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    network = StUNet(frames=16, levels=2, base_channels=2, convs_per_level=1).eval()
    return write_folder(tmp_path_factory.mktemp("stunet"), network)


class ColumnIndex(nn.Module):
    """Stand-in network that is not mirror-symmetric: every output voxel holds its column index in the strip."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = x.shape[-1]
        columns = torch.arange(width, dtype=x.dtype).expand(x.shape[0], 1, x.shape[-2], width)
        return columns


@pytest.fixture(scope="module")
def mean_folder(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("time_mean"), TimeMean())


def test_mirror_averages_the_slice_and_its_mirror_image(tmp_path):
    folder = write_folder(tmp_path / "columns", ColumnIndex())
    dsc = np.zeros((16, 1, 32, 32), dtype=np.float32)
    brain = np.zeros((1, 32, 32), bool)
    brain[0, 4:28, 2:30] = True
    single = StUNetModel(folder, mirror=False).predict_prepared(dsc, brain, test_stride=4)
    both = StUNetModel(folder).predict_prepared(dsc, brain, test_stride=4)
    # strips span the whole width, so one pass gives the column index, the mirror pass 31 minus it
    np.testing.assert_allclose(single[0, 10], np.where(brain[0, 10], np.arange(32), 0.0))
    np.testing.assert_allclose(both, np.where(brain, 15.5, 0.0))


def acquisition(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A DSC-like signal (a baseline rising along x, a bolus dip), its times (1.5 s apart) and an elliptic brain."""
    rng = np.random.default_rng(seed)
    _, y, x = np.mgrid[:NZ, :NY, :NX]
    brain = ((y - 20) / 14.0) ** 2 + ((x - 23) / 12.0) ** 2 <= 1.0
    times = np.arange(T) * 1.5
    dip = np.exp(-0.5 * ((times - 15.0) / 3.0) ** 2)
    baseline = 300.0 + 5.0 * x
    signal = baseline * (1.0 - 0.3 * dip[:, None, None, None]) + rng.normal(0, 2, (T, NZ, NY, NX))
    return (signal * brain).astype(np.float32), times, brain


def test_predict_shapes_zero_outside_and_threads_restored(stunet_folder):
    threads = torch.get_num_threads()
    model = StUNetModel(stunet_folder, threads=1)
    signal, times, brain = acquisition()
    cbv = model.predict(signal, times, brain)
    assert torch.get_num_threads() == threads
    assert model.identity == "stunet_test 0.0.1 (stunet)" and model.test_stride == 4
    assert cbv.shape == (NZ, NY, NX) and cbv.dtype == np.float32 and np.isfinite(cbv).all()
    assert not cbv[~brain].any() and cbv[brain].std() > 0


def test_batching_and_stride_one_agree(stunet_folder):
    signal, times, brain = acquisition(1)
    whole = StUNetModel(stunet_folder).predict(signal, times, brain, test_stride=1)
    pieces = StUNetModel(stunet_folder, batch_strips=3).predict(signal, times, brain, test_stride=1)
    np.testing.assert_allclose(pieces, whole, atol=BATCH_ATOL, rtol=0)


@pytest.mark.parametrize("stride", [1, 3, 16])
def test_strips_are_assembled_exactly(mean_folder, stride):
    model = StUNetModel(mean_folder)
    rng = np.random.default_rng(stride)
    dsc = rng.normal(size=(16, 2, 32, 32)).astype(np.float32)
    brain = np.zeros((2, 32, 32), bool)
    brain[0, 5:30, 3:20] = True  # the second slice holds no brain
    out = model.predict_prepared(dsc, brain, test_stride=stride)
    np.testing.assert_allclose(out, np.where(brain, dsc.mean(axis=0), 0.0), atol=ASSEMBLY_ATOL)


def test_predict_pastes_back_onto_the_acquisition_grid(mean_folder):
    signal, times, brain = acquisition(2)
    cbv = StUNetModel(mean_folder).predict(signal, times, brain)
    assert cbv.shape == brain.shape and not cbv[~brain].any()
    interior = ndimage.binary_erosion(brain, np.ones((1, 3, 3)), iterations=2)  # away from the dark background
    assert np.corrcoef(cbv[interior], signal.mean(axis=0)[interior])[0, 1] > INTERIOR_R


def metadata() -> dict:
    return stunet_metadata(CONFIG, {"history": []}, name="m", version="1")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m.update(metadata_version=99), "metadata_version"),
        (lambda m: m["input"]["preprocessing"].update(crop="other.crop"), "preprocessing"),
        (lambda m: m["input"].update(clip=[-3.0, 3.0]), "clip"),
        (lambda m: m["input"].update(baseline_frames=3), "baseline frames"),
        (lambda m: m["input"].update(frames=0), "input.frames"),
        (lambda m: m["input"].update(strip_shape=[16, 64]), "strips"),
        (lambda m: m["input"].update(strip_shape=[6, 32]), "strips"),
        (lambda m: m["output"].update(name="cbf"), "returns"),
        (lambda m: m.pop("input"), "input or output"),
        (lambda m: m.pop("network"), "network kind"),
        (lambda m: m["network"].update(kind=""), "network kind"),
    ],
)
def test_contract_mismatch_raises(change, match):
    check_stunet_contract(metadata())
    changed = metadata()
    change(changed)
    with pytest.raises(ModelContractError, match=match):
        check_stunet_contract(changed)


def test_missing_or_mismatched_folder_raises(tmp_path, mean_folder):
    with pytest.raises(ModelContractError, match="missing"):
        StUNetModel(tmp_path / "nothing")
    changed = metadata()
    changed["metadata_version"] = 0
    with pytest.raises(ModelContractError, match="re-export"):
        StUNetModel(write_folder(tmp_path / "old", TimeMean(), changed))
