"""Key images of a synthetic functional map fused on the CT, as RGB pictures for any PACS viewer.

Each picture shows the CT in a lung window (W 1500 / L -600 HU) with the map in colour over the
lungs (transparent elsewhere), a colour bar with the map's unit, orientation letters, the
slice's position in mm, and the words :data:`core.dicom.provenance.SYNTHETIC_NOTICE` burned in,
so that nobody mistakes it for a measured SPECT.  Planes are shown in the radiological
convention: axial seen from the feet (patient's right on the image's left, anterior at the top),
coronal seen from the front (head at the top, patient's right on the image's left), with the
true voxel aspect ratio.

Conventions: arrays ``(z, y, x)`` on a canonical LPS :class:`~core.geometry.Grid`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.dicom.provenance import SYNTHETIC_NOTICE
from core.geometry import Grid

LUNG_WINDOW_HU = (-1350.0, 150.0)
"""W 1500 / L -600 HU."""
COLOUR_MAP = "inferno"
OVERLAY_ALPHA = 0.75
FIGURE_SIZE_IN = (8.0, 8.0)
DPI = 96
"""8 x 8 in at 96 dpi: 768 x 768 pixel pictures."""


@dataclass(frozen=True)
class KeyImage:
    """One rendered picture.

    Parameters
    ----------
    title
        What it shows, e.g. ``"Synthetic perfusion, axial, z = -12.0 mm"``.
    plane
        ``"axial"`` or ``"coronal"``.
    index
        Slice index on the canonical grid (axial: z index, coronal: y index).
    position_mm
        LPS coordinate of that plane (axial: z, coronal: y), in mm.
    rgb
        ``(rows, columns, 3)`` uint8.
    """

    title: str
    plane: str
    index: int
    position_mm: float
    rgb: np.ndarray


def key_indices(lung_labels: np.ndarray) -> dict[str, int]:
    """Axial slice and coronal row through the most lung voxels (where a reader would look first)."""
    lungs = lung_labels > 0
    if not lungs.any():
        raise ValueError("the lung mask is empty; there is nothing to show")
    return {
        "axial": int(np.argmax(lungs.sum(axis=(1, 2)))),
        "coronal": int(np.argmax(lungs.sum(axis=(0, 2)))),
    }


def _plane(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """The 2-D picture plane in display orientation (rows top to bottom, columns left to right)."""
    if plane == "axial":
        return volume[index]  # rows: anterior -> posterior, columns: patient right -> left
    return volume[::-1, index, :]  # rows: head -> feet


def render_key_image(
    ct_hu: np.ndarray,
    function_map: np.ndarray,
    lung_labels: np.ndarray,
    grid: Grid,
    *,
    plane: str,
    index: int,
    map_title: str,
    unit_label: str,
) -> KeyImage:
    """Render one fused picture.

    Parameters
    ----------
    ct_hu, function_map, lung_labels
        ``grid.shape`` arrays: CT in HU, the map (Eq. 2 scale, shown over [0, 1]), lung labels.
    grid
        Canonical grid of the arrays.
    plane, index
        ``"axial"`` (z index) or ``"coronal"`` (y index).
    map_title
        E.g. ``"Synthetic perfusion"``.
    unit_label
        Colour bar label.
    """
    # imported when a picture is drawn, not when the app starts; no pyplot, so no global figure state
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if plane not in ("axial", "coronal"):
        raise ValueError(f"plane must be 'axial' or 'coronal', got {plane!r}")
    size = grid.shape[0] if plane == "axial" else grid.shape[1]
    if not 0 <= index < size:
        raise ValueError(f"{plane} index must be in 0..{size - 1}, got {index}")
    dz, dy, dx = grid.spacing_mm
    ct = _plane(ct_hu, plane, index)
    values = _plane(function_map, plane, index)
    lung = _plane(lung_labels, plane, index) > 0
    overlay = np.ma.masked_where(~lung, values)
    aspect = (dy if plane == "axial" else dz) / dx
    _, y, z = grid.origin_lps_mm
    position_mm = z + index * dz if plane == "axial" else y + index * dy
    title = f"{map_title}, {plane}, {'z' if plane == 'axial' else 'y'} = {position_mm:.1f} mm"

    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI, facecolor="black")
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_axes((0.03, 0.1, 0.8, 0.8))
    axes.imshow(ct, cmap="gray", vmin=LUNG_WINDOW_HU[0], vmax=LUNG_WINDOW_HU[1], aspect=aspect)
    shown = axes.imshow(overlay, cmap=COLOUR_MAP, vmin=0.0, vmax=1.0, alpha=OVERLAY_ALPHA, aspect=aspect)
    axes.set_axis_off()
    _orientation_letters(axes, plane)
    bar_axes = figure.add_axes((0.86, 0.2, 0.035, 0.6))
    bar = figure.colorbar(shown, cax=bar_axes)
    bar.set_label(unit_label, color="white", fontsize=11)
    bar.ax.tick_params(colors="white", labelsize=10)
    figure.text(0.5, 0.955, title, color="white", fontsize=14, ha="center", va="center")
    figure.text(0.5, 0.045, SYNTHETIC_NOTICE, color="yellow", fontsize=22, fontweight="bold", ha="center", va="center")
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    return KeyImage(title, plane, index, float(position_mm), rgb)


def _orientation_letters(axes: object, plane: str) -> None:
    """R/L on the sides, A/P or H/F at the top and bottom."""
    top, bottom = ("A", "P") if plane == "axial" else ("H", "F")
    for text, (u, v) in (("R", (0.02, 0.5)), ("L", (0.98, 0.5)), (top, (0.5, 0.98)), (bottom, (0.5, 0.02))):
        axes.text(  # type: ignore[attr-defined]
            u,
            v,
            text,
            color="white",
            fontsize=14,
            ha="center",
            va="center",
            transform=axes.transAxes,  # type: ignore[attr-defined]
        )


def render_key_images(
    ct_hu: np.ndarray,
    maps: dict[str, np.ndarray],
    lung_labels: np.ndarray,
    grid: Grid,
    *,
    unit_label: str,
) -> list[KeyImage]:
    """Axial and coronal pictures of every map (``name -> map``), through :func:`key_indices`."""
    indices = key_indices(lung_labels)
    return [
        render_key_image(
            ct_hu,
            function_map,
            lung_labels,
            grid,
            plane=plane,
            index=index,
            map_title=f"Synthetic {name}",
            unit_label=unit_label,
        )
        for name, function_map in maps.items()
        for plane, index in indices.items()
    ]
