"""Preprocessing of seed 004 (section 4.2) for the stU-Net, shared by the trainer and the app (numpy only).

Seed 004: "Corresponding pairs of raw DSC sequences and CBV maps are individually cropped on square prisms
tightly fitted on the brain voxels, and each slice is then resampled to a 256 x 256 size.  The DSC and CBV
signals are then standardized using the brain content statistics, and clipped to the [-5, 5] interval [...].
All DSC frames are normalized similarly, according to the signal statistics of the first five frames only."
Strips (section 3): rectangular 2D patches sampled with a stride of 8 in training and of 1 at test time,
the test predictions "assembled by averaging".

Here, in this order (:func:`prepare_dsc`):

1. time: the sequence is resampled to the model's ``frames`` at its ``frame_step_s`` from the first frame
   (linear interpolation; past the last acquired frame the last frame is repeated), :func:`resample_frames`;
2. space: one square per case, the in-plane bounding box of the brain over all slices made square around
   its centre with a margin, kept inside the image where it fits (zero signal where it does not), every
   slice resampled to ``size x size`` by :func:`scipy.ndimage.zoom` (order 1, corners aligned),
   :class:`BrainCrop`; the brain mask follows by linear interpolation and a threshold of 0.5;
3. values: the DSC by the mean and SD of the brain voxels of the first :data:`BASELINE_FRAMES` frames,
   a CBV map by the mean and SD of its own brain voxels, both clipped to ``[-CLIP, CLIP]``.

Statistics are taken on the cropped and resampled grid (what the network sees).  Predictions go back
onto the acquisition grid with :meth:`BrainCrop.paste_inside`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from core.errors import InputDataError

logger = logging.getLogger(__name__)

CLIP = 5.0
"""Standardised values are clipped to ``[-CLIP, CLIP]`` (seed 004)."""
BASELINE_FRAMES = 5
"""DSC frames whose brain statistics standardise the whole sequence (seed 004: "the first five frames")."""
MASK_THRESHOLD = 0.5
"""A resampled voxel belongs to the brain when the linearly interpolated 0/1 mask reaches this."""
PREPROCESSING = {
    "time": "core.perfusion.stunet_preprocessing.resample_frames",
    "crop": "core.perfusion.stunet_preprocessing.BrainCrop",
    "dsc": "core.perfusion.stunet_preprocessing.standardise_dsc",
    "cbv": "core.perfusion.stunet_preprocessing.standardise_map",
    "strips": "core.perfusion.stunet_preprocessing.strip_positions",
    "assembly": "core.perfusion.stunet_preprocessing.assemble_strips",
}
"""Names of the steps, written into the model's ``metadata.json`` and checked by the app."""


