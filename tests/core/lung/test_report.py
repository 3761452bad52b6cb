"""The PDF report: a readable PDF (pypdf), notices, one table row per region, figures, A4, identical bytes.

Table values are shown with one decimal (two for V/Q, "n/a" when it is not defined); the rows
read back from the PDF text are compared with the RegionStats passed in, formatted that way.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pypdf
import pytest

from core.dicom.provenance import RESEARCH_NOTICE, SYNTHETIC_NOTICE
from core.geometry import Grid
from core.labels import LungLabel
from core.lung.quantification import RegionStats, quantify_regions
from core.lung.report import render_report_pdf

GRID = Grid((12, 10, 16), (2.5, 3.0, 3.0), (0.0, 0.0, 0.0))
A4_PT = (595.3, 841.9)
"""210 x 297 mm in PDF points."""
A4_TOLERANCE_PT = 1.0
MODEL, MODEL_VERSION = "test-ddran", "0.4.2"
STUDY = "CT chest for V/Q (phantom)"
CAPTIONS = ("Synthetic perfusion, axial", "Synthetic perfusion, coronal", "Synthetic ventilation, axial")
NAN_REGION = "left upper"
VALUE_FIELDS = (
    ("volume_ml", 1),
    ("perfusion_percent", 1),
    ("ventilation_percent", 1),
    ("vq_ratio", 2),
    ("high_perfusion_ml", 1),
    ("low_perfusion_ml", 1),
    ("high_ventilation_ml", 1),
    ("low_ventilation_ml", 1),
)
"""Table columns after the region name, with their decimals."""


def synthetic_regions() -> list[RegionStats]:
    """Two box lungs, noisy maps, no perfusion at the top of the left lung (V/Q of "left upper" undefined)."""
    labels = np.zeros(GRID.shape, np.uint8)
    labels[:, 2:8, 1:7] = LungLabel.RIGHT_LUNG
    labels[:, 2:8, 9:15] = LungLabel.LEFT_LUNG
    rng = np.random.default_rng(7)
    perfusion = rng.uniform(0.2, 1.0, GRID.shape)
    perfusion[8:, :, 8:] = 0.0
    ventilation = rng.uniform(0.2, 1.0, GRID.shape)
    return quantify_regions(perfusion, ventilation, labels, GRID)


def figures() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(8)
    return [(caption, rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)) for caption in CAPTIONS]


def render(regions: list[RegionStats]) -> bytes:
    return render_report_pdf(regions, figures(), model_name=MODEL, model_version=MODEL_VERSION, study_description=STUDY)


@pytest.fixture(scope="module")
def regions() -> list[RegionStats]:
    stats = synthetic_regions()
    assert [s.region for s in stats if math.isnan(s.vq_ratio)] == [NAN_REGION]
    return stats


@pytest.fixture(scope="module")
def pdf(regions: list[RegionStats]) -> bytes:
    return render(regions)


@pytest.fixture(scope="module")
def pages_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages]


def _collapsed(text: str) -> str:
    return " ".join(text.split())


def test_pdf_has_a4_pages_for_the_table_and_two_figures_a_page(pdf: bytes) -> None:
    assert pdf.startswith(b"%PDF-")
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1 + math.ceil(len(CAPTIONS) / 2)
    for page in reader.pages:
        size = (float(page.mediabox.width), float(page.mediabox.height))
        assert size == pytest.approx(A4_PT, abs=A4_TOLERANCE_PT)


def test_notices_study_and_model_are_shown(pages_text: list[str]) -> None:
    first = _collapsed(pages_text[0])
    assert SYNTHETIC_NOTICE in first
    assert _collapsed(RESEARCH_NOTICE) in first
    assert STUDY in first
    assert f"{MODEL} {MODEL_VERSION}" in first
    assert all(SYNTHETIC_NOTICE in text for text in pages_text)  # the footer of every page


def _expected_cells(stats: RegionStats) -> list[str]:
    cells = []
    for field, decimals in VALUE_FIELDS:
        value = float(getattr(stats, field))
        cells.append("n/a" if math.isnan(value) else f"{value:.{decimals}f}")
    return cells


def test_table_has_one_row_per_region_with_its_values(pages_text: list[str], regions: list[RegionStats]) -> None:
    rows = {}
    for line in pages_text[0].splitlines():
        tokens = line.split()
        if len(tokens) > len(VALUE_FIELDS):
            rows[" ".join(tokens[: -len(VALUE_FIELDS)])] = tokens[-len(VALUE_FIELDS) :]
    for stats in regions:
        assert rows.get(stats.region) == _expected_cells(stats), stats.region
    assert rows[NAN_REGION][3] == "n/a"


def test_figure_captions_are_shown(pages_text: list[str]) -> None:
    text = "\n".join(pages_text[1:])
    for caption in CAPTIONS:
        assert caption in text


def test_two_renders_give_identical_bytes(pdf: bytes, regions: list[RegionStats]) -> None:
    assert render(regions) == pdf
    assert b"/CreationDate" not in pdf


def test_bad_input_is_rejected(regions: list[RegionStats]) -> None:
    with pytest.raises(ValueError, match="regions is empty"):
        render_report_pdf([], [], model_name=MODEL, model_version=MODEL_VERSION)
    grey = np.zeros((8, 8), np.uint8)
    with pytest.raises(ValueError, match="'grey'"):
        render_report_pdf(regions, [("grey", grey)], model_name=MODEL, model_version=MODEL_VERSION)
    floats = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="uint8"):
        render_report_pdf(regions, [("floats", floats)], model_name=MODEL, model_version=MODEL_VERSION)


def test_a_report_without_figures_is_one_page(regions: list[RegionStats]) -> None:
    pdf = render_report_pdf(regions, [], model_name=MODEL, model_version=MODEL_VERSION)
    assert len(pypdf.PdfReader(io.BytesIO(pdf)).pages) == 1
