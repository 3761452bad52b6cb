"""The PACS round trip the tests and the screenshot script share, and helpers to inspect its outcome.

:func:`pacs_round_trip` stores the sample study in a sandboxed Orthanc, lists what Orthanc holds,
then runs ``python -m app.pacs --push`` inside Orthanc's namespace (pull over WADO-RS, process,
push the results with STOW-RS).  The other functions read DICOM folders (what the app wrote) and
Orthanc's REST API (what the PACS holds) so that tests can compare the two.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.uid import SecondaryCaptureImageStorage

from tests.pacs.orthanc_sandbox import OrthancSandbox
from tests.testdata import REPO_ROOT

SAMPLE_STUDY = REPO_ROOT / "dicom_samples" / "thorax_small" / "dicom"
PACS_CLI_TIMEOUT_S = 600


@dataclass(frozen=True)
class RoundTrip:
    """What :func:`pacs_round_trip` did.

    Attributes
    ----------
    pacs
        The running sandbox (holding the sample and, if the CLI succeeded, the results).
    study_uid
        The sample's StudyInstanceUID.
    output_dir
        Where ``python -m app.pacs`` wrote the results.
    instances_before
        Orthanc's ``/instances?expand`` answer before the CLI ran (the source instances).
    cli
        The finished ``python -m app.pacs`` process (exit code, stdout, stderr).
    """

    pacs: OrthancSandbox
    study_uid: str
    output_dir: Path
    instances_before: list[dict[str, Any]]
    cli: subprocess.CompletedProcess[str]


def pacs_round_trip(pacs: OrthancSandbox, output_dir: Path, study_dir: Path = SAMPLE_STUDY) -> RoundTrip:
    """Store ``study_dir`` in ``pacs`` and run ``python -m app.pacs --push`` on it into ``output_dir``."""
    pacs.upload_folder(study_dir)
    instances_before = pacs.get_json("/instances?expand")
    study_uid = study_uid_of(study_dir)
    argv = [sys.executable, "-m", "app.pacs", "--url", pacs.dicomweb_url, "--study", study_uid]
    argv += ["-o", str(output_dir), "--push"]
    cli = pacs.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=PACS_CLI_TIMEOUT_S)
    return RoundTrip(pacs, study_uid, output_dir, instances_before, cli)


def dicom_headers(folder: Path) -> list[Any]:
    """The headers (no pixel data) of every DICOM Part 10 file under ``folder``, in sorted path order."""
    headers = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            headers.append(dcmread(path, stop_before_pixels=True))
        except InvalidDicomError:
            continue
    return headers


def study_uid_of(folder: Path) -> str:
    """The StudyInstanceUID shared by every DICOM file under ``folder`` (AssertionError if several)."""
    uids = {str(ds.StudyInstanceUID) for ds in dicom_headers(folder)}
    assert len(uids) == 1, f"{folder} holds {len(uids)} studies, expected one"
    return uids.pop()


def instances_per_series(folder: Path) -> Counter[str]:
    """Number of DICOM files per SeriesInstanceUID under ``folder``."""
    return Counter(str(ds.SeriesInstanceUID) for ds in dicom_headers(folder))


def secondary_capture_series_uid(folder: Path) -> str:
    """The SeriesInstanceUID of the (first) Secondary Capture file under ``folder``."""
    for ds in dicom_headers(folder):
        if ds.SOPClassUID == SecondaryCaptureImageStorage:
            return str(ds.SeriesInstanceUID)
    raise AssertionError(f"{folder} holds no Secondary Capture image")


def orthanc_series(pacs: OrthancSandbox) -> dict[str, dict[str, Any]]:
    """Orthanc's expanded series records keyed by SeriesInstanceUID."""
    return {s["MainDicomTags"]["SeriesInstanceUID"]: s for s in pacs.get_json("/series?expand")}
