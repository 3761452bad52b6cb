"""Left and right lung masks from a CT volume, classical image processing, in patient space.

Pipeline (after lungmask's pre/post-processing ideas: body mask first, keep the large
components, fill holes, label by side; the network itself is replaced by thresholds and
morphology because its weights cannot be downloaded here):

1. reorient to canonical LPS (:mod:`core.orientation`) and average blocks of voxels down to a
   working grid of about 2.5 mm (speed: a 512x512x300 CT becomes ~20x fewer voxels);
2. body: the largest component above -500 HU, holes filled slice by slice; so nothing outside
   the patient (air around the body, the table) can become lung;
3. lung candidates: air inside the body (< -400 HU) whose mean is lung-like (-980..-500 HU:
   bowel and stomach gas, ~-1000 HU, are rejected) and whose volume is at least ``min_lung_ml``;
4. central airways: the trachea is found in the upper slices as a small, round, very dark
   (< -950 HU) component near the midline and tracked slice by slice down to the main bronchi
   (``main_bronchus_mm`` below the carina); it is removed from the lungs;
5. left/right: the two largest components; if the lungs touch (one component), erode until
   they separate and give each voxel the label of the nearest seed;
6. dense pathology inside the lung (tumour, consolidation, fibrosis) is included by a
   closing of radius ``closing_mm`` (fills pleura-based lesions up to about that radius) and by
   filling holes;
7. back on the full-resolution grid, voxels within one working voxel of the boundary are
   decided by the threshold at full resolution, so the boundary is not blocky.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from core.errors import NoLungsFoundError
from core.geometry import Grid, bounding_box
from core.labels import LungLabel
from core.orientation import canonical
from core.simulation.shapes import block_mean

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentationParams:
    """Thresholds (HU) and sizes (mm, mL); defaults tuned on phantoms, checked on real CT slices."""

    working_voxel_mm: float = 2.5
    body_hu: float = -500.0
    air_hu: float = -400.0
    lung_mean_hu: tuple[float, float] = (-980.0, -500.0)
    min_lung_ml: float = 15.0
    trachea_hu: float = -950.0
    main_bronchus_mm: float = 30.0
    closing_mm: float = 25.0


def segment_lungs(
    volume_hu: np.ndarray, affine_lps: np.ndarray, params: SegmentationParams | None = None
) -> np.ndarray:
    """Lung mask (uint8 :class:`LungLabel`: 0, 1 right, 2 left) in the array layout of ``volume_hu``.

    Parameters
    ----------
    volume_hu
        3-D CT in HU (rescale slope/intercept already applied), any axis order or direction.
    affine_lps
        4x4 index-to-LPS affine (see :mod:`core.orientation`).

    Raises
    ------
    NoLungsFoundError
        If the CT holds no lungs (e.g. abdomen-only) or only a sliver of lung below ``min_lung_ml``.
    """
    hu, grid, reorientation = canonical(volume_hu, affine_lps)
    mask = segment_lungs_canonical(np.ascontiguousarray(hu), grid, params or SegmentationParams())
    return np.ascontiguousarray(reorientation.to_original(mask))


def segment_lungs_canonical(hu: np.ndarray, grid: Grid, params: SegmentationParams) -> np.ndarray:
    """:func:`segment_lungs` on a canonical ``(z, y, x)`` LPS volume."""
    factors = tuple(max(1, round(params.working_voxel_mm / s)) for s in grid.spacing_mm)
    coarse = block_mean(hu, factors)  # type: ignore[arg-type]
    spacing = tuple(s * f for s, f in zip(grid.spacing_mm, factors))
    body = _body(coarse, params)
    air = (coarse < params.air_hu) & body
    airways = _central_airways(coarse, air, spacing, params)
    candidates = _lung_components(coarse, air & ~airways, spacing, params)
    labels = _split_left_right(candidates, spacing)
    labels = _include_dense_pathology(labels, body & ~airways, spacing, params)
    return _refine(hu, labels, coarse >= params.air_hu, airways, factors, params)


def _body(coarse: np.ndarray, params: SegmentationParams) -> np.ndarray:
    """Largest component above ``body_hu``, holes filled in every axial slice."""
    dense, n = ndimage.label(coarse > params.body_hu)
    if n == 0:
        raise NoLungsFoundError("no body found in the CT (no voxel above -500 HU); is this a CT image?")
    sizes = ndimage.sum_labels(np.ones_like(dense), dense, index=np.arange(1, n + 1))
    body = dense == (int(np.argmax(sizes)) + 1)
    for k in range(body.shape[0]):
        body[k] = ndimage.binary_fill_holes(body[k])
    return body


def _central_airways(
    coarse: np.ndarray, air: np.ndarray, spacing: tuple[float, ...], params: SegmentationParams
) -> np.ndarray:
    """Trachea and main bronchi, tracked slice by slice from a seed in the trachea.

    Going down, a slice keeps the very dark blobs that overlap the airway of the slice above; a
    blob that has spread into dark lung (emphysema) is cut back to the neighbourhood of the
    airway above.  Tracking stops ``main_bronchus_mm`` below the carina (where the airway splits).
    """
    seed = _trachea_seed(coarse, air, spacing, params)
    airway = np.zeros_like(air)
    if seed is None:
        logger.info("no trachea found in the upper slices; central airways are not removed")
        return airway
    dark = (coarse < params.trachea_hu) & air
    blobs, _ = ndimage.label(dark[seed[0]])
    airway[seed[0]] = blobs == blobs[seed[1], seed[2]]
    max_area = 4 * int(airway[seed[0]].sum())
    for step in (-1, 1):  # down to the bronchi, then up to the top of the scan
        _track(airway, dark, seed[0], step, max_area, spacing, params)
    return airway


def _track(
    airway: np.ndarray,
    dark: np.ndarray,
    start: int,
    step: int,
    max_area: int,
    spacing: tuple[float, ...],
    params: SegmentationParams,
) -> None:
    below_carina_mm = None
    k = start + step
    while 0 <= k < airway.shape[0]:
        previous = ndimage.binary_dilation(airway[k - step], iterations=2)
        blobs, _ = ndimage.label(dark[k])
        hits = np.unique(blobs[previous & (blobs > 0)])
        if hits.size == 0:
            return
        current = np.isin(blobs, hits)
        if current.sum() > max_area:  # spread into lung: keep only what continues the airway above
            current &= previous
        airway[k] = current
        if step < 0:
            if below_carina_mm is None and ndimage.label(current)[1] >= 2:
                below_carina_mm = 0.0
            elif below_carina_mm is not None:
                below_carina_mm += spacing[0]
                if below_carina_mm >= params.main_bronchus_mm:
                    return
        k += step


def _trachea_seed(
    coarse: np.ndarray, air: np.ndarray, spacing: tuple[float, ...], params: SegmentationParams
) -> tuple[int, int, int] | None:
    """Voxel in the trachea: in the top third of slices, a small round very dark blob near the midline."""
    nz, _ny, nx = coarse.shape
    voxel_mm2 = spacing[1] * spacing[2]
    for k in range(nz - 1, int(nz * 0.6) - 1, -1):
        blobs, _n = ndimage.label((coarse[k] < params.trachea_hu) & air[k])
        for index, region in enumerate(ndimage.find_objects(blobs), start=1):
            area = float((blobs[region] == index).sum()) * voxel_mm2
            cy, cx = ndimage.center_of_mass(blobs == index)
            off_centre_mm = abs(cx - (nx - 1) / 2.0) * spacing[2]
            height, width = (r.stop - r.start for r in region)
            round_enough = 0.5 <= height / max(width, 1) <= 2.0
            if 80.0 <= area <= 700.0 and off_centre_mm < 45.0 and round_enough:
                return k, round(cy), round(cx)
    return None


def _lung_components(
    coarse: np.ndarray, air: np.ndarray, spacing: tuple[float, ...], params: SegmentationParams
) -> np.ndarray:
    """Air components inside the body that look like lung (median HU, volume)."""
    components, n = ndimage.label(air)
    if n == 0:
        raise NoLungsFoundError(
            "no air inside the body: this CT does not show the lungs (abdomen, head or limb?); "
            "lung segmentation needs a chest CT covering the lungs"
        )
    index = np.arange(1, n + 1)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    volumes = ndimage.sum_labels(np.ones_like(components), components, index) * voxel_ml
    means = ndimage.mean(coarse, components, index)
    lo, hi = params.lung_mean_hu
    lung_like = (volumes >= params.min_lung_ml) & (means >= lo) & (means <= hi)
    if not lung_like.any():
        largest = float(volumes.max())
        raise NoLungsFoundError(
            f"no lung found: the largest air region inside the body holds {largest:.0f} mL with a mean of "
            f"{float(means[np.argmax(volumes)]):.0f} HU (lungs: >= {params.min_lung_ml:.0f} mL, mean "
            f"{lo:.0f}..{hi:.0f} HU); is this a chest CT covering the lungs?"
        )
    return np.isin(components, index[lung_like])


def _split_left_right(candidates: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Right (smaller x in LPS) and left lungs; separate touching lungs.

    The two largest components seed the lungs (or, if one component dominates, the two parts left
    after eroding it); every other lung-like component (e.g. cut off by the airway removal) joins
    the nearest seed.
    """
    components, n = ndimage.label(candidates)
    sizes = ndimage.sum_labels(np.ones_like(components), components, np.arange(1, n + 1))
    order = np.argsort(sizes)[::-1] + 1
    if n >= 2 and sizes[order[1] - 1] >= 0.15 * sizes[order[0] - 1]:
        seeds = np.where(components == order[0], 1, 0) + np.where(components == order[1], 2, 0)
    else:
        seeds = _separate_by_erosion(candidates, spacing)
    return _order_by_side(_nearest_seed(candidates, seeds, spacing))


