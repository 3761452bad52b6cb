"""Pull a study from a PACS and push results back over DICOMweb (WADO-RS, QIDO-RS, STOW-RS).

Built on ``dicomweb-client``.  :func:`pull_study` writes one DICOM Part 10 file per instance
into a new folder that appears complete or not at all; :func:`push_folder` stores every DICOM
file of a folder with STOW-RS and says how many the PACS accepted.  Every failure of the
connection or the server becomes a :class:`core.errors.PacsError` whose message names the URL
and what to check.  Nothing here logs patient names or IDs.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pydicom
import requests
from dicomweb_client import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.misc import is_dicom
from pydicom.uid import RE_VALID_UID

from core.errors import PacsError, StudyNotFoundError

logger = logging.getLogger(__name__)

TIMEOUT_S = 60.0
"""Connect and read timeout of every request, seconds."""
STOW_BATCH_SIZE = 16
"""Instances per STOW-RS request (bounds the memory of one multipart message)."""
ANY_TRANSFER_SYNTAX = (("application/dicom", "*"),)
"""WADO-RS media type asking for the instances as stored (no transcoding by the PACS)."""
PARTIAL_SUFFIX = ".partial-"
"""A study being pulled goes to ``.<destination name>.partial-XXXX`` next to the destination."""

_UID_MAX_LENGTH = 64
_FAILED_SOP_SEQUENCE = "FailedSOPSequence"
_REFERENCED_SOP_SEQUENCE = "ReferencedSOPSequence"
_HTTP_HINTS = {
    401: "check the credentials given to the PACS session",
    403: "check that this user may read and store studies on the PACS",
    404: "check the DICOMweb root URL (e.g. http://pacs:8042/dicom-web)",
}


@dataclass(frozen=True)
class PullResult:
    """Where :func:`pull_study` put the study, and how many instances and series it holds."""

    study_dir: Path
    n_instances: int
    n_series: int


@dataclass(frozen=True)
class PushResult:
    """What :func:`push_folder` stored: instances accepted by the PACS, and files skipped as not DICOM."""

    n_stored: int
    skipped_files: tuple[Path, ...]


def check_uid(uid: str, what: str = "StudyInstanceUID") -> str:
    """Return ``uid`` if it is a valid DICOM UID (PS3.5 9.1: digits and dots, no leading zeros, 64 characters at most).

    Raises
    ------
    ValueError
        Naming ``what`` and the value found.
    """
    if not RE_VALID_UID.match(uid) or len(uid) > _UID_MAX_LENGTH:
        raise ValueError(
            f"{what} must be digits separated by dots (no leading zeros), at most 64 characters; got {uid!r}"
        )
    return uid


def make_client(url: str, session: requests.Session | None = None, timeout_s: float = TIMEOUT_S) -> DICOMwebClient:
    """A DICOMweb client for the service root ``url`` (e.g. ``http://pacs:8042/dicom-web``).

    Parameters
    ----------
    url
        DICOMweb root URL, ``http://`` or ``https://``.
    session
        A ``requests.Session`` carrying the site's authentication or TLS settings; a plain one if None.
    timeout_s
        Connect and read timeout of every request, seconds.

    Raises
    ------
    ValueError
        If ``url`` is not an http(s) URL.
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"the DICOMweb URL must start with http:// or https://; got {url!r}")
    client = DICOMwebClient(url=url.rstrip("/"), session=session, timeout=timeout_s)
    client.set_http_retry_params(retry=False)
    return client


