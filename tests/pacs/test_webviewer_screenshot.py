"""Headless Chromium shows the app's results in the Orthanc Web Viewer (Debian plugin) after a PACS round trip.

The screenshots must show rendered image pixels: many grey levels over much of the viewer's
centre, and colour for the Secondary Capture (the fused perfusion overlay).  The same check must
reject a blank page, a plain error page, and the viewer opened on a series that does not exist.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.pacs.round_trip import RoundTrip
from tests.pacs.webviewer import WINDOW_SIZE, rendering_problems, screenshot, viewer_targets, viewer_url

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["sc", "ct"])
def test_the_viewer_renders_the_results_and_the_ct(round_trip: RoundTrip, tmp_path: Path, name: str) -> None:
    assert round_trip.cli.returncode == 0, round_trip.cli.stderr[-4000:]
    series_id, colour = viewer_targets(round_trip)[name]
    png = tmp_path / f"viewer_orthanc_{name}.png"
    screenshot(round_trip.pacs, viewer_url(round_trip.pacs, series_id), png, tmp_path / "profile")
    assert Image.open(png).size == WINDOW_SIZE
    assert rendering_problems(png, expect_colour=colour) == []
    if not colour:
        assert rendering_problems(png, expect_colour=True) != [], "the CT screenshot should be grey"


def test_the_viewer_on_a_missing_series_fails_the_check(round_trip: RoundTrip, tmp_path: Path) -> None:
    png = tmp_path / "missing.png"
    screenshot(round_trip.pacs, viewer_url(round_trip.pacs, "no-such-series"), png, tmp_path / "profile")
    assert rendering_problems(png, expect_colour=False) != []


def failing_pages() -> dict[str, Image.Image]:
    """Pages that show no image: blank black or white, a text error page, a thin band of noise."""
    width, _ = WINDOW_SIZE
    error_page = Image.new("RGB", WINDOW_SIZE, "white")
    draw = ImageDraw.Draw(error_page)
    for line in range(30):
        draw.text((220, 200 + 20 * line), "404 Not Found: unknown resource /web-viewer/series/x", fill=(60, 60, 60))
    band = np.random.default_rng(0).integers(0, 256, (40, width, 3), np.uint8)
    return {
        "black": Image.new("RGB", WINDOW_SIZE, "black"),
        "white": Image.new("RGB", WINDOW_SIZE, "white"),
        "error_page": error_page,
        "noise_band": Image.fromarray(np.pad(band, ((480, 480), (0, 0), (0, 0)))),
    }


def test_the_check_rejects_blank_and_error_pages_and_accepts_an_image(tmp_path: Path) -> None:
    for name, page in failing_pages().items():
        page.save(tmp_path / f"{name}.png")
        assert rendering_problems(tmp_path / f"{name}.png", expect_colour=False) != [], name
    width, height = WINDOW_SIZE
    ramp = np.broadcast_to(np.linspace(20, 230, width).astype(np.uint8)[None, :, None], (height, width, 3))
    Image.fromarray(np.ascontiguousarray(ramp)).save(tmp_path / "grey_ramp.png")
    assert rendering_problems(tmp_path / "grey_ramp.png", expect_colour=False) == []
    assert rendering_problems(tmp_path / "grey_ramp.png", expect_colour=True) != []
