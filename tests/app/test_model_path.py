"""The models folder: ``$HOLOSCAN_MODEL_PATH`` (the MAP image's /opt/holoscan/models) or the shipped ``models/``."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import (
    DEFAULT_CTP_MODEL_DIR,
    DEFAULT_DENOISING_MODEL_DIR,
    DEFAULT_DSC_MODEL_DIR,
    DEFAULT_FUNCTION_MODEL_DIR,
    MODEL_PATH_ENV,
    AppConfig,
)


def _model_dirs(config: AppConfig) -> tuple[Path, ...]:
    return (config.function_model_dir, config.denoising_model_dir, config.ctp_model_dir, config.dsc_model_dir)


def test_models_come_from_holoscan_model_path_when_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(MODEL_PATH_ENV, str(tmp_path))
    names = ("ddran_lung", "u2net_spect_bone", "ctp_transformer", "stunet_dsc")
    assert _model_dirs(AppConfig()) == tuple(tmp_path / name for name in names)


@pytest.mark.parametrize("value", [None, ""])
def test_shipped_models_when_unset_or_empty(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(MODEL_PATH_ENV, raising=False)
    else:
        monkeypatch.setenv(MODEL_PATH_ENV, value)
    shipped = (DEFAULT_FUNCTION_MODEL_DIR, DEFAULT_DENOISING_MODEL_DIR, DEFAULT_CTP_MODEL_DIR, DEFAULT_DSC_MODEL_DIR)
    assert _model_dirs(AppConfig()) == shipped
    assert all((folder / "metadata.json").is_file() for folder in shipped)
