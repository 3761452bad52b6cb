"""A tiny HTTP client that :class:`tests.pacs.orthanc_sandbox.OrthancSandbox` runs *inside* Orthanc's namespace.

It is executed as a script (``python netns_http.py ...`` under ``nsenter --net=...``), so it uses the
standard library only and imports nothing from the project.

Usage
-----
``netns_http.py request METHOD URL [CONTENT_TYPE]``
    Send one request (the body, if any, is read from stdin) and write the response body to stdout.
    Exit status 0 on HTTP 2xx; 3 with ``HTTP <status>: <body>`` on stderr for other answers; 4 with the
    reason on stderr when the server cannot be reached.
``netns_http.py upload URL FOLDER``
    POST every DICOM Part 10 file under FOLDER (recursively, sorted; other files are skipped) to URL
    (Orthanc's ``/instances``) and print the number of files stored; stops at the first failure with
    status 3 or 4 as above.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

EXIT_HTTP_ERROR = 3
EXIT_UNREACHABLE = 4
TIMEOUT_S = 60
_PREAMBLE_BYTES = 128
_DICOM_MAGIC = b"DICM"


def _is_dicom(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(_PREAMBLE_BYTES + len(_DICOM_MAGIC))[_PREAMBLE_BYTES:] == _DICOM_MAGIC


def _send(method: str, url: str, body: bytes | None, content_type: str | None) -> bytes:
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        return response.read()


def _main(argv: list[str]) -> int:
    try:
        if argv[0] == "request":
            method, url = argv[1], argv[2]
            content_type = argv[3] if len(argv) > 3 else None
            body = sys.stdin.buffer.read() if method in ("POST", "PUT") else None
            sys.stdout.buffer.write(_send(method, url, body, content_type))
            return 0
        if argv[0] == "upload":
            url, folder = argv[1], Path(argv[2])
            files = sorted(p for p in folder.rglob("*") if p.is_file() and _is_dicom(p))
            for path in files:
                _send("POST", url, path.read_bytes(), "application/dicom")
            sys.stdout.write(f"{len(files)}\n")
            return 0
    except urllib.error.HTTPError as error:
        sys.stderr.write(f"HTTP {error.code}: {error.read().decode(errors='replace')}\n")
        return EXIT_HTTP_ERROR
    except (urllib.error.URLError, OSError) as error:
        sys.stderr.write(f"cannot reach {argv[2] if argv[0] == 'request' else argv[1]}: {error}\n")
        return EXIT_UNREACHABLE
    sys.stderr.write(f"unknown command {argv[0]!r}; see the module docstring\n")
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
