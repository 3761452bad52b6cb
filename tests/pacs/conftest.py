"""Fixtures of the PACS tests: one sandboxed Orthanc (with the Web Viewer) after one app round trip.

The round trip (store the sample, ``python -m app.pacs --push``) takes most of the time of these
tests, so it runs once per session and the round-trip and screenshot tests share its outcome.
Without root or the system packages the fixture raises
:class:`tests.pacs.orthanc_sandbox.SandboxUnavailableError`: the tests fail, saying to run
``scripts/install_system_deps.sh`` as root, instead of being skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pacs.orthanc_sandbox import OrthancSandbox
from tests.pacs.round_trip import RoundTrip, pacs_round_trip


@pytest.fixture(scope="session")
def round_trip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoundTrip]:
    """Orthanc holding the sample study and the app's results, pushed by ``python -m app.pacs``."""
    root = tmp_path_factory.mktemp("pacs")
    with OrthancSandbox(root / "orthanc", webviewer=True) as pacs:
        yield pacs_round_trip(pacs, root / "out")
