"""Summary pictures of a CT perfusion result: CBF and Tmax over the baseline CT with the stroke lesions outlined.

One RGB picture per axial slice that holds brain tissue: a header with the lesion volumes (core,
hypoperfusion, mismatch volume and ratio), the method and the reference CBF; then the CBF map
(0-80 ml/100 g/min) and the Tmax map (0-15 s) side by side, each in colour over the baseline CT in
a brain window (W 80 / L 40 HU), with the ischaemic core outlined in red and the hypoperfusion in
green; orientation letters; and :data:`core.dicom.provenance.SYNTHETIC_NOTICE` burned in.  Slices
are shown as stored (radiological convention for an axial head-first series: the patient's right
on the picture's left, anterior at the top), with the true pixel aspect ratio.

Conventions: arrays ``(z, y, x)`` in the CT volume layout of the CTP's first frame (slice 0 the
most inferior); volumes in ml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from core.dicom.provenance import SYNTHETIC_NOTICE
from core.lung.rendering import KeyImage

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

BRAIN_WINDOW_HU = (0.0, 80.0)
"""W 80 / L 40 HU."""
CBF_RANGE = (0.0, 80.0)
"""Colour range of the CBF panel (ml/100 g/min)."""
TMAX_RANGE = (0.0, 15.0)
"""Colour range of the Tmax panel (s)."""
COLOUR_MAP = "turbo"
OVERLAY_ALPHA = 0.8
CORE_COLOUR = "red"
HYPOPERFUSION_COLOUR = "lime"
FIGURE_SIZE_IN = (10.0, 6.4)
DPI = 96
"""10 x 6.4 in at 96 dpi: 960 x 614 pixel pictures."""
METHOD_LABELS = {"ssvd": "sSVD", "csvd": "block-circulant SVD", "osvd": "oSVD", "network": "Transformer network"}


@dataclass(frozen=True)
class CtpSummary:
    """What every summary picture says in its header.

    Parameters
    ----------
    volumes_ml
        :meth:`core.perfusion.lesions.StrokeLesions.volumes_ml`: ``core_ml``, ``hypoperfusion_ml``,
        ``mismatch_ml`` (ml) and ``mismatch_ratio`` (``inf`` without a core).
    method
        :attr:`core.perfusion.ctp.CtpResult.method`, e.g. ``"osvd"``.
    reference_cbf_ml_100g_min
        Mean CBF of normally perfused tissue, which the core threshold is relative to.
    """

    volumes_ml: dict[str, float]
    method: str
    reference_cbf_ml_100g_min: float

    def header_lines(self) -> list[str]:
        """Two lines: the lesion volumes, then the mismatch, method and reference CBF."""
        v = self.volumes_ml
        ratio = "n/a (no core)" if not np.isfinite(v["mismatch_ratio"]) else f"{v['mismatch_ratio']:.1f}"
        method = METHOD_LABELS.get(self.method, self.method)
        return [
            f"Core (rCBF < 30 %, red) {v['core_ml']:.1f} ml    "
            f"Hypoperfusion (Tmax > 6 s, green) {v['hypoperfusion_ml']:.1f} ml",
            f"Mismatch {v['mismatch_ml']:.1f} ml, ratio {ratio}    Method {method}    "
            f"Reference CBF {self.reference_cbf_ml_100g_min:.1f} ml/100 g/min",
        ]


def summary_slices(tissue_mask: np.ndarray) -> list[int]:
    """Indices of the slices that hold brain tissue (the slices worth a picture), inferior to superior."""
    return [int(k) for k in np.flatnonzero(tissue_mask.reshape(len(tissue_mask), -1).any(axis=1))]


def _panel(
    axes: Axes,
    ct: np.ndarray,
    values: np.ndarray,
    masks: tuple[np.ndarray, np.ndarray, np.ndarray],
    value_range: tuple[float, float],
    aspect: float,
) -> object:
    """One map over the CT grey, transparent outside the tissue, with the lesions outlined; returns the image."""
    tissue, core, hypoperfusion = masks
    axes.imshow(ct, cmap="gray", vmin=BRAIN_WINDOW_HU[0], vmax=BRAIN_WINDOW_HU[1], aspect=aspect)
    shown = axes.imshow(
        np.ma.masked_where(~tissue, values),
        cmap=COLOUR_MAP,
        vmin=value_range[0],
        vmax=value_range[1],
        alpha=OVERLAY_ALPHA,
        aspect=aspect,
    )
    for mask, colour in ((hypoperfusion, HYPOPERFUSION_COLOUR), (core, CORE_COLOUR)):
        if mask.any():
            axes.contour(mask.astype(np.float32), levels=[0.5], colors=colour, linewidths=1.5)
    axes.set_axis_off()
    for text, (u, v) in (("R", (0.03, 0.5)), ("L", (0.97, 0.5)), ("A", (0.5, 0.97)), ("P", (0.5, 0.03))):
        axes.text(u, v, text, color="white", fontsize=12, ha="center", va="center", transform=axes.transAxes)
    return shown


def _colour_bar(figure: Figure, shown: object, left: float) -> None:
    """A colour bar right of a panel (the panel's title names the quantity and unit)."""
    bar = figure.colorbar(shown, cax=figure.add_axes((left, 0.17, 0.015, 0.55)))  # type: ignore[arg-type]
    bar.ax.tick_params(colors="white", labelsize=9)


def render_summary_image(
    baseline_hu: np.ndarray,
    cbf_ml_100g_min: np.ndarray,
    tmax_s: np.ndarray,
    masks: tuple[np.ndarray, np.ndarray, np.ndarray],
    summary: CtpSummary,
    *,
    index: int,
    position_mm: float,
    pixel_aspect: float,
) -> KeyImage:
    """Render the summary picture of axial slice ``index``.

    Parameters
    ----------
    baseline_hu, cbf_ml_100g_min, tmax_s
        ``(z, y, x)`` pre-contrast CT (HU), CBF (ml/100 g/min) and Tmax (s).
    masks
        ``(z, y, x)`` boolean tissue, ischaemic core and hypoperfusion masks.
    summary
        Volumes, method and reference CBF for the header.
    index
        Slice index (0 = most inferior).
    position_mm
        ImagePositionPatient z of that slice (mm), shown in the title.
    pixel_aspect
        Row spacing / column spacing (dy / dx).

    Returns
    -------
    KeyImage
        ``(614, 960, 3)`` uint8 picture, plane ``"axial"``.
    """
    # imported when a picture is drawn, not when the app starts; no pyplot, so no global figure state
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not 0 <= index < len(baseline_hu):
        raise ValueError(f"slice index must be in 0..{len(baseline_hu) - 1}, got {index}")
    title = f"CT perfusion, slice {index + 1}/{len(baseline_hu)}, z = {position_mm:.1f} mm"
    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI, facecolor="black")
    canvas = FigureCanvasAgg(figure)
    slice_masks = (masks[0][index], masks[1][index], masks[2][index])
    panels = (
        (cbf_ml_100g_min[index], CBF_RANGE, "CBF (ml/100 g/min)", 0.02, 0.455),
        (tmax_s[index], TMAX_RANGE, "Tmax (s)", 0.5, 0.935),
    )
    for values, value_range, label, left, bar_left in panels:
        axes = figure.add_axes((left, 0.12, 0.42, 0.66))
        shown = _panel(axes, baseline_hu[index], values, slice_masks, value_range, pixel_aspect)
        axes.set_title(label, color="white", fontsize=13)
        _colour_bar(figure, shown, bar_left)
    figure.text(0.5, 0.955, title, color="white", fontsize=14, ha="center", va="center")
    for row, line in enumerate(summary.header_lines()):
        figure.text(0.5, 0.91 - 0.04 * row, line, color="white", fontsize=11, ha="center", va="center")
    figure.text(0.5, 0.05, SYNTHETIC_NOTICE, color="yellow", fontsize=20, fontweight="bold", ha="center", va="center")
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    return KeyImage(title, "axial", index, float(position_mm), rgb)
