"""Screenshots of the Orthanc Web Viewer with headless Chromium, and a check that they show an image.

Chromium runs inside the :class:`tests.pacs.orthanc_sandbox.OrthancSandbox` namespace (so it sees
only that Orthanc, on loopback) with the flags of :data:`CHROMIUM_FLAGS`, a fresh profile folder
and ``--screenshot``.  :func:`rendering_problems` says why a PNG does not look like a rendered
medical image (blank page, error page, viewer without an image, grey where colour was expected).

Regenerate the figures in ``docs/figures`` (needs root and ``scripts/install_system_deps.sh``;
``scripts/viewer_screenshots.sh`` does the same)::

    .venv/bin/python -m tests.pacs.webviewer --out docs/figures

It starts Orthanc with the Web Viewer plugin, runs :func:`tests.pacs.round_trip.pacs_round_trip`
(store the sample study, pull it, process it, push the results back), and writes
``viewer_orthanc_sc.png`` (the first Secondary Capture key image, the fused perfusion overlay) and
``viewer_orthanc_ct.png`` (the CT), failing if either does not pass :func:`rendering_problems`.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tests.pacs.orthanc_sandbox import INSTALL_HINT, OrthancSandbox, SandboxUnavailableError
from tests.pacs.round_trip import RoundTrip, orthanc_series, pacs_round_trip, secondary_capture_series_uid
from tests.testdata import REPO_ROOT

logger = logging.getLogger(__name__)

CHROMIUM = "chromium"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""The flags the issue asks for; :func:`screenshot` adds the profile, the output and the window size."""
WINDOW_SIZE = (1000, 1000)
VIRTUAL_TIME_BUDGET_MS = 15000
"""Virtual time Chromium gives the page to load the viewer and decode the images before the shot."""
CHROMIUM_TIMEOUT_S = 180

CENTRE_MARGIN = 0.2
"""Fraction of the width/height left out on each side: the viewer draws text in the corners."""
MID_TONE_RANGE = (10, 245)
"""Mean RGB values (0-255) counted as image content rather than black background or white page."""
MIN_MID_TONE_FRACTION = 0.25
MIN_DISTINCT_LEVELS = 64
"""A rendered CT or overlay shows many grey levels; text on a plain page shows a few dozen at most."""
COLOUR_SATURATION = 60
"""max(R, G, B) - min(R, G, B) above which a pixel counts as coloured."""
MIN_COLOUR_FRACTION = 0.05


@dataclass(frozen=True)
class ScreenshotStats:
    """Measures of the centre of a screenshot (see :data:`CENTRE_MARGIN`).

    Attributes
    ----------
    mid_tone_fraction
        Fraction of pixels whose mean RGB lies in :data:`MID_TONE_RANGE`.
    distinct_levels
        Number of distinct mean-RGB levels (0-255, rounded).
    colour_fraction
        Fraction of pixels more saturated than :data:`COLOUR_SATURATION`.
    """

    mid_tone_fraction: float
    distinct_levels: int
    colour_fraction: float


def screenshot_stats(png: Path) -> ScreenshotStats:
    """Measure the centre of the screenshot ``png``."""
    rgb = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    height, width, _ = rgb.shape
    dy, dx = int(height * CENTRE_MARGIN), int(width * CENTRE_MARGIN)
    centre = rgb[dy : height - dy, dx : width - dx]
    level = np.rint(centre.mean(axis=-1))
    saturation = centre.max(axis=-1) - centre.min(axis=-1)
    low, high = MID_TONE_RANGE
    return ScreenshotStats(
        mid_tone_fraction=float(((level > low) & (level < high)).mean()),
        distinct_levels=len(np.unique(level)),
        colour_fraction=float((saturation > COLOUR_SATURATION).mean()),
    )


def rendering_problems(png: Path, expect_colour: bool) -> list[str]:
    """Why ``png`` does not look like a viewer showing an image (empty list: it does)."""
    stats = screenshot_stats(png)
    problems = []
    if stats.mid_tone_fraction < MIN_MID_TONE_FRACTION:
        problems.append(f"only {stats.mid_tone_fraction:.1%} of the centre is image content (blank or error page?)")
    if stats.distinct_levels < MIN_DISTINCT_LEVELS:
        problems.append(f"only {stats.distinct_levels} distinct intensity levels in the centre (no image drawn?)")
    if expect_colour and stats.colour_fraction < MIN_COLOUR_FRACTION:
        problems.append(f"only {stats.colour_fraction:.1%} of the centre is coloured (no colour overlay?)")
    return problems


def viewer_url(pacs: OrthancSandbox, series_id: str) -> str:
    """The Orthanc Web Viewer's page for the series with Orthanc identifier ``series_id``."""
    return f"{pacs.url}/web-viewer/app/viewer.html?series={series_id}"


def screenshot(pacs: OrthancSandbox, url: str, png: Path, profile_dir: Path) -> None:
    """Open ``url`` in headless Chromium inside the sandbox's namespace and save a screenshot to ``png``.

    Raises
    ------
    SandboxUnavailableError
        If Chromium is not installed.
    RuntimeError
        If Chromium fails or writes no screenshot (the message ends with its output).
    """
    chromium = shutil.which(CHROMIUM)
    if chromium is None:
        raise SandboxUnavailableError(f"{CHROMIUM} not found; {INSTALL_HINT}")
    width, height = WINDOW_SIZE
    argv = [
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile_dir}",
        f"--screenshot={png}",
        f"--window-size={width},{height}",
        f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
        url,
    ]
    png.unlink(missing_ok=True)
    result = pacs.run(argv, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)
    if result.returncode != 0 or not png.is_file():
        raise RuntimeError(f"Chromium exited with {result.returncode} and no screenshot:\n{result.stderr[-2000:]}")


def viewer_targets(trip: RoundTrip) -> dict[str, tuple[str, bool]]:
    """Orthanc series to photograph after a round trip: name -> (Orthanc series ID, colour expected).

    ``"sc"`` is the series of the first Secondary Capture the app wrote (fused perfusion overlay),
    ``"ct"`` the source study's CT series.
    """
    series = orthanc_series(trip.pacs)
    sc = series[secondary_capture_series_uid(trip.output_dir)]
    (ct,) = [s for s in series.values() if s["MainDicomTags"].get("Modality") == "CT"]
    return {"sc": (sc["ID"], True), "ct": (ct["ID"], False)}


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.pacs.webviewer", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "figures", help="folder for the PNGs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="viewer-screenshots-") as tmp_name:
        tmp = Path(tmp_name)
        with OrthancSandbox(tmp / "orthanc", webviewer=True) as pacs:
            trip = pacs_round_trip(pacs, tmp / "out")
            if trip.cli.returncode != 0:
                logger.error("python -m app.pacs failed (exit %d):\n%s", trip.cli.returncode, trip.cli.stderr[-4000:])
                return 1
            n_failed = 0
            for name, (series_id, colour) in viewer_targets(trip).items():
                png = args.out / f"viewer_orthanc_{name}.png"
                screenshot(pacs, viewer_url(pacs, series_id), png, tmp / f"profile-{name}")
                problems = rendering_problems(png, expect_colour=colour)
                logger.info("%s: %s", png, "; ".join(problems) or "shows a rendered image")
                n_failed += bool(problems)
    return 1 if n_failed else 0


if __name__ == "__main__":
    sys.exit(_main())
