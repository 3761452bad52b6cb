"""The app-side CTP Transformer wrapper: contract checks, batching, shapes and units of its outputs.

The model is a tiny untrained CtpTransformer scripted into a temporary folder with the exporter's own
metadata (so the exporter and the checker agree).  Batched and unbatched predictions agree within ``BATCH_ATOL``
(float32; the same kernels on different batch sizes).
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import InputDataError, ModelContractError
from core.perfusion.transformer_model import CtpTransformerModel, check_ctp_contract
from trainer.ctp.config import CtpConfig, CtpModelConfig
from trainer.ctp.export import ctp_metadata
from trainer.ctp.losses import CtpLoss
from trainer.networks.ctp_transformer import CtpTransformer

BATCH_ATOL = 1e-4
TINY = CtpModelConfig(d_model=16, n_heads=4, n_encoder_layers=1, n_decoder_layers=1, dim_feedforward=32, dropout=0.0)
V, N, DT_S = 23, 60, 1.5


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ctp_transformer")
    torch.manual_seed(0)
    network = CtpTransformer(**TINY.__dict__).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(network).save(str(folder / "model.ts"))
    state = {"history": [{"epoch": 1, "val_loss": 1.0}], "loss": CtpLoss().state_dict(), "calibration": {}}
    metadata = ctp_metadata(CtpConfig(model=TINY), state, name="ctp_test", version="0.0.1")
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


def curves(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(N) * DT_S
    s = np.clip(t - 8.0, 0.0, None)
    aif = 8.0 * (s / 6.0) ** 3 * np.exp(-s / 2.0)
    tissue = 0.05 * (s / 9.0) ** 2 * np.exp(-s / 6.0) * rng.uniform(0.5, 1.5, (V, 1)) + 0.002 * rng.random((V, N))
    return tissue, aif


def test_predict_shapes_units_and_constraints(model_folder):
    threads = torch.get_num_threads()
    model = CtpTransformerModel(model_folder)
    tissue, aif = curves()
    result = model.predict(tissue, aif, DT_S)
    assert torch.get_num_threads() == threads
    assert model.identity == "ctp_test 0.0.1"
    assert result.residue.shape == (V, N) and result.local_aif.shape == (V, N)
    assert result.cbf_ml_100g_min.shape == (V,) and result.bad_s.shape == (V,)
    np.testing.assert_array_equal(result.cbf_ml_100g_min, result.residue.max(axis=1))
    assert (np.diff(result.residue, axis=1) <= 0).all() and (result.local_aif >= 0).all() and (result.bad_s >= 0).all()


def test_batching_and_shared_aif_do_not_change_results(model_folder):
    tissue, aif = curves(1)
    whole = CtpTransformerModel(model_folder).predict(tissue, aif, DT_S)
    pieces = CtpTransformerModel(model_folder, batch_voxels=5).predict(tissue, np.tile(aif, (V, 1)), DT_S)
    for a, b in zip(whole.__dict__.values(), pieces.__dict__.values(), strict=True):
        np.testing.assert_allclose(b, a, atol=BATCH_ATOL, rtol=0)


@pytest.mark.parametrize(
    ("tissue_shape", "aif_shape", "dt_s", "nan"),
    [
        ((V,), (N,), DT_S, False),
        ((V, N), (N + 1,), DT_S, False),
        ((V, N), (N,), 0.0, False),
        ((V, N), (N,), DT_S, True),
    ],
)
def test_bad_inputs_raise(model_folder, tissue_shape, aif_shape, dt_s, nan):
    tissue = np.ones(tissue_shape) * (np.nan if nan else 1.0)
    with pytest.raises(InputDataError):
        CtpTransformerModel(model_folder).predict(tissue, np.ones(aif_shape), dt_s)


def test_curves_outside_the_training_range_warn(model_folder, caplog):
    tissue, aif = curves()
    CtpTransformerModel(model_folder).predict(tissue, aif, 3.0)
    assert "outside the training range" in caplog.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metadata_version": 99}, "metadata_version"),
        ({"kappa": 0.7}, "kappa"),
        ({"output": {"names": ["residue"], "units": {}}}, "returns"),
        ({"input": {"arguments": ["tissue"]}}, "takes"),
    ],
)
def test_contract_rejects_bad_metadata(model_folder, change, message):
    metadata = json.loads((model_folder / "metadata.json").read_text()) | change
    with pytest.raises(ModelContractError, match=message) as err:
        check_ctp_contract(metadata)
    assert "python -m trainer.ctp.export" in str(err.value)


def test_missing_files_and_non_object_metadata(model_folder, tmp_path):
    with pytest.raises(ModelContractError, match="make weights-ctp"):
        CtpTransformerModel(tmp_path)
    with pytest.raises(ModelContractError, match="not an object"):
        check_ctp_contract([])  # type: ignore[arg-type]
