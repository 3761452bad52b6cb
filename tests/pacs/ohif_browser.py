"""Serve the OHIF Viewer beside a sandboxed Orthanc and photograph it with headless Chromium.

Run *inside* Orthanc's network namespace (``OrthancSandbox.run``), so that the browser sees
nothing but loopback::

    python -m tests.pacs.ohif_browser --dist build/ohif/ohif-app-3.13.2/dist \\
        --orthanc http://127.0.0.1:8042 --out OUT_DIR --shot NAME=/viewer?StudyInstanceUIDs=...

It starts a loopback HTTP server (one origin, so no CORS) that serves OHIF's built files, an
``app-config.js`` written here (the only data source is Orthanc's DICOMweb; the onboarding tour
is marked as seen; no cine bar, no investigational-use banner), and proxies ``/dicom-web/`` and
``/wado`` to Orthanc.  Then it starts Chromium with the flags of
:data:`tests.pacs.webviewer.CHROMIUM_FLAGS`, a fresh profile, ``--window-size`` and
``--remote-debugging-pipe``, and drives it over the DevTools protocol
(:class:`tests.pacs.cdp_pipe.CdpPipe`): for each ``--shot``, open the page, wait until OHIF's
main viewport canvas holds a drawn image that has stopped changing, and save ``OUT_DIR/NAME.png``.
``OUT_DIR/report.json`` records, per shot, the viewport's rectangle, how long it took, whether it
timed out, and every request the page made to a host other than loopback (expected: none).
Exit status 0 when every shot was saved (whether it shows an image is judged by the caller,
:func:`tests.pacs.ohif.rendering_problems`), 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import http.server
import json
import logging
import os
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.pacs.cdp_pipe import CdpPipe
from tests.pacs.webviewer import CHROMIUM_FLAGS

logger = logging.getLogger(__name__)

WINDOW_SIZE = (1600, 1000)
SHOT_TIMEOUT_S = 120.0
"""Longest wait for one page to show a settled image (OHIF needs 15-30 s on two busy cores)."""
POLL_S = 2.0
MIN_DISTINCT_COLOURS = 64
"""Colours (in a 1/7 pixel sample) the viewport canvas must hold before it counts as drawn."""
MIN_COLOUR_SAMPLES = 500
"""Saturated samples a shot that expects a colour overlay waits for (the overlay loads after the CT)."""
PROXIED_PREFIXES = ("/dicom-web/", "/wado")
LOCAL_URL_PREFIXES = ("http://127.0.0.1", "http://localhost", "data:", "blob:", "about:")
APP_CONFIG = """// Written by tests/pacs/ohif_browser.py: OHIF reads Orthanc's DICOMweb on this same origin.
localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour']));
window.config = {
  routerBasename: null,
  extensions: [],
  modes: [],
  showStudyList: true,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: true,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  maxNumberOfWebWorkers: 2,
  investigationalUseDialog: { option: 'never' },
  customizationService: { autoCineModalities: { $set: [] } },
  defaultDataSourceName: 'orthanc',
  dataSources: [{
    namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
    sourceName: 'orthanc',
    configuration: {
      friendlyName: 'Orthanc (sandbox)',
      name: 'orthanc',
      qidoRoot: window.location.origin + '/dicom-web',
      wadoRoot: window.location.origin + '/dicom-web',
      wadoUriRoot: window.location.origin + '/wado',
      qidoSupportsIncludeField: false,
      imageRendering: 'wadors',
      thumbnailRendering: 'wadors',
      enableStudyLazyLoad: true,
      supportsFuzzyMatching: false,
      supportsWildcard: true,
      bulkDataURI: { enabled: true },
      omitQuotationForMultipartRequest: true,
    },
  }],
};
"""
PROBE_JS = r"""(() => {
  const canvases = [...document.querySelectorAll('canvas.cornerstone-canvas')]
    .filter(c => c.width > 0 && c.height > 0);
  if (!canvases.length) return JSON.stringify(null);
  const c = canvases.reduce((a, b) => (a.width * a.height >= b.width * b.height ? a : b));
  const r = c.getBoundingClientRect();
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const colours = new Set();
  let lit = 0, saturated = 0, checksum = 0;
  for (let i = 0; i < d.length; i += 28) {
    const v = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
    colours.add(v);
    checksum = (checksum * 31 + v) % 1000000007;
    if (d[i] + d[i + 1] + d[i + 2] > 30) lit++;
    if (Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 60) saturated++;
  }
  return JSON.stringify({box: [r.x, r.y, r.width, r.height], distinct: colours.size, lit, saturated, checksum});
})()"""


@dataclass
class ShotRecord:
    """What happened to one ``--shot``; written to ``report.json``.

    Attributes
    ----------
    name, url
        The shot's name (the PNG is ``NAME.png``) and the page opened.
    saved
        Whether the PNG was written.
    settled
        Whether the viewport showed a drawn, unchanging image before :data:`SHOT_TIMEOUT_S`.
    viewport_box
        The main viewport canvas as ``[x, y, width, height]`` in CSS pixels (``None``: no viewport).
    wait_s
        Seconds from opening the page to the screenshot.
    external_requests
        URLs the page asked for on hosts other than loopback.
    """

    name: str
    url: str
    saved: bool = False
    settled: bool = False
    viewport_box: list[float] | None = None
    wait_s: float = 0.0
    external_requests: list[str] = field(default_factory=list)


class _OhifHandler(http.server.SimpleHTTPRequestHandler):
    """Static OHIF files, the generated ``app-config.js``, an index.html fallback, and the Orthanc proxy."""

    orthanc: urllib.parse.SplitResult

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        # WebAssembly must be served as such for streaming compilation, whatever /etc/mime.types says.
        return "application/wasm" if str(path).endswith(".wasm") else super().guess_type(path)

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith(PROXIED_PREFIXES):
            self._proxy()
        elif path == "/app-config.js":
            self._send(200, "text/javascript", APP_CONFIG.encode())
        else:
            if not Path(self.directory, path.lstrip("/")).is_file():
                self.path = "/index.html"  # OHIF's client-side routes, e.g. /viewer
            super().do_GET()

    def _proxy(self) -> None:
        """Forward a GET to Orthanc; rewrite Orthanc's own origin in JSON answers (BulkDataURIs) to ours."""
        connection = http.client.HTTPConnection(self.orthanc.netloc, timeout=60)
        headers = {key: value for key, value in self.headers.items() if key.lower() in ("accept", "range")}
        try:
            connection.request("GET", self.path, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except OSError as error:
            self._send(502, "text/plain", f"Orthanc unreachable: {error}".encode())
            return
        finally:
            connection.close()
        content_type = response.getheader("Content-Type", "application/octet-stream")
        if "json" in content_type:
            ours = f"http://{self.headers.get('Host', '')}".encode()
            body = body.replace(f"{self.orthanc.scheme}://{self.orthanc.netloc}".encode(), ours)
        self._send(response.status, content_type, body)

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(dist: Path, orthanc_url: str) -> http.server.ThreadingHTTPServer:
    """Start the OHIF server on a free loopback port in a daemon thread; ``server_address`` has the port."""
    if not (dist / "index.html").is_file():
        raise FileNotFoundError(f"{dist} holds no OHIF build (index.html); fetch it with scripts/ohif_viewer.sh fetch")
    handler = type("Handler", (_OhifHandler,), {"orthanc": urllib.parse.urlsplit(orthanc_url)})

    def make_handler(*args: Any) -> _OhifHandler:
        return handler(*args, directory=str(dist))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="ohif-http", daemon=True).start()
    return server


