"""The app's results in the OHIF Viewer (npm ``@ohif/app``, run offline), photographed by headless Chromium.

OHIF publishes its built web application in the npm package ``@ohif/app`` (``dist/``: index.html,
app-config.js, bundles, WebAssembly codecs, fonts).  :func:`fetch_bundle` downloads the pinned
version with ``npm pack`` (checking :data:`OHIF_INTEGRITY`) into ``build/ohif/`` (git-ignored);
nothing else is needed from the network, and nothing at all once it is there.
:func:`capture` runs :mod:`tests.pacs.ohif_browser` inside the Orthanc sandbox's namespace: it
serves OHIF and proxies Orthanc's DICOMweb on one loopback origin and photographs the pages of
:func:`viewer_shots` with Chromium.  :func:`rendering_problems` says why a screenshot does not show
a drawn image in OHIF's viewport (blank page, OHIF error page, viewport left black, grey where a
colour overlay was expected).

Regenerate ``docs/figures/viewer_ohif_*.png`` (needs root, ``scripts/install_system_deps.sh`` and
npm for the first download; ``scripts/ohif_viewer.sh`` does the same)::

    .venv/bin/python -m tests.pacs.ohif --out docs/figures
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydicom.uid import ParametricMapStorage

from tests.pacs.orthanc_sandbox import INSTALL_HINT, OrthancSandbox, SandboxUnavailableError
from tests.pacs.round_trip import RoundTrip, dicom_headers, pacs_round_trip, secondary_capture_series_uid
from tests.testdata import REPO_ROOT

logger = logging.getLogger(__name__)

OHIF_PACKAGE = "@ohif/app"
OHIF_VERSION = "3.13.2"
OHIF_INTEGRITY = "sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="
"""npm's Subresource Integrity of ``@ohif/app-3.13.2.tgz`` (``npm view @ohif/app@3.13.2 dist.integrity``)."""
OHIF_DIR = REPO_ROOT / "build" / "ohif"
NPM_TIMEOUT_S = 600
CAPTURE_TIMEOUT_S = 400

MIN_CONTENT_FRACTION = 0.2
"""Fraction of the viewport whose mean RGB lies in (10, 245): image, not black background or white page."""
MIN_DISTINCT_LEVELS = 64
"""A drawn CT or overlay shows many grey levels; OHIF's UI and text on a plain page show a few dozen."""
COLOUR_SATURATION = 60
"""max(R, G, B) - min(R, G, B) above which a pixel counts as coloured."""
MIN_COLOUR_FRACTION = 0.03
MIN_VIEWPORT_PX = 200


def bundle_dist(root: Path = OHIF_DIR) -> Path:
    """Where :func:`fetch_bundle` puts OHIF's built files (``index.html`` and the rest)."""
    return root / f"ohif-app-{OHIF_VERSION}" / "dist"


def fetch_bundle(root: Path = OHIF_DIR) -> Path:
    """Download and unpack the pinned OHIF build unless it is there already; return its ``dist`` folder.

    The tarball comes from ``npm pack`` (npm's registry and cache), is checked against
    :data:`OHIF_INTEGRITY`, unpacked into a temporary folder and then moved into place, so an
    interrupted run never leaves a half-unpacked viewer.

    Raises
    ------
    RuntimeError
        If npm is missing or fails, or the tarball's hash differs from the pinned one.
    """
    dist = bundle_dist(root)
    if (dist / "index.html").is_file():
        return dist
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"npm is needed once to download {OHIF_PACKAGE}@{OHIF_VERSION}; {INSTALL_HINT}")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp_name:
        tmp = Path(tmp_name)
        argv = [npm, "pack", f"{OHIF_PACKAGE}@{OHIF_VERSION}", "--pack-destination", str(tmp), "--ignore-scripts"]
        logger.info("Downloading %s@%s (50 MB) with npm", OHIF_PACKAGE, OHIF_VERSION)
        result = subprocess.run(argv, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
        tarballs = sorted(tmp.glob("*.tgz"))
        if result.returncode != 0 or len(tarballs) != 1:
            raise RuntimeError(f"npm pack {OHIF_PACKAGE}@{OHIF_VERSION} failed:\n{result.stderr[-2000:]}")
        tarball = tarballs[0]
        algorithm, _, expected = OHIF_INTEGRITY.partition("-")
        found = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
        if found != expected:
            raise RuntimeError(f"{tarball.name} has {algorithm} {found}, expected {expected} (pinned)")
        with tarfile.open(tarball) as archive:
            archive.extractall(tmp / "unpacked", filter="data")
        dist.parent.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dist.parent, ignore_errors=True)
        (tmp / "unpacked" / "package").rename(dist.parent)
    logger.info("OHIF %s unpacked in %s", OHIF_VERSION, dist)
    return dist


def perfusion_map_series_uid(folder: Path) -> str:
    """The SeriesInstanceUID of the perfusion Parametric Map under ``folder`` (AssertionError if none)."""
    for ds in dicom_headers(folder):
        if ds.SOPClassUID == ParametricMapStorage and str(ds.SeriesDescription).lower().startswith("perfusion"):
            return str(ds.SeriesInstanceUID)
    raise AssertionError(f"{folder} holds no perfusion Parametric Map")