def _separate_by_erosion(mask: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Seeds 1 (patient right) and 2 (left) from eroding a single component until it has large parts on both sides.

    Sides are judged against the centre of the mask's bounding box in x; parts smaller than 2 % of the
    mask are ignored.
    """
    depth = ndimage.distance_transform_edt(mask, sampling=spacing)
    xs = np.flatnonzero(mask.any(axis=(0, 1)))
    centre = 0.5 * (xs[0] + xs[-1])
    total = float(mask.sum())
    for threshold in np.arange(2.0, 40.0, 2.0):
        parts, n = ndimage.label(depth > threshold)
        if n < 2:
            continue
        index = np.arange(1, n + 1)
        sizes = ndimage.sum_labels(np.ones_like(parts), parts, index)
        centroid_x = np.asarray([c[2] for c in ndimage.center_of_mass(parts > 0, parts, index)])
        big = sizes >= 0.02 * total
        right, left = index[big & (centroid_x < centre)], index[big & (centroid_x >= centre)]
        if right.size and left.size:
            return np.where(np.isin(parts, right), 1, 0) + np.where(np.isin(parts, left), 2, 0)
    logger.warning("only one lung found (or the lungs could not be separated); it is labelled by its side")
    return mask.astype(np.int32)


def _nearest_seed(mask: np.ndarray, seeds: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Each mask voxel gets the label of the nearest seed voxel (within the mask's bounding box)."""
    out = np.zeros(mask.shape, dtype=np.uint8)
    box = bounding_box(mask)
    if box is None:
        return out
    local = seeds[box]
    _, indices = ndimage.distance_transform_edt(local == 0, sampling=spacing, return_indices=True)
    out[box] = np.where(mask[box], local[tuple(indices)], 0)
    return out


def _order_by_side(labels: np.ndarray) -> np.ndarray:
    """Relabel so that the component with the smaller mean x (patient right in LPS) is RIGHT_LUNG."""
    present = [v for v in (1, 2) if (labels == v).any()]
    x = np.arange(labels.shape[2])[None, None, :]
    mean_x = {v: float(np.broadcast_to(x, labels.shape)[labels == v].mean()) for v in present}
    out = np.zeros_like(labels)
    if len(present) == 1:
        centre = (labels.shape[2] - 1) / 2.0
        out[labels == present[0]] = LungLabel.RIGHT_LUNG if mean_x[present[0]] < centre else LungLabel.LEFT_LUNG
        return out
    right = min(present, key=lambda v: mean_x[v])
    out[labels == right] = LungLabel.RIGHT_LUNG
    out[(labels > 0) & (labels != right)] = LungLabel.LEFT_LUNG
    return out


def _include_dense_pathology(
    labels: np.ndarray, allowed: np.ndarray, spacing: tuple[float, ...], params: SegmentationParams
) -> np.ndarray:
    """Closing by ``closing_mm`` and hole filling per lung, without crossing into the other lung."""
    out = labels.copy()
    margin = [int(np.ceil(params.closing_mm / s)) + 2 for s in spacing]
    for value in (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG):
        box = bounding_box(labels == value, margin)
        if box is None:
            continue
        lung = labels[box] == value
        grown = ndimage.distance_transform_edt(~lung, sampling=spacing) <= params.closing_mm
        closed = ndimage.distance_transform_edt(grown, sampling=spacing) > params.closing_mm
        filled = ndimage.binary_fill_holes(closed | lung)
        add = filled & allowed[box] & (out[box] == 0)
        out[box][add] = value
    return out


def _refine(
    hu: np.ndarray,
    labels: np.ndarray,
    dense: np.ndarray,
    airways: np.ndarray,
    factors: tuple[int, ...],
    params: SegmentationParams,
) -> np.ndarray:
    """Full-resolution mask: the working-grid interior, and a one-working-voxel band at the boundary where
    voxels darker than ``air_hu`` are lung and dense voxels are lung only inside included lesions.

    Only the bounding box of the lungs is processed at full resolution.
    """
    out = np.zeros(hu.shape, dtype=np.uint8)
    outer_coarse = ndimage.grey_dilation(labels, size=3)
    box = bounding_box(outer_coarse > 0, 1)
    if box is None:
        return out
    fine = tuple(slice(b.start * f, min(b.stop * f, n)) for b, f, n in zip(box, factors, hu.shape))
    shape = tuple(sl.stop - sl.start for sl in fine)
    sub = hu[fine]
    full = _upsample(labels[box], factors, shape)
    inner = _upsample((ndimage.binary_erosion(labels > 0) * labels)[box], factors, shape)
    outer = _upsample(outer_coarse[box], factors, shape)
    lesion = _upsample((dense & (labels > 0))[box], factors, shape)
    dark = sub < params.air_hu
    take = (outer > 0) & (inner == 0) & (dark | (lesion & (full > 0)))
    result = inner
    result[take] = np.where(full > 0, full, outer)[take]
    airway_full = _upsample(ndimage.binary_dilation(airways)[box], factors, shape)
    result[airway_full & dark] = LungLabel.BACKGROUND
    out[fine] = result
    return out


def _upsample(labels: np.ndarray, factors: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour upsampling by whole blocks, cut or edge-padded to ``shape``."""
    out = labels
    for axis, f in enumerate(factors):
        if f > 1:
            out = np.repeat(out, f, axis=axis)
    out = out[: shape[0], : shape[1], : shape[2]]
    pad = [(0, t - o) for t, o in zip(shape, out.shape)]
    return np.pad(out, pad, mode="edge") if any(p[1] for p in pad) else out
