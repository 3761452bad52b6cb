"""Fixtures of the core.dicom tests: the synthetic study of ``synthetic_study.STUDY_SEED``."""

from __future__ import annotations

import pytest

from tests.core.dicom.synthetic_study import STUDY_SEED, WrittenStudy, write_study


@pytest.fixture(scope="module")
def written_study(tmp_path_factory: pytest.TempPathFactory) -> WrittenStudy:
    """The study of ``STUDY_SEED``, written once per test module."""
    return write_study(tmp_path_factory.mktemp("study"), STUDY_SEED)
