"""A real Orthanc PACS for tests, alone in a private network namespace (loopback only).

Use it as a context manager::

    from tests.pacs.orthanc_sandbox import OrthancSandbox

    with OrthancSandbox(tmp_path / "orthanc", webviewer=True) as pacs:
        pacs.upload_folder(Path("dicom_samples/thorax_small/dicom"))   # POST /instances
        studies = pacs.get_json("/studies")                             # Orthanc's REST API
        pacs.run(["chromium", ...])            # any command, run inside Orthanc's namespace
        # pacs.url == "http://127.0.0.1:8042", pacs.dicomweb_url == pacs.url + "/dicom-web"

On entry it writes a temporary Orthanc configuration under the given folder (storage, index,
web viewer cache and log there; the Debian DICOMweb plugin, and the Orthanc Web Viewer plugin
when ``webviewer=True``; no authentication), starts ``unshare --net`` which brings ``lo`` up
and execs Orthanc (so :attr:`OrthancSandbox.pid` is Orthanc's own PID and
:attr:`OrthancSandbox.netns` its namespace, ``/proc/PID/ns/net``), and waits until ``/system``
answers.  The namespace has no interface but ``lo`` (see :meth:`OrthancSandbox.interfaces`), so
nothing outside this machine, nor any other process on it, can reach Orthanc; only commands
started through :meth:`OrthancSandbox.run` / :meth:`OrthancSandbox.nsenter_argv` (``nsenter
--net=/proc/PID/ns/net``) can.  On exit Orthanc is stopped by PID (SIGTERM, then SIGKILL after
:data:`STOP_TIMEOUT_S`), always; should the test process die first, the kernel sends Orthanc SIGTERM
(``PR_SET_PDEATHSIG``).  It needs root and the commands of
``scripts/install_system_deps.sh``; without them it raises :class:`SandboxUnavailableError`
saying so.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

logger = logging.getLogger(__name__)

PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))
"""Where Debian's orthanc-* packages put their plugins (the first holds unversioned links)."""
DICOMWEB_PLUGIN = "libOrthancDicomWeb.so"
WEBVIEWER_PLUGIN = "libOrthancWebViewer.so"
HTTP_PORT = 8042
DICOM_PORT = 4242
AE_TITLE = "ORTHANC"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
REQUIRED_COMMANDS = ("Orthanc", "unshare", "nsenter", "ip")
INSTALL_HINT = "run `bash scripts/install_system_deps.sh` as root"
_CLIENT = Path(__file__).with_name("netns_http.py")
_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_PR_SET_PDEATHSIG = 1


class SandboxUnavailableError(RuntimeError):
    """Raised when Orthanc cannot be started: not root, a command or plugin missing, or no answer."""


class OrthancRequestError(RuntimeError):
    """Raised when a REST request to the sandboxed Orthanc fails (HTTP error or no answer)."""


def find_plugin(name: str) -> Path:
    """The path of the Debian Orthanc plugin ``name`` (e.g. ``libOrthancDicomWeb.so``).

    Raises
    ------
    SandboxUnavailableError
        If no folder of :data:`PLUGIN_DIRS` holds it.
    """
    for folder in PLUGIN_DIRS:
        if (folder / name).exists():
            return folder / name
    raise SandboxUnavailableError(
        f"Orthanc plugin {name} not found in {', '.join(map(str, PLUGIN_DIRS))}; {INSTALL_HINT}"
    )


def check_requirements() -> None:
    """Fail with a clear message unless this process is root and every needed command is on PATH.

    Raises
    ------
    SandboxUnavailableError
        Naming what is missing and how to install it.
    """
    if os.geteuid() != 0:
        raise SandboxUnavailableError(
            f"the Orthanc sandbox needs root for its private network namespace; {INSTALL_HINT} and run tests as root"
        )
    missing = [cmd for cmd in REQUIRED_COMMANDS if _which(cmd) is None]
    if missing:
        raise SandboxUnavailableError(f"command(s) not found: {', '.join(missing)}; {INSTALL_HINT}")


def _terminate_with_parent() -> None:
    """In the child before exec: have the kernel send SIGTERM if the process that started it dies.

    This stops Orthanc even when the test process is killed before :meth:`OrthancSandbox.stop` runs.
    The kernel watches the *thread* that started it, so call :meth:`OrthancSandbox.start` from a thread
    that outlives the sandbox (the main thread, as pytest fixtures do).
    """
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _which(command: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRS])
    return shutil.which(command, path=path)


def _command(command: str) -> str:
    found = _which(command)
    if found is None:
        raise SandboxUnavailableError(f"command {command!r} not found; {INSTALL_HINT}")
    return found