@dataclass(frozen=True)
class BrainCrop:
    """An in-plane square of the acquisition grid around the brain, and its resampling to ``size x size``.

    Attributes
    ----------
    y0, x0 : int
        Row and column of the square's first voxel on the acquisition grid (may be negative, or the
        square may end past the image, when the square is larger than the image).
    side : int
        Side of the square, voxels of the acquisition grid.
    size : int
        Side after resampling (the network's grid).
    shape : tuple of int
        ``(ny, nx)`` of the acquisition grid.
    """

    y0: int
    x0: int
    side: int
    size: int
    shape: tuple[int, int]

    @classmethod
    def around(cls, brain_mask: np.ndarray, size: int, margin_voxels: int = 4) -> BrainCrop:
        """The square prism tightly fitted on ``brain_mask`` ``(nz, ny, nx)``, widened by ``margin_voxels``.

        The in-plane bounding box of every slice's brain voxels, its longer side plus ``2 margin_voxels``,
        centred on the box; shifted to lie inside the image when it fits.

        Raises
        ------
        InputDataError
            If the mask holds no brain voxel.
        ValueError
            If the mask is not 3-D, ``size`` is not positive or ``margin_voxels`` is negative.
        """
        mask = np.asarray(brain_mask, dtype=bool)
        if mask.ndim != 3 or size < 1 or margin_voxels < 0:
            raise ValueError(
                f"BrainCrop.around needs a (nz, ny, nx) mask, size >= 1 and margin_voxels >= 0; "
                f"got shape {mask.shape}, size {size}, margin_voxels {margin_voxels}"
            )
        in_plane = np.any(mask, axis=0)
        if not in_plane.any():
            raise InputDataError("the brain mask is empty: there is nothing to crop for the stU-Net")
        rows, cols = np.flatnonzero(in_plane.any(axis=1)), np.flatnonzero(in_plane.any(axis=0))
        side = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 + 2 * margin_voxels
        corners = []
        for first, last, n in ((rows[0], rows[-1], in_plane.shape[0]), (cols[0], cols[-1], in_plane.shape[1])):
            start = (int(first) + int(last) + 1 - side) // 2
            if side <= n:
                start = min(max(start, 0), n - side)
            corners.append(int(start))
        return cls(corners[0], corners[1], int(side), int(size), (int(in_plane.shape[0]), int(in_plane.shape[1])))

    def _overlap(self) -> tuple[slice, slice, slice, slice]:
        """Where image and square overlap: rows and columns of the image, then of the square."""
        ny, nx = self.shape
        y_lo, y_hi = max(self.y0, 0), min(self.y0 + self.side, ny)
        x_lo, x_hi = max(self.x0, 0), min(self.x0 + self.side, nx)
        return (
            slice(y_lo, y_hi),
            slice(x_lo, x_hi),
            slice(y_lo - self.y0, y_hi - self.y0),
            slice(x_lo - self.x0, x_hi - self.x0),
        )

    def _zoom(self, image: np.ndarray, factor: float, side: int) -> np.ndarray:
        if factor == 1.0:
            return image.astype(np.float32)
        # slice by slice: the same values as one N-D zoom with factor 1 on the leading axes, about 3x faster
        planes = image.reshape(-1, *image.shape[-2:])
        zoomed = np.stack([ndimage.zoom(plane, factor, order=1, mode="nearest") for plane in planes])
        if zoomed.shape[-2:] != (side, side):
            raise AssertionError(f"zoom gave {zoomed.shape[-2:]}, expected {(side, side)}")
        return zoomed.reshape(*image.shape[:-2], side, side).astype(np.float32)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Cut the square from ``(..., ny, nx)`` (zero where it leaves the image), resample to ``(..., size, size)``.

        Returns float32; linear interpolation with the corner voxels' centres aligned (``scipy.ndimage.zoom``).
        """
        image = np.asarray(image)
        if image.shape[-2:] != self.shape:
            raise ValueError(f"BrainCrop of a {self.shape} grid applied to an image of shape {image.shape}")
        square = np.zeros((*image.shape[:-2], self.side, self.side), dtype=np.float32)
        rows, cols, square_rows, square_cols = self._overlap()
        square[..., square_rows, square_cols] = image[..., rows, cols]
        return self._zoom(square, self.size / self.side, self.size)

    def apply_mask(self, mask: np.ndarray) -> np.ndarray:
        """A ``(..., ny, nx)`` mask on the network's grid: :meth:`apply` of 0/1, then ``>= MASK_THRESHOLD``."""
        return self.apply(np.asarray(mask, dtype=np.float32)) >= MASK_THRESHOLD

    def paste(self, image: np.ndarray) -> np.ndarray:
        """A ``(..., size, size)`` map back on the acquisition grid ``(..., ny, nx)``; float32, 0 off the square."""
        image = np.asarray(image, dtype=np.float32)
        if image.shape[-2:] != (self.size, self.size):
            raise ValueError(f"BrainCrop.paste expects (..., {self.size}, {self.size}), got shape {image.shape}")
        square = self._zoom(image, self.side / self.size, self.side)
        out = np.zeros((*image.shape[:-2], *self.shape), dtype=np.float32)
        rows, cols, square_rows, square_cols = self._overlap()
        out[..., rows, cols] = square[..., square_rows, square_cols]
        return out

    def paste_inside(self, image: np.ndarray, brain: np.ndarray) -> np.ndarray:
        """:meth:`paste` of a map defined inside ``brain`` (the network's grid), normalised by the pasted brain.

        ``paste(image * brain) / paste(brain)`` where the denominator is positive, else 0: at the brain's
        edge the interpolation does not blend the map with the zeros outside the brain.
        """
        inside = np.asarray(brain, dtype=np.float32)
        weights = self.paste(inside)
        values = self.paste(np.asarray(image, dtype=np.float32) * inside)
        return np.divide(values, weights, out=np.zeros_like(values), where=weights > 1e-6).astype(np.float32)


