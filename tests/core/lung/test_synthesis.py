"""The shipped model through the app's synthesis path: contract checks and maps on a phantom CT."""

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.errors import ModelContractError
from core.geometry import Grid
from core.labels import LungLabel
from core.lung.segmentation import segment_lungs
from core.lung.synthesis import FunctionModel, check_contract
from core.metrics import spearman_nonzero
from core.orientation import grid_affine_lps
from core.resample import resample_to_grid
from core.simulation.thorax import make_thorax_phantom

MODEL_DIR = Path(__file__).resolve().parents[3] / "models" / "ddran_lung"
GRID = Grid((80, 128, 128), (4.0, 3.2, 3.2), (-203.2, -203.2, -160.0))


@pytest.fixture(scope="module")
def metadata():
    return json.loads((MODEL_DIR / "metadata.json").read_text())


@pytest.fixture(scope="module")
def model():
    return FunctionModel(MODEL_DIR)


def test_the_shipped_contract_matches_this_code(metadata):
    check_contract(metadata, ("perfusion", "ventilation"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(metadata_version=99), "metadata_version is 99"),
        (lambda m: m["input"].update(shape=[1, 1, 96, 96, 96]), "input shape"),
        (lambda m: m["input"]["preprocessing"]["eq1"].update(median_size=3), r"other preprocessing \(eq1\)"),
        (lambda m: m.update(outputs=[{"name": "perfusion"}]), r"does not output \['ventilation'\]"),
    ],
)
def test_a_mismatched_contract_is_refused_with_the_reason(metadata, edit, message):
    changed = copy.deepcopy(metadata)
    edit(changed)
    with pytest.raises(ModelContractError, match=message):
        check_contract(changed, ("perfusion", "ventilation"))


def test_missing_or_broken_model_files_are_reported(tmp_path):
    with pytest.raises(ModelContractError, match=r"model\.ts is missing"):
        FunctionModel(tmp_path)
    shutil.copy(MODEL_DIR / "metadata.json", tmp_path / "metadata.json")
    (tmp_path / "model.ts").write_bytes(b"not a model")
    with pytest.raises(ModelContractError, match="not a TorchScript model"):
        FunctionModel(tmp_path)


def test_maps_fill_the_lungs_and_follow_the_true_function(model):
    phantom = make_thorax_phantom(GRID, 41)
    hu = phantom.hu.astype(np.float32)
    labels = segment_lungs(hu, grid_affine_lps(GRID))
    maps = model.synthesise(hu, labels, GRID)
    lungs = labels > 0
    for name in ("perfusion", "ventilation"):
        values = maps[name]
        assert values.shape == GRID.shape and values.dtype == np.float32
        assert not values[~lungs].any() and values.min() >= 0.0 and values.max() <= 1.0
        assert (values[lungs] > 0).mean() > 0.99  # every lung voxel gets a value
    truth = resample_to_grid(phantom.perfusion, phantom.function_grid, GRID)
    for label in (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG):
        lung = labels == label
        r = spearman_nonzero(np.where(lung, maps["perfusion"], 0), np.where(lung, truth, 0), lung)
        assert r > 0.3, (label, r)
