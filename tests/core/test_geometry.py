"""core.geometry.bounding_box against the extent of np.nonzero."""

import numpy as np
import pytest

from core.geometry import bounding_box


def _extent(mask: np.ndarray, margin: list[int]) -> tuple[slice, ...]:
    hits = np.nonzero(mask)
    return tuple(
        slice(max(0, int(h.min()) - m), min(n, int(h.max()) + 1 + m))
        for h, m, n in zip(hits, margin, mask.shape, strict=True)
    )


@pytest.mark.parametrize("shape", [(17,), (9, 13), (7, 11, 5)])
@pytest.mark.parametrize("margin", [0, 2])
def test_bounding_box_is_the_extent_of_the_voxels_grown_and_clipped(shape, margin):
    rng = np.random.default_rng(len(shape) + margin)
    for _ in range(20):
        mask = rng.random(shape) > 0.97
        if not mask.any():
            continue
        assert bounding_box(mask, margin) == _extent(mask, [margin] * len(shape))


def test_bounding_box_per_axis_margin_labels_and_empty():
    labels = np.zeros((10, 10, 10), dtype=np.int32)
    labels[3:5, 0, 6:9] = 2
    assert bounding_box(labels, [1, 2, 3]) == (slice(2, 6), slice(0, 3), slice(3, 10))
    assert bounding_box(np.zeros((4, 4), dtype=bool)) is None
    with pytest.raises(ValueError, match="one value per axis"):
        bounding_box(labels, [1, 2])