def resample_frames(signal: np.ndarray, times_s: np.ndarray, frames: int, frame_step_s: float) -> np.ndarray:
    """The sequence at ``frames`` times ``times_s[0] + k frame_step_s``, by linear interpolation along axis 0.

    Parameters
    ----------
    signal : np.ndarray
        ``(T, ...)`` DSC signal, any unit.
    times_s : np.ndarray
        ``(T,)`` strictly increasing acquisition times of the frames (s).
    frames : int
        Frames of the result.
    frame_step_s : float
        Time between the result's frames (s).

    Returns
    -------
    np.ndarray
        ``(frames, ...)`` float32.  Past the last acquired time the last frame is repeated; an
        acquisition already at ``frame_step_s`` is returned unchanged (up to float32).
    """
    signal = np.asarray(signal, dtype=np.float32)
    times = np.asarray(times_s, dtype=np.float64)
    if times.ndim != 1 or len(times) != len(signal) or len(times) < 2:
        raise InputDataError(
            f"need at least two frames with one time each; got {len(signal)} frames, times {times.shape}"
        )
    if not np.all(np.diff(times) > 0):
        raise InputDataError("frame times must be strictly increasing")
    if frames < 1 or not frame_step_s > 0:
        raise ValueError(f"frames must be >= 1 and frame_step_s > 0, got {frames} and {frame_step_s}")
    target = times[0] + np.arange(frames) * float(frame_step_s)
    index = np.clip(np.searchsorted(times, target, side="right") - 1, 0, len(times) - 2)
    weight = np.clip((target - times[index]) / (times[index + 1] - times[index]), 0.0, 1.0)
    shape = (frames,) + (1,) * (signal.ndim - 1)
    w = weight.reshape(shape).astype(np.float32)
    return ((1.0 - w) * signal[index] + w * signal[index + 1]).astype(np.float32)


def _standardise(values: np.ndarray, image: np.ndarray, clip: float, what: str) -> np.ndarray:
    if values.size == 0:
        raise InputDataError(f"cannot standardise the {what}: the brain mask is empty")
    mean, sd = float(values.mean()), float(values.std())
    if not sd > 0:
        logger.warning("the %s is constant over the brain (SD 0); it is only centred", what)
        sd = 1.0
    return np.clip((np.asarray(image, dtype=np.float32) - mean) / sd, -clip, clip).astype(np.float32)


def standardise_dsc(
    dsc: np.ndarray, brain_mask: np.ndarray, baseline_frames: int = BASELINE_FRAMES, clip: float = CLIP
) -> np.ndarray:
    """``clip((S - mean) / SD)`` with the mean and SD of the brain voxels of the first ``baseline_frames`` frames.

    ``dsc`` is ``(T, ...)``, ``brain_mask`` the shape of one frame; returns float32 of ``dsc``'s shape.
    A constant baseline (SD 0) is only centred, with a warning.
    """
    mask = np.asarray(brain_mask, dtype=bool)
    if dsc.shape[1:] != mask.shape:
        raise ValueError(f"brain mask {mask.shape} does not match the frames {dsc.shape[1:]}")
    baseline = dsc[: max(1, baseline_frames)][:, mask]
    return _standardise(baseline, dsc, clip, "DSC baseline")


def standardise_map(image: np.ndarray, brain_mask: np.ndarray, clip: float = CLIP) -> np.ndarray:
    """``clip((M - mean) / SD)`` with the mean and SD of ``image`` over ``brain_mask`` (same shape); float32."""
    mask = np.asarray(brain_mask, dtype=bool)
    if image.shape != mask.shape:
        raise ValueError(f"brain mask {mask.shape} does not match the map {image.shape}")
    return _standardise(np.asarray(image)[mask], image, clip, "map")


