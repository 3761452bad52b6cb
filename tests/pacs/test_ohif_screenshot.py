"""Headless Chromium shows the app's results in the OHIF Viewer (npm ``@ohif/app``, offline) after a PACS round trip.

OHIF is served on loopback inside the Orthanc sandbox's namespace and reads Orthanc's DICOMweb.
The screenshots must show a drawn image in OHIF's viewport (many grey levels over much of it,
and colour: the perfusion map fused over the CT, and the Secondary Capture's own overlay), and
the page must ask for nothing outside loopback.  The same check must reject OHIF with its
viewport left black, blank and error pages, and a page without a viewport.

The first run downloads the pinned OHIF build with npm into ``build/ohif/`` (``make test`` does
that before pytest); later runs need no network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.pacs.ohif import capture, fetch_bundle, rendering_problems, viewer_shots
from tests.pacs.ohif_browser import WINDOW_SIZE
from tests.pacs.round_trip import RoundTrip

pytestmark = pytest.mark.slow

Shots = tuple[Path, dict[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def ohif_shots(round_trip: RoundTrip, tmp_path_factory: pytest.TempPathFactory) -> Shots:
    """The screenshots of :func:`tests.pacs.ohif.viewer_shots` and the browser script's report, by name."""
    assert round_trip.cli.returncode == 0, round_trip.cli.stderr[-4000:]
    out = tmp_path_factory.mktemp("ohif")
    records = capture(round_trip.pacs, fetch_bundle(), out, viewer_shots(round_trip))
    return out, {record["name"]: record for record in records}


@pytest.mark.parametrize("name", ["ct_perfusion", "sc"])
def test_ohif_renders_the_results_offline(ohif_shots: Shots, name: str) -> None:
    out, records = ohif_shots
    record = records[name]
    png = out / f"{name}.png"
    assert record["settled"], f"{name}: the viewport did not show a settled image within the time limit"
    assert Image.open(png).size == WINDOW_SIZE
    assert rendering_problems(png, record["viewport_box"], expect_colour=True) == []
    assert record["external_requests"] == []


def test_the_check_rejects_pages_without_a_drawn_image(ohif_shots: Shots, tmp_path: Path) -> None:
    out, records = ohif_shots
    box = records["ct_perfusion"]["viewport_box"]
    x, y, width, height = (round(v) for v in box)
    page = np.array(Image.open(out / "ct_perfusion.png").convert("RGB"))
    page[y : y + height, x : x + width] = 0
    error_page = Image.new("RGB", WINDOW_SIZE, "white")
    draw = ImageDraw.Draw(error_page)
    for line in range(40):
        draw.text((300, 80 + 20 * line), "Something went wrong: no study found for this URL", fill=(40, 40, 40))
    failing = {
        "viewport_left_black": Image.fromarray(page),
        "black": Image.new("RGB", WINDOW_SIZE, "black"),
        "white": Image.new("RGB", WINDOW_SIZE, "white"),
        "error_page": error_page,
    }
    for name, image in failing.items():
        image.save(tmp_path / f"{name}.png")
        assert rendering_problems(tmp_path / f"{name}.png", box, expect_colour=False) != [], name
    assert rendering_problems(out / "ct_perfusion.png", None, expect_colour=False) != []
    grey = np.asarray(Image.open(out / "ct_perfusion.png").convert("L"))
    Image.fromarray(grey).convert("RGB").save(tmp_path / "grey.png")
    assert rendering_problems(tmp_path / "grey.png", box, expect_colour=False) == []
    assert rendering_problems(tmp_path / "grey.png", box, expect_colour=True) != []