def _probe(cdp: CdpPipe, session: str) -> dict[str, Any] | None:
    result = cdp.call("Runtime.evaluate", {"expression": PROBE_JS, "returnByValue": True}, session)
    value = result.get("result", {}).get("value")
    return json.loads(value) if isinstance(value, str) else None


def _is_drawn(probe: dict[str, Any] | None, expect_colour: bool) -> bool:
    if probe is None or probe["distinct"] < MIN_DISTINCT_COLOURS:
        return False
    return probe["saturated"] >= MIN_COLOUR_SAMPLES if expect_colour else True


def take_shot(cdp: CdpPipe, session: str, record: ShotRecord, png: Path, expect_colour: bool) -> None:
    """Open ``record.url``, wait for a settled viewport image (or the timeout) and save ``png``."""
    cdp.drain_events()
    start = time.monotonic()
    cdp.call("Page.navigate", {"url": record.url}, session)
    previous: dict[str, Any] | None = None
    while time.monotonic() - start < SHOT_TIMEOUT_S:
        time.sleep(POLL_S)
        probe = _probe(cdp, session)
        logger.debug("%s after %.0f s: %s", record.name, time.monotonic() - start, probe)
        if _is_drawn(probe, expect_colour) and probe == previous:
            record.settled = True
            break
        previous = probe
    final = _probe(cdp, session)
    record.viewport_box = final["box"] if final else None
    shot = cdp.call("Page.captureScreenshot", {"format": "png"}, session)
    png.write_bytes(base64.b64decode(shot["data"]))
    record.saved = True
    record.wait_s = round(time.monotonic() - start, 1)
    record.external_requests = sorted(
        {
            event["params"]["request"]["url"]
            for event in cdp.drain_events()
            if event.get("method") == "Network.requestWillBeSent"
            and not event["params"]["request"]["url"].startswith(LOCAL_URL_PREFIXES)
        }
    )