@dataclass(frozen=True)
class PreparedDsc:
    """A DSC sequence on the network's grid.

    Attributes
    ----------
    dsc : np.ndarray
        ``(frames, nz, size, size)`` float32, standardised and clipped.
    brain : np.ndarray
        ``(nz, size, size)`` bool brain mask on that grid.
    crop : BrainCrop
        The square it came from, to put maps back with :meth:`BrainCrop.paste_inside`.
    """

    dsc: np.ndarray
    brain: np.ndarray
    crop: BrainCrop


def prepare_dsc(
    signal: np.ndarray,
    times_s: np.ndarray,
    brain_mask: np.ndarray,
    *,
    size: int,
    frames: int,
    frame_step_s: float,
    margin_voxels: int,
    baseline_frames: int = BASELINE_FRAMES,
    clip: float = CLIP,
) -> PreparedDsc:
    """Seed 004's preprocessing of a ``(T, nz, ny, nx)`` signal with its ``(nz, ny, nx)`` brain mask (module doc)."""
    signal = np.asarray(signal)
    if signal.ndim != 4 or signal.shape[1:] != np.shape(brain_mask):
        raise InputDataError(
            f"DSC signal must be (T, nz, ny, nx) with a (nz, ny, nx) brain mask; got {signal.shape} and "
            f"{np.shape(brain_mask)}"
        )
    crop = BrainCrop.around(brain_mask, size, margin_voxels)
    brain = crop.apply_mask(brain_mask)
    if not brain.any():
        raise InputDataError("the brain mask vanishes on the network's grid; it is too small for the stU-Net")
    timed = resample_frames(signal, times_s, frames, frame_step_s)
    dsc = standardise_dsc(crop.apply(timed), brain, baseline_frames, clip)
    return PreparedDsc(dsc, brain, crop)


def prepare_map(image: np.ndarray, crop: BrainCrop, brain: np.ndarray, clip: float = CLIP) -> np.ndarray:
    """A ``(nz, ny, nx)`` map (CBV) on the network's grid, standardised over ``brain`` (that grid) and clipped."""
    return standardise_map(crop.apply(image), brain, clip)


def strip_positions(height: int, width: int, strip_shape: tuple[int, int], stride: int) -> np.ndarray:
    """Top-left corners ``(n, 2)`` (row, column) of the strips covering a ``height x width`` image.

    Corners every ``stride`` voxels along both axes from 0, plus the last possible corner when the
    stride does not land on it, so that every voxel is covered.
    """
    strip_h, strip_w = strip_shape
    if not (0 < strip_h <= height and 0 < strip_w <= width) or stride < 1:
        raise ValueError(f"strips {strip_shape} with stride {stride} do not fit a {height} x {width} image")
    axes = []
    for n, s in ((height, strip_h), (width, strip_w)):
        starts = list(range(0, n - s + 1, stride))
        if starts[-1] != n - s:
            starts.append(n - s)
        axes.append(starts)
    return np.array([(y, x) for y in axes[0] for x in axes[1]], dtype=np.int64)


def extract_strips(image: np.ndarray, positions: np.ndarray, strip_shape: tuple[int, int]) -> np.ndarray:
    """The strips of ``image`` ``(..., H, W)`` at ``positions`` ``(n, 2)``: ``(n, ..., strip_h, strip_w)``."""
    strip_h, strip_w = strip_shape
    return np.stack([image[..., y : y + strip_h, x : x + strip_w] for y, x in positions])


def assemble_strips(strips: np.ndarray, positions: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Average overlapping ``(n, strip_h, strip_w)`` strip predictions into a ``shape`` image (float32).

    Voxels that no strip covers are 0.
    """
    total = np.zeros(shape, dtype=np.float64)
    count = np.zeros(shape, dtype=np.int64)
    strip_h, strip_w = strips.shape[-2:]
    for strip, (y, x) in zip(strips, positions, strict=True):
        total[y : y + strip_h, x : x + strip_w] += strip
        count[y : y + strip_h, x : x + strip_w] += 1
    return np.divide(total, count, out=np.zeros(shape), where=count > 0).astype(np.float32)