def pull_study(client: DICOMwebClient, study_instance_uid: str, destination: Path) -> PullResult:
    """Retrieve every instance of a study into ``destination`` (new), one Part 10 file per instance.

    Files are named ``<SeriesInstanceUID>/<SOPInstanceUID>.dcm``.  They are written into a hidden
    working folder next to ``destination`` that is renamed to ``destination`` only when the whole
    study has arrived, and removed on any failure.

    Parameters
    ----------
    client
        From :func:`make_client`.
    study_instance_uid
        The study to retrieve.
    destination
        A folder that does not exist yet; its parent is created if needed.

    Returns
    -------
    PullResult

    Raises
    ------
    StudyNotFoundError
        If the PACS holds no such study, or returns no instance of it.
    PacsError
        If the PACS cannot be reached, answers with an HTTP error, or sends an instance of another study.
    FileExistsError
        If ``destination`` exists.
    """
    check_uid(study_instance_uid)
    destination = Path(destination).absolute()
    if destination.exists():
        raise FileExistsError(f"{destination} exists; pull_study writes into a new folder")
    with _pacs_errors(client.base_url, "search for the study"):
        found = client.search_for_studies(search_filters={"StudyInstanceUID": study_instance_uid})
    if not found:
        raise StudyNotFoundError(f"the PACS at {client.base_url} holds no study {study_instance_uid}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=f".{destination.name}{PARTIAL_SUFFIX}", dir=destination.parent))
    try:
        with _pacs_errors(client.base_url, "retrieve the study"):
            instances = client.iter_study(study_instance_uid, media_types=ANY_TRANSFER_SYNTAX)
            n_instances, n_series = _write_instances(instances, study_instance_uid, work_dir)
        if n_instances == 0:
            raise StudyNotFoundError(f"the PACS at {client.base_url} sent no instance of study {study_instance_uid}")
        os.rename(work_dir, destination)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    logger.info("Pulled %d instance(s) in %d series from %s", n_instances, n_series, client.base_url)
    return PullResult(destination, n_instances, n_series)


def push_folder(
    client: DICOMwebClient,
    folder: Path,
    study_instance_uid: str | None = None,
    batch_size: int = STOW_BATCH_SIZE,
) -> PushResult:
    """Store every DICOM Part 10 file under ``folder`` with STOW-RS; other files are skipped.

    Parameters
    ----------
    client
        From :func:`make_client`.
    folder
        Searched recursively, in sorted order.
    study_instance_uid
        If given, every file must belong to this study (checked before anything is sent), and the
        request goes to ``/studies/{uid}`` so that the PACS checks it too.
    batch_size
        Instances per STOW-RS request.

    Returns
    -------
    PushResult

    Raises
    ------
    PacsError
        If the folder holds no DICOM file or one of another study, the PACS cannot be reached or
        answers with an HTTP error, or it rejects instances (all batches are tried first; the
        message says how many were stored and why the others failed).
    """
    if study_instance_uid is not None:
        check_uid(study_instance_uid)
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    dicom_files = [p for p in files if is_dicom(p)]
    skipped = tuple(p for p in files if not is_dicom(p))
    if not dicom_files:
        raise PacsError(f"{folder} holds no DICOM file to push")
    if study_instance_uid is not None:
        _check_study(dicom_files, study_instance_uid)
    n_stored = 0
    failures: list[str] = []
    for start in range(0, len(dicom_files), batch_size):
        datasets = [pydicom.dcmread(p) for p in dicom_files[start : start + batch_size]]
        with _pacs_errors(client.base_url, "store the results"):
            response = client.store_instances(datasets, study_instance_uid=study_instance_uid)
        stored, failed = _stow_outcome(response, datasets)
        n_stored += stored
        failures += failed
    if failures:
        raise PacsError(
            f"the PACS at {client.base_url} stored {n_stored} of {len(dicom_files)} instance(s) and rejected "
            f"{len(failures)}: {'; '.join(failures[:5])}"
        )
    logger.info("Pushed %d instance(s) to %s (%d other file(s) skipped)", n_stored, client.base_url, len(skipped))
    return PushResult(n_stored, skipped)


def _write_instances(instances: Iterator[Dataset], study_instance_uid: str, work_dir: Path) -> tuple[int, int]:
    """Write each instance as ``<series>/<sop>.dcm`` under ``work_dir``; return (instances, series)."""
    series: set[str] = set()
    n_instances = 0
    for ds in instances:
        if str(ds.get("StudyInstanceUID", "")) != study_instance_uid:
            raise PacsError(f"the PACS sent an instance of another study ({ds.get('StudyInstanceUID')!r})")
        series_uid = check_uid(str(ds.get("SeriesInstanceUID", "")), "SeriesInstanceUID sent by the PACS")
        sop_uid = check_uid(str(ds.get("SOPInstanceUID", "")), "SOPInstanceUID sent by the PACS")
        (work_dir / series_uid).mkdir(exist_ok=True)
        ds.save_as(work_dir / series_uid / f"{sop_uid}.dcm", enforce_file_format=True)
        series.add(series_uid)
        n_instances += 1
    return n_instances, len(series)


def _check_study(files: Sequence[Path], study_instance_uid: str) -> None:
    for path in files:
        found = str(pydicom.dcmread(path, stop_before_pixels=True).get("StudyInstanceUID", ""))
        if found != study_instance_uid:
            raise PacsError(f"{path.name} belongs to study {found!r}, not {study_instance_uid}; nothing was pushed")


def _stow_outcome(response: Dataset, sent: Sequence[Dataset]) -> tuple[int, list[str]]:
    """(instances stored, 'SOPInstanceUID: reason' per failure) from a STOW-RS response."""
    failed = [
        f"{item.get('ReferencedSOPInstanceUID', '?')}: failure reason 0x{int(item.get('FailureReason', 0)):04X}"
        for item in response.get(_FAILED_SOP_SEQUENCE, [])
    ]
    referenced = response.get(_REFERENCED_SOP_SEQUENCE)
    stored = len(referenced) if referenced is not None else len(sent) - len(failed)
    return stored, failed


@contextmanager
def _pacs_errors(url: str, action: str) -> Iterator[None]:
    """Turn the ``requests`` exceptions raised while trying to ``action`` into :class:`PacsError`."""
    try:
        yield
    except requests.exceptions.Timeout as error:
        raise PacsError(
            f"the PACS at {url} did not answer in time when asked to {action}; check that it is not overloaded"
        ) from error
    except requests.exceptions.ConnectionError as error:
        raise PacsError(
            f"cannot connect to the PACS at {url} to {action}: {error.__class__.__name__}; "
            "check the URL and that the PACS's DICOMweb service is running and reachable from here"
        ) from error
    except requests.exceptions.HTTPError as error:
        status = error.response.status_code if error.response is not None else 0
        hint = _HTTP_HINTS.get(status, "see the PACS's log")
        raise PacsError(f"the PACS at {url} answered HTTP {status} when asked to {action}; {hint}") from error
    except requests.exceptions.RequestException as error:
        raise PacsError(f"the request to the PACS at {url} to {action} failed: {error}") from error
