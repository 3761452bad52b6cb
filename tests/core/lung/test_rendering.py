"""Key-image rendering: picture size, key slices, radiological orientation, overlay only on the lungs, burned-in notice.

The grid is chosen so that both planes fill a square picture (axial 40 x 40 mm, coronal 40 x 40 mm),
so that the drawn CT occupies one rectangle found from its grey pixels: the CT is -600 HU
everywhere (mid-grey in a W 1500 / L -600 window), the map is 1.0 everywhere (so any pixel coloured
outside the lung would show), and the lung is one box.  Pixel positions are compared with the
box's position on the grid within :data:`EDGE_PX` (antialiased edges).
"""

from __future__ import annotations

import numpy as np
import pytest

import core.lung.rendering as rendering
from core.geometry import Grid
from core.labels import LungLabel
from core.lung.rendering import KeyImage, key_indices, render_key_image, render_key_images

GRID = Grid((16, 40, 40), (2.5, 1.0, 1.0), (-20.0, -30.0, -100.0))
"""x 40 mm, y 40 mm, z 40 mm: square axial and coronal pictures."""
PICTURE_SHAPE = (768, 768, 3)
CT_HU = -600.0
MID_GREY = 128
GREY_TOLERANCE = 8
"""-600 HU in a [-1350, 150] window is 127.5 of 255; the CT pixels lie within this of 128."""
COLOURED = 20
"""max - min channel above which a pixel counts as coloured."""
EDGE_PX = 3
MIN_PICTURE_PX = 500
"""Rows and columns of the drawn CT: at least this many CT pixels each (text and colour bar have far fewer)."""
BOTTOM_BAND = 0.9
"""The notice is burned in below this fraction of the picture height."""


def lung_box(x: slice, y: slice, z: slice) -> np.ndarray:
    labels = np.zeros(GRID.shape, dtype=np.uint8)
    labels[z, y, x] = LungLabel.RIGHT_LUNG
    return labels


def render(labels: np.ndarray) -> list[KeyImage]:
    ct = np.full(GRID.shape, CT_HU)
    perfusion = np.ones(GRID.shape, dtype=np.float32)
    return render_key_images(ct, {"perfusion": perfusion}, labels, GRID, unit_label="relative")