class OrthancSandbox:
    """Orthanc in its own loopback-only network namespace; see the module docstring.

    Parameters
    ----------
    root
        A new or empty folder for the configuration, storage, cache and ``orthanc.log``.
    webviewer
        Also load the Orthanc Web Viewer plugin (``/web-viewer/app/viewer.html?series=ID``).
    http_port, dicom_port
        Ports inside the namespace (nothing else listens there, so the defaults never collide).
    """

    def __init__(
        self, root: Path, *, webviewer: bool = False, http_port: int = HTTP_PORT, dicom_port: int = DICOM_PORT
    ) -> None:
        self.root = Path(root).absolute()
        self.webviewer = webviewer
        self.http_port = http_port
        self.dicom_port = dicom_port
        self.log_path = self.root / "orthanc.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Orthanc's REST root, reachable from inside the namespace only."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb root (QIDO-RS, WADO-RS, STOW-RS)."""
        return f"{self.url}/dicom-web"

    @property
    def pid(self) -> int:
        """Orthanc's process id (raises RuntimeError when not running)."""
        if self._process is None:
            raise RuntimeError("the Orthanc sandbox is not running; call start() or use it as a context manager")
        return self._process.pid

    @property
    def netns(self) -> Path:
        """Orthanc's network namespace, ``/proc/PID/ns/net``."""
        return Path(f"/proc/{self.pid}/ns/net")

    def __enter__(self) -> OrthancSandbox:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Write the configuration, start Orthanc in a new network namespace and wait for ``/system``.

        Raises
        ------
        SandboxUnavailableError
            If a requirement is missing, or Orthanc exits or does not answer within :data:`START_TIMEOUT_S`
            (the message ends with the tail of ``orthanc.log``).  Orthanc is stopped before it is raised.
        """
        check_requirements()
        config_path = self._write_config()
        script = f'"{_command("ip")}" link set lo up && exec "{_command("Orthanc")}" "{config_path}"'
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [_command("unshare"), "--net", "--", "/bin/sh", "-c", script],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_terminate_with_parent,
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        logger.info("Orthanc started (PID %d, namespace %s)", self.pid, self.netns)

    def stop(self) -> None:
        """Stop Orthanc by PID: SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_S`.  Safe to call twice."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning("Orthanc (PID %d) ignored SIGTERM for %.0f s; killing it", process.pid, STOP_TIMEOUT_S)
            process.kill()
            process.wait()

    def nsenter_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed so that it runs inside Orthanc's network namespace (and nothing else changes)."""
        return [_command("nsenter"), f"--net={self.netns}", "--", *map(str, argv)]

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """:func:`subprocess.run` of ``argv`` inside the namespace; keyword arguments are passed on."""
        return subprocess.run(self.nsenter_argv(argv), **kwargs)

    def interfaces(self) -> list[str]:
        """The names of the namespace's network interfaces (``["lo"]`` when loopback-only)."""
        result = self.run([_command("ip"), "-o", "link", "show"], capture_output=True, text=True, check=True)
        return [line.split(":")[1].strip().split("@")[0] for line in result.stdout.splitlines() if line.strip()]

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> bytes:
        """Send one HTTP request to ``url + path`` from inside the namespace and return the body.

        Raises
        ------
        OrthancRequestError
            On an HTTP error status or when Orthanc cannot be reached.
        """
        argv = [sys.executable, str(_CLIENT), "request", method, self.url + path]
        if content_type:
            argv.append(content_type)
        result = self.run(argv, input=body or b"", capture_output=True)
        if result.returncode != 0:
            raise OrthancRequestError(f"{method} {path}: {result.stderr.decode(errors='replace').strip()}")
        return result.stdout

    def get_json(self, path: str) -> Any:
        """GET ``path`` of Orthanc's REST API and decode the JSON answer."""
        return json.loads(self.request("GET", path))

    def upload_folder(self, folder: Path) -> int:
        """Store every DICOM Part 10 file under ``folder`` in Orthanc (``POST /instances``); return how many.

        Other files (e.g. ``run_record.json``) are skipped.

        Raises
        ------
        OrthancRequestError
            If Orthanc rejects a file.
        """
        argv = [sys.executable, str(_CLIENT), "upload", self.url + "/instances", str(Path(folder).absolute())]
        result = self.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise OrthancRequestError(f"upload of {folder}: {result.stderr.strip()}")
        return int(result.stdout)

    def _write_config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        plugins = [find_plugin(DICOMWEB_PLUGIN)] + ([find_plugin(WEBVIEWER_PLUGIN)] if self.webviewer else [])
        config = {
            "Name": "perfusion-map-test",
            "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "storage"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": AE_TITLE,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [str(p) for p in plugins],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Host": f"127.0.0.1:{self.http_port}"},
            "WebViewer": {"CachePath": str(self.root / "webviewer-cache")},
        }
        path = self.root / "orthanc.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                status = self._process.returncode
                raise SandboxUnavailableError(f"Orthanc exited with status {status}; {self._log_tail()}")
            try:
                self.request("GET", "/system")
                return
            except OrthancRequestError:
                time.sleep(0.2)
        raise SandboxUnavailableError(f"Orthanc did not answer within {START_TIMEOUT_S:.0f} s; {self._log_tail()}")

    def _log_tail(self, n_lines: int = 20) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []
        return "orthanc.log ends with:\n" + "\n".join(lines[-n_lines:])
