"""The reference run of the hardening suite, shared by its test modules."""

from __future__ import annotations

import pytest

from tests.hardening import cases
from tests.hardening.running import AppRun, run_cli


@pytest.fixture(scope="session")
def identity() -> cases.Identity:
    """The patient identifiers the reference study carries."""
    return cases.Identity()


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory, identity: cases.Identity) -> AppRun:
    """The app at DEBUG level on a messy but usable study, with distinctive patient identifiers.

    Five CT series, the sample's two SPECT series, non-DICOM files, five slices copied under
    other names and one damaged file.  Its chosen CT is the plain small CT, so its results are
    the reference of the other cases.  The input files are checked to be unchanged.
    """
    folder = tmp_path_factory.mktemp("reference")
    study = cases.several_ct_series(folder / "study")
    cases.add_sample_spect(study / "spect")
    cases.set_identity(study, identity)
    cases.add_exact_duplicates(study / "ct_6mm")
    cases.add_corrupted_file(study)
    before = cases.checksums(study)
    run = run_cli(study, folder / "out", "-l", "DEBUG")
    assert cases.checksums(study) == before, "the app changed its input files"
    return run