def picture_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """First row, last row + 1, first column, last column + 1 of the drawn CT (mid-grey pixels)."""
    rgb = rgb.astype(int)
    ct = (np.ptp(rgb, axis=-1) == 0) & (np.abs(rgb[..., 0] - MID_GREY) <= GREY_TOLERANCE)
    rows = np.flatnonzero(ct.sum(axis=1) >= MIN_PICTURE_PX // 2)
    cols = np.flatnonzero(ct.sum(axis=0) >= MIN_PICTURE_PX // 2)
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    assert bottom - top >= MIN_PICTURE_PX and abs((bottom - top) - (right - left)) <= 2  # square, as the grid
    return top, bottom, left, right


def expected_overlay(rgb: np.ndarray, rows: tuple[float, float], cols: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """Inside, outside and coloured masks of the picture, for a box spanning fractions ``rows``/``cols`` of the CT."""
    top, bottom, left, right = picture_box(rgb)
    r0, r1 = top + rows[0] * (bottom - top), top + rows[1] * (bottom - top)
    c0, c1 = left + cols[0] * (right - left), left + cols[1] * (right - left)
    r, c = np.mgrid[: rgb.shape[0], : rgb.shape[1]]
    in_ct = (r >= top) & (r < bottom) & (c >= left) & (c < right)
    inside = (r >= r0 + EDGE_PX) & (r < r1 - EDGE_PX) & (c >= c0 + EDGE_PX) & (c < c1 - EDGE_PX)
    near = (r >= r0 - EDGE_PX) & (r < r1 + EDGE_PX) & (c >= c0 - EDGE_PX) & (c < c1 + EDGE_PX)
    coloured = np.ptp(rgb.astype(int), axis=-1) > COLOURED
    return inside, in_ct & ~near, coloured


def yellow(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(int)
    return (rgb[..., 0] > 200) & (rgb[..., 1] > 200) & (rgb[..., 2] < 80)


@pytest.fixture(scope="module")
def pictures() -> list[KeyImage]:
    """Lung box on the patient's right (low x), anterior (low y), near the head (high z)."""
    return render(lung_box(x=slice(2, 12), y=slice(4, 12), z=slice(10, 14)))


def test_pictures_are_rgb_uint8_of_fixed_size(pictures: list[KeyImage]) -> None:
    assert [p.plane for p in pictures] == ["axial", "coronal"]
    for picture in pictures:
        assert picture.rgb.dtype == np.uint8
        assert picture.rgb.shape == PICTURE_SHAPE


def test_position_and_title_of_the_key_planes(pictures: list[KeyImage]) -> None:
    axial, coronal = pictures
    assert axial.index == 10 and coronal.index == 4  # first of the equally full slices / rows
    assert axial.position_mm == pytest.approx(-100.0 + 10 * 2.5)
    assert coronal.position_mm == pytest.approx(-30.0 + 4 * 1.0)
    assert "Synthetic perfusion" in axial.title and "-75.0 mm" in axial.title
    assert "coronal" in coronal.title and "-26.0 mm" in coronal.title


@pytest.mark.parametrize(
    ("x", "z", "cols", "rows_coronal"),
    [
        # patient's right (x index 2-11 of 40) is on the picture's left; z 10-13 of 16 is near the head
        (slice(2, 12), slice(10, 14), (2 / 40, 12 / 40), (2 / 16, 6 / 16)),
        # patient's left (x index 26-37) on the picture's right; z 1-4 near the feet
        (slice(26, 38), slice(1, 5), (26 / 40, 38 / 40), (11 / 16, 15 / 16)),
    ],
    ids=["right-head", "left-feet"],
)
def test_overlay_is_radiological_and_only_on_the_lungs(x: slice, z: slice, cols, rows_coronal) -> None:
    y = slice(4, 12)  # anterior: the top of the axial picture
    axial, coronal = render(lung_box(x=x, y=y, z=z))
    for picture, rows in ((axial, (4 / 40, 12 / 40)), (coronal, rows_coronal)):
        inside, outside, coloured = expected_overlay(picture.rgb, rows, cols)
        assert coloured[inside].all(), picture.plane
        assert not coloured[outside].any(), picture.plane
        away = picture.rgb[outside].astype(int)
        np.testing.assert_array_equal(np.ptp(away, axis=-1), 0)  # grey: R == G == B


def test_blob_sides_in_picture_halves(pictures: list[KeyImage]) -> None:
    """The box on the patient's right and near the head: left half (both planes), top half (coronal)."""
    for picture in pictures:
        top, bottom, left, right = picture_box(picture.rgb)
        coloured = np.ptp(picture.rgb[top:bottom, left:right].astype(int), axis=-1) > COLOURED
        rows, cols = np.nonzero(coloured)
        assert rows.size > 0
        assert cols.max() < (right - left) / 2, picture.plane
        assert rows.max() < (bottom - top) / 2, picture.plane  # anterior (axial) and head (coronal) at the top


def test_synthetic_notice_is_burned_in_yellow(pictures: list[KeyImage]) -> None:
    for picture in pictures:
        band = int(BOTTOM_BAND * picture.rgb.shape[0])
        rows, cols = np.nonzero(yellow(picture.rgb))
        assert rows.size > 500
        assert rows.min() >= band  # only in the bottom band
        assert cols.max() - cols.min() > picture.rgb.shape[1] // 4  # a line of words, not a dot


def test_without_notice_no_yellow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rendering, "SYNTHETIC_NOTICE", "")
    labels = lung_box(x=slice(2, 12), y=slice(4, 12), z=slice(10, 14))
    picture = render_key_image(
        np.full(GRID.shape, CT_HU),
        np.ones(GRID.shape, dtype=np.float32),
        labels,
        GRID,
        plane="axial",
        index=10,
        map_title="Synthetic perfusion",
        unit_label="relative",
    )
    assert not yellow(picture.rgb).any()


def test_rendering_is_deterministic(pictures: list[KeyImage]) -> None:
    again = render(lung_box(x=slice(2, 12), y=slice(4, 12), z=slice(10, 14)))
    for first, second in zip(pictures, again, strict=True):
        np.testing.assert_array_equal(first.rgb, second.rgb)


def test_key_indices_pick_the_fullest_slice_and_row() -> None:
    labels = np.zeros(GRID.shape, dtype=np.uint8)
    labels[9, 3:8, 2:12] = LungLabel.RIGHT_LUNG  # slice 9: 50 voxels, rows 3-7: 10 each
    labels[5, 20:23, 2:12] = LungLabel.LEFT_LUNG  # slice 5: 30 voxels, rows 20-22: 10 each
    labels[2, 30, :] = LungLabel.LEFT_LUNG  # slice 2: 40 voxels, row 30: 40 voxels
    assert key_indices(labels) == {"axial": 9, "coronal": 30}


def test_one_picture_per_map_and_plane() -> None:
    labels = lung_box(x=slice(2, 12), y=slice(4, 12), z=slice(10, 14))
    maps = {"perfusion": np.ones(GRID.shape, np.float32), "ventilation": np.zeros(GRID.shape, np.float32)}
    images = render_key_images(np.full(GRID.shape, CT_HU), maps, labels, GRID, unit_label="relative")
    assert [(i.title.split(",")[0], i.plane) for i in images] == [
        ("Synthetic perfusion", "axial"),
        ("Synthetic perfusion", "coronal"),
        ("Synthetic ventilation", "axial"),
        ("Synthetic ventilation", "coronal"),
    ]


def test_bad_plane_is_refused() -> None:
    labels = lung_box(x=slice(2, 12), y=slice(4, 12), z=slice(10, 14))
    with pytest.raises(ValueError, match="plane"):
        render_key_image(
            np.full(GRID.shape, CT_HU),
            np.ones(GRID.shape, np.float32),
            labels,
            GRID,
            plane="sagittal",
            index=5,
            map_title="Synthetic perfusion",
            unit_label="relative",
        )


def test_empty_lung_mask_is_refused() -> None:
    empty = np.zeros(GRID.shape, dtype=np.uint8)
    with pytest.raises(ValueError, match="empty"):
        key_indices(empty)
    with pytest.raises(ValueError, match="empty"):
        render(empty)