def run_shots(dist: Path, orthanc_url: str, out: Path, shots: list[tuple[str, str, bool]]) -> list[ShotRecord]:
    """Serve OHIF and photograph each ``(name, path_and_query, expect_colour)`` into ``out/NAME.png``."""
    server = serve(dist, orthanc_url)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    records = [ShotRecord(name, origin + path) for name, path, _ in shots]
    width, height = WINDOW_SIZE
    try:
        with tempfile.TemporaryDirectory(prefix="ohif-profile-") as profile:
            flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
            with CdpPipe(flags) as cdp:
                session = cdp.open_page()
                for domain in ("Page", "Runtime", "Network"):
                    cdp.call(f"{domain}.enable", {}, session)
                metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
                cdp.call("Emulation.setDeviceMetricsOverride", metrics, session)
                for record, (name, _, colour) in zip(records, shots, strict=True):
                    take_shot(cdp, session, record, out / f"{name}.png", colour)
                    state = "settled" if record.settled else "TIMED OUT"
                    logger.info("%s: %s after %.0f s", name, state, record.wait_s)
    finally:
        server.shutdown()
        server.server_close()
    return records


def _parse_shot(text: str) -> tuple[str, str, bool]:
    name, _, rest = text.partition("=")
    path, colour = (rest[: -len(":colour")], True) if rest.endswith(":colour") else (rest, False)
    if not name or not path.startswith("/"):
        raise argparse.ArgumentTypeError(f"expected NAME=/path?query[:colour], got {text!r}")
    return name, path, colour


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.pacs.ohif_browser", description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, required=True, help="OHIF's built files (the package's dist/)")
    parser.add_argument("--orthanc", required=True, help="Orthanc's root URL inside the namespace")
    parser.add_argument("--out", type=Path, required=True, help="folder for NAME.png and report.json")
    parser.add_argument("--shot", type=_parse_shot, action="append", required=True, help="NAME=/path?query[:colour]")
    parser.add_argument("--verbose", action="store_true", help="log every probe of the viewport")
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    records = run_shots(args.dist, args.orthanc, args.out, args.shot)
    (args.out / "report.json").write_text(json.dumps([asdict(r) for r in records], indent=2))
    return 0 if all(r.saved for r in records) else 1


if __name__ == "__main__":
    sys.exit(_main())