def viewer_shots(trip: RoundTrip) -> list[tuple[str, str, bool]]:
    """OHIF pages to photograph after a round trip: ``(name, path?query, colour expected)``.

    ``ct_perfusion`` opens the perfusion Parametric Map, which OHIF shows fused over the CT it
    references; ``sc`` opens the Secondary Capture key images (the app's own fused overlay).
    """
    study = f"/viewer?StudyInstanceUIDs={trip.study_uid}&initialSeriesInstanceUID="
    return [
        ("ct_perfusion", study + perfusion_map_series_uid(trip.output_dir), True),
        ("sc", study + secondary_capture_series_uid(trip.output_dir), True),
    ]


def capture(pacs: OrthancSandbox, dist: Path, out: Path, shots: list[tuple[str, str, bool]]) -> list[dict[str, Any]]:
    """Photograph ``shots`` with OHIF inside ``pacs``'s namespace into ``out/NAME.png``; return the report.

    Raises
    ------
    SandboxUnavailableError
        If Chromium is not installed.
    RuntimeError
        If the browser script fails (the message ends with its output).
    """
    if shutil.which("chromium") is None:
        raise SandboxUnavailableError(f"chromium not found; {INSTALL_HINT}")
    argv = [sys.executable, "-m", "tests.pacs.ohif_browser", "--dist", str(dist), "--orthanc", pacs.url]
    argv += ["--out", str(out)]
    for name, path, colour in shots:
        argv += ["--shot", f"{name}={path}" + (":colour" if colour else "")]
    result = pacs.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=CAPTURE_TIMEOUT_S)
    report = out / "report.json"
    if result.returncode != 0 or not report.is_file():
        raise RuntimeError(f"the OHIF browser script exited with {result.returncode}:\n{result.stderr[-3000:]}")
    records: list[dict[str, Any]] = json.loads(report.read_text())
    return records


def rendering_problems(png: Path, viewport_box: list[float] | None, expect_colour: bool) -> list[str]:
    """Why ``png`` does not show a drawn image in OHIF's viewport at ``viewport_box`` (empty list: it does).

    Parameters
    ----------
    png
        The screenshot.
    viewport_box
        ``[x, y, width, height]`` of the main viewport in the screenshot's pixels, as the browser
        script reported it; ``None`` when the page had no viewport.
    expect_colour
        Also require a coloured overlay.
    """
    if viewport_box is None:
        return ["the page shows no OHIF viewport (error page, study list or blank page?)"]
    x, y, width, height = (round(v) for v in viewport_box)
    if min(width, height) < MIN_VIEWPORT_PX:
        return [f"the viewport is only {width}x{height} pixels"]
    rgb = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)[y : y + height, x : x + width]
    level = np.rint(rgb.mean(axis=-1))
    content = float(((level > 10) & (level < 245)).mean())
    distinct = len(np.unique(level))
    coloured = float((rgb.max(axis=-1) - rgb.min(axis=-1) > COLOUR_SATURATION).mean())
    problems = []
    if content < MIN_CONTENT_FRACTION:
        problems.append(f"only {content:.1%} of the viewport is image content (black or blank viewport?)")
    if distinct < MIN_DISTINCT_LEVELS:
        problems.append(f"only {distinct} distinct intensity levels in the viewport (no image drawn?)")
    if expect_colour and coloured < MIN_COLOUR_FRACTION:
        problems.append(f"only {coloured:.1%} of the viewport is coloured (no colour overlay?)")
    return problems


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.pacs.ohif", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "figures", help="folder for the PNGs")
    parser.add_argument("--fetch-only", action="store_true", help="download the pinned OHIF build and stop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    dist = fetch_bundle()
    if args.fetch_only:
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ohif-screenshots-") as tmp_name:
        tmp = Path(tmp_name)
        with OrthancSandbox(tmp / "orthanc") as pacs:
            trip = pacs_round_trip(pacs, tmp / "out")
            if trip.cli.returncode != 0:
                logger.error("python -m app.pacs failed (exit %d):\n%s", trip.cli.returncode, trip.cli.stderr[-4000:])
                return 1
            shots = viewer_shots(trip)
            records = capture(pacs, dist, tmp / "shots", shots)
        n_failed = 0
        for record, (name, _, colour) in zip(records, shots, strict=True):
            problems = rendering_problems(tmp / "shots" / f"{name}.png", record["viewport_box"], colour)
            problems += [f"loaded {url} from outside" for url in record["external_requests"]]
            shutil.copyfile(tmp / "shots" / f"{name}.png", args.out / f"viewer_ohif_{name}.png")
            verdict = "; ".join(problems) or "shows a rendered image"
            logger.info("viewer_ohif_%s.png (%.0f s after opening): %s", name, record["wait_s"], verdict)
            n_failed += bool(problems)
    return 1 if n_failed else 0


if __name__ == "__main__":
    sys.exit(_main())
