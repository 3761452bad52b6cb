"""A PDF report of the regional lung quantification, for readers without a DICOM SR viewer.

A4 portrait pages drawn with matplotlib (figures without pyplot, so no backend is switched):

* page 1: the title, :data:`core.dicom.provenance.SYNTHETIC_NOTICE` in large red letters,
  :data:`core.dicom.provenance.RESEARCH_NOTICE`, the study description and the model, then the
  regional table (region, volume in mL, shares of total perfusion and ventilation in %, V/Q
  ratio, high-/low-perfusion and high-/low-ventilation volumes in mL);
* then the figures (e.g. :func:`core.lung.rendering.render_key_images`), two a page, each
  with its caption;
* every page ends with the synthetic notice and its page number.

The report never shows patient name, ID or birth date (none is passed in), so it may be stored
with BurnedInAnnotation NO.  Its metadata carry no creation date: the same input gives the same
bytes.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from core.dicom.provenance import RESEARCH_NOTICE, SYNTHETIC_NOTICE
from core.lung.quantification import RegionStats
from core.metrics import FUNCTION_THRESHOLD
from core.nm.standardisation import HIR_PERCENTILE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TITLE = "Synthetic lung perfusion and ventilation: regional quantification"
A4_SIZE_IN = (8.27, 11.69)
FIGURES_PER_PAGE = 2
NOTICE_COLOUR = "#c00000"
WRAP_CHARS = 95
NOT_DEFINED = "n/a"
"""Shown for a V/Q ratio that is not defined (a region without perfusion)."""
TABLE_HEADER = (
    "Region",
    "Volume\n(mL)",
    "Perfusion\n(%)",
    "Ventilation\n(%)",
    "V/Q",
    "High perf.\n(mL)",
    "Low perf.\n(mL)",
    "High vent.\n(mL)",
    "Low vent.\n(mL)",
)
LEGEND = (
    "Shares are of the total of both lungs; V/Q = ventilation share / perfusion share "
    f"({NOT_DEFINED} without perfusion); high-/low-function lung: at or above / below "
    f"{FUNCTION_THRESHOLD:g} of the lung's {HIR_PERCENTILE:g}th percentile."
)
PDF_METADATA = {"Title": TITLE, "Subject": SYNTHETIC_NOTICE, "CreationDate": None}
"""No CreationDate: two renders of the same input give identical bytes."""


def table_row(stats: RegionStats) -> list[str]:
    """The table cells of one region: volumes and shares with one decimal, V/Q with two."""
    vq = NOT_DEFINED if math.isnan(stats.vq_ratio) else f"{stats.vq_ratio:.2f}"
    return [
        stats.region,
        f"{stats.volume_ml:.1f}",
        f"{stats.perfusion_percent:.1f}",
        f"{stats.ventilation_percent:.1f}",
        vq,
        f"{stats.high_perfusion_ml:.1f}",
        f"{stats.low_perfusion_ml:.1f}",
        f"{stats.high_ventilation_ml:.1f}",
        f"{stats.low_ventilation_ml:.1f}",
    ]


def _check_figures(figures: Sequence[tuple[str, np.ndarray]]) -> None:
    for caption, rgb in figures:
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            shape = getattr(rgb, "shape", None)
            dtype = getattr(rgb, "dtype", type(rgb).__name__)
            raise ValueError(f"figure {caption!r} must be an (H, W, 3) uint8 RGB array, got {dtype} {shape}")


def _footer(figure: Figure, page: int, pages: int) -> None:
    figure.text(0.5, 0.03, SYNTHETIC_NOTICE, color=NOTICE_COLOUR, fontsize=10, fontweight="bold", ha="center")
    figure.text(0.92, 0.03, f"page {page} of {pages}", fontsize=8, ha="right")


def _summary_page(
    figure: Figure, regions: Sequence[RegionStats], model_name: str, model_version: str, study_description: str
) -> None:
    """Title, notices, study and model lines, and the regional table."""
    figure.text(0.5, 0.95, TITLE, fontsize=14, fontweight="bold", ha="center", va="top")
    figure.text(
        0.5,
        0.90,
        SYNTHETIC_NOTICE,
        fontsize=22,
        fontweight="bold",
        color=NOTICE_COLOUR,
        ha="center",
        va="top",
        bbox={"boxstyle": "square,pad=0.4", "facecolor": "none", "edgecolor": NOTICE_COLOUR, "linewidth": 2},
    )
    lines = textwrap.wrap(RESEARCH_NOTICE, WRAP_CHARS)
    if study_description:
        lines += textwrap.wrap(f"Study: {study_description}", WRAP_CHARS)
    lines.append(f"Model: {model_name} {model_version}")
    lines += textwrap.wrap(LEGEND, WRAP_CHARS)
    figure.text(0.08, 0.83, "\n".join(lines), fontsize=9, ha="left", va="top", linespacing=1.5)
    axes = figure.add_axes((0.05, 0.1, 0.9, 0.6))
    axes.set_axis_off()
    table = axes.table(
        cellText=[table_row(stats) for stats in regions],
        colLabels=list(TABLE_HEADER),
        cellLoc="center",
        loc="upper center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1.0, 1.6)
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_height(cell.get_height() * 1.6)
            cell.set_text_props(fontweight="bold")


def _figure_page(figure: Figure, figures: Sequence[tuple[str, np.ndarray]]) -> None:
    """Up to :data:`FIGURES_PER_PAGE` pictures, one above the other, each above its caption."""
    height = 0.85 / FIGURES_PER_PAGE
    for slot, (caption, rgb) in enumerate(figures):
        bottom = 0.93 - (slot + 1) * height
        axes = figure.add_axes((0.1, bottom + 0.05, 0.8, height - 0.06))
        axes.imshow(rgb, interpolation="nearest")
        axes.set_axis_off()
        figure.text(0.5, bottom + 0.03, caption, fontsize=10, ha="center", va="center")


def render_report_pdf(
    regions: Sequence[RegionStats],
    figures: Sequence[tuple[str, np.ndarray]],
    *,
    model_name: str,
    model_version: str,
    study_description: str = "",
) -> bytes:
    """Render the regional quantification and its figures as a PDF.

    Parameters
    ----------
    regions
        Output of :func:`core.lung.quantification.quantify_regions`, one table row each.
    figures
        ``(caption, rgb)`` pairs; ``rgb`` is an ``(H, W, 3)`` uint8 picture.
    model_name, model_version
        The network that synthesised the maps.
    study_description
        StudyDescription of the CT, shown when given; it must not identify the patient.

    Returns
    -------
    bytes
        The PDF file, A4 portrait pages.

    Raises
    ------
    ValueError
        If ``regions`` is empty or a figure is not an ``(H, W, 3)`` uint8 array.
    """
    if not regions:
        raise ValueError("regions is empty; there is nothing to report")
    _check_figures(figures)
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    groups = [figures[i : i + FIGURES_PER_PAGE] for i in range(0, len(figures), FIGURES_PER_PAGE)]
    pages = 1 + len(groups)
    buffer = io.BytesIO()
    with PdfPages(buffer, metadata=PDF_METADATA) as pdf:
        for page in range(1, pages + 1):
            figure = Figure(figsize=A4_SIZE_IN)
            if page == 1:
                _summary_page(figure, regions, model_name, model_version, study_description)
            else:
                _figure_page(figure, groups[page - 2])
            _footer(figure, page, pages)
            pdf.savefig(figure)
    return buffer.getvalue()
