"""core.pacs.dicomweb and the ``python -m app.pacs`` exit codes against a scripted PACS (no sockets).

The fake PACS is a ``requests`` transport adapter mounted on the client's session: it answers
QIDO-RS, WADO-RS and STOW-RS requests from Python objects, or raises the connection errors a
real network would.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

import app.pacs
from app.__main__ import EXIT_PACS, EXIT_USAGE
from core.errors import PacsError, StudyNotFoundError
from core.pacs import dicomweb
from core.pacs.dicomweb import PARTIAL_SUFFIX, check_uid, make_client, pull_study, push_folder

URL = "http://pacs.invalid:8042/dicom-web"
STUDY = "1.2.826.0.1.3680043.8.498.10"
OTHER_STUDY = "1.2.826.0.1.3680043.8.498.11"
SERIES = ("1.2.826.0.1.3680043.8.498.20", "1.2.826.0.1.3680043.8.498.21")
BOUNDARY = "fake-boundary-7d3a"
STOW_FAILURE_REASON = 0xA700  # "Refused: out of resources" (PS3.18 Table I.2-1)

Reply = tuple[int, str, bytes] | Exception
Handler = Callable[[requests.PreparedRequest], Reply]


class FakePacs(requests.adapters.BaseAdapter):
    """A transport adapter that records each request and answers it with ``handler(request)``."""

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self.handler = handler
        self.requests: list[requests.PreparedRequest] = []

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        self.requests.append(request)
        reply = self.handler(request)
        if isinstance(reply, Exception):
            raise reply
        status, content_type, body = reply
        response = requests.Response()
        response.status_code, response.url, response.request = status, str(request.url), request
        response.headers["Content-Type"] = content_type
        response.raw = io.BytesIO(body)
        return response

    def close(self) -> None:
        """Nothing to release."""


def client_for(handler: Handler) -> tuple[Any, FakePacs]:
    adapter = FakePacs(handler)
    session = requests.Session()
    session.mount("http://", adapter)
    return make_client(URL, session=session), adapter


def instance(sop_number: int, series_uid: str = SERIES[0], study_uid: str = STUDY) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.3{sop_number}"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.Modality = "OT"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def part10(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def multipart(datasets: list[Dataset]) -> bytes:
    parts = [b"--" + BOUNDARY.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + part10(d) for d in datasets]
    return b"\r\n".join(parts) + b"\r\n--" + BOUNDARY.encode() + b"--"


def pacs_serving(datasets: list[Dataset], studies: tuple[str, ...] = (STUDY,)) -> Handler:
    """QIDO-RS answers ``studies``; WADO-RS of a study answers ``datasets``."""

    def handler(request: requests.PreparedRequest) -> Reply:
        url = str(request.url)
        if "/studies?" in url or url.endswith("/studies"):
            found = [{"0020000D": {"vr": "UI", "Value": [uid]}} for uid in studies if uid in url]
            return 200, "application/dicom+json", json.dumps(found).encode()
        content_type = f'multipart/related; type="application/dicom"; boundary="{BOUNDARY}"'
        return 200, content_type, multipart(datasets)

    return handler


def stow_reply(stored: list[str], failed: list[str]) -> bytes:
    answer: dict[str, Any] = {
        "00081199": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": [uid]}} for uid in stored]}
    }
    if failed:
        items = [
            {"00081155": {"vr": "UI", "Value": [uid]}, "00081197": {"vr": "US", "Value": [STOW_FAILURE_REASON]}}
            for uid in failed
        ]
        answer["00081198"] = {"vr": "SQ", "Value": items}
    return json.dumps(answer).encode()


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if PARTIAL_SUFFIX in p.name]


def test_pull_writes_one_part10_file_per_instance_named_by_series_and_sop(tmp_path: Path) -> None:
    sent = [instance(1, SERIES[0]), instance(2, SERIES[0]), instance(3, SERIES[1])]
    client, adapter = client_for(pacs_serving(sent))
    result = pull_study(client, STUDY, tmp_path / "study")
    assert (result.n_instances, result.n_series, result.study_dir) == (3, 2, tmp_path / "study")
    for ds in sent:
        path = tmp_path / "study" / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
        assert path.read_bytes()[128:132] == b"DICM"
        assert dcmread(path).SOPInstanceUID == ds.SOPInstanceUID
    assert leftovers(tmp_path) == []
    assert f"StudyInstanceUID={STUDY}" in str(adapter.requests[0].url)
    assert "transfer-syntax=*" in adapter.requests[1].headers["Accept"]


def test_pull_of_an_unknown_study_raises_study_not_found(tmp_path: Path) -> None:
    client, _ = client_for(pacs_serving([instance(1)], studies=()))
    with pytest.raises(StudyNotFoundError, match=f"holds no study {STUDY}"):
        pull_study(client, STUDY, tmp_path / "study")
    assert list(tmp_path.iterdir()) == []


def test_pull_from_an_unreachable_pacs_names_the_url_and_what_to_check(tmp_path: Path) -> None:
    client, _ = client_for(lambda request: requests.exceptions.ConnectionError("[Errno 111] Connection refused"))
    with pytest.raises(PacsError, match=re.escape(f"cannot connect to the PACS at {URL}")) as info:
        pull_study(client, STUDY, tmp_path / "study")
    assert "check the URL" in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("status", "hint"), [(404, "check the DICOMweb root URL"), (500, "see the PACS's log")])
def test_pull_turns_http_errors_into_pacs_errors(tmp_path: Path, status: int, hint: str) -> None:
    client, _ = client_for(lambda request: (status, "text/plain", b"no"))
    with pytest.raises(PacsError, match=f"answered HTTP {status} when asked to search for the study; {hint}"):
        pull_study(client, STUDY, tmp_path / "study")


def test_a_failure_during_retrieval_leaves_neither_the_study_nor_a_partial_folder(tmp_path: Path) -> None:
    client, _ = client_for(pacs_serving([instance(1), instance(2, study_uid=OTHER_STUDY)]))
    with pytest.raises(PacsError, match="an instance of another study"):
        pull_study(client, STUDY, tmp_path / "study")
    assert list(tmp_path.iterdir()) == []


def test_pull_refuses_an_existing_destination_and_a_malformed_uid(tmp_path: Path) -> None:
    client, adapter = client_for(pacs_serving([instance(1)]))
    with pytest.raises(FileExistsError, match="new folder"):
        pull_study(client, STUDY, tmp_path)
    with pytest.raises(ValueError, match="digits separated by dots"):
        pull_study(client, "../../etc", tmp_path / "study")
    assert adapter.requests == []


def test_check_uid_accepts_dicom_uids_only() -> None:
    assert check_uid(STUDY) == STUDY
    for bad in ("", "1..2", "1.2.", "1.2a", "1." + "2" * 63):
        with pytest.raises(ValueError, match="StudyInstanceUID"):
            check_uid(bad)


def test_make_client_needs_an_http_url() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        make_client("pacs:8042/dicom-web")


def write_folder(folder: Path, datasets: list[Dataset]) -> None:
    folder.mkdir()
    for number, ds in enumerate(datasets):
        (folder / f"result_{number}.dcm").write_bytes(part10(ds))
    (folder / "run_record.json").write_text("{}")


def stow_handler(reject: frozenset[str] = frozenset()) -> Handler:
    """STOW-RS: stores the instances of :func:`instance` found in the request body, except ``reject``."""

    def handler(request: requests.PreparedRequest) -> Reply:
        body = request.body if isinstance(request.body, bytes) else b"".join(cast(Iterable[bytes], request.body))
        sent = [ds.SOPInstanceUID for ds in [instance(n) for n in range(10)] if ds.SOPInstanceUID.encode() in body]
        stored = [uid for uid in sent if uid not in reject]
        return 200, "application/dicom+json", stow_reply(stored, [uid for uid in sent if uid in reject])

    return handler


def test_push_stores_every_dicom_file_in_batches_and_skips_other_files(tmp_path: Path) -> None:
    write_folder(tmp_path / "out", [instance(1), instance(2), instance(3, SERIES[1])])
    client, adapter = client_for(stow_handler())
    result = push_folder(client, tmp_path / "out", STUDY, batch_size=2)
    assert result.n_stored == 3
    assert result.skipped_files == (tmp_path / "out" / "run_record.json",)
    assert len(adapter.requests) == 2
    assert all(str(r.url).endswith(f"/studies/{STUDY}") and r.method == "POST" for r in adapter.requests)


def test_push_reports_instances_the_pacs_rejects(tmp_path: Path) -> None:
    write_folder(tmp_path / "out", [instance(1), instance(2)])
    client, _ = client_for(stow_handler(reject=frozenset({instance(2).SOPInstanceUID})))
    with pytest.raises(PacsError, match=r"stored 1 of 2 instance\(s\) and rejected 1: .*0xA700"):
        push_folder(client, tmp_path / "out", STUDY)


def test_push_checks_the_study_of_every_file_before_sending_anything(tmp_path: Path) -> None:
    write_folder(tmp_path / "out", [instance(1), instance(2, study_uid=OTHER_STUDY)])
    client, adapter = client_for(stow_handler())
    expected = f"belongs to study '{OTHER_STUDY}', not {STUDY}; nothing was pushed"
    with pytest.raises(PacsError, match=re.escape(expected)):
        push_folder(client, tmp_path / "out", STUDY)
    assert adapter.requests == []


def test_push_of_a_folder_without_dicom_files_fails(tmp_path: Path) -> None:
    (tmp_path / "run_record.json").write_text("{}")
    client, _ = client_for(stow_handler())
    with pytest.raises(PacsError, match="holds no DICOM file to push"):
        push_folder(client, tmp_path)


def test_cli_exit_codes_for_bad_arguments_and_an_unreachable_pacs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    assert app.pacs.main(["--url", URL, "--study", "not-a-uid", "-o", str(out)]) == EXIT_USAGE
    assert app.pacs.main(["--url", "ftp://pacs/dicom-web", "--study", STUDY, "-o", str(out)]) == EXIT_USAGE

    def refusing_client(url: str) -> Any:
        return client_for(lambda request: requests.exceptions.ConnectionError("Connection refused"))[0]

    monkeypatch.setattr(dicomweb, "make_client", refusing_client)
    assert app.pacs.main(["--url", URL, "--study", STUDY, "-o", str(out), "--push"]) == EXIT_PACS
    assert not out.exists()
