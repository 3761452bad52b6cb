"""Lung segmentation against phantom truth, in any orientation, and on real CT slices.

Criteria (issue 3): Dice >= 0.97 per lung on at least 10 phantoms with pathology; left/right
correct on LPS, RAS and feet-first inputs; a tumour touching the pleura inside the mask
(>= 90 % of its voxels: the rim against the chest wall is not visible on CT); trachea and main
bronchi excluded; an abdomen-only CT raises NoLungsFoundError.
"""

import numpy as np
import pytest
from scipy import ndimage

from core.dicom.ct_reader import read_ct_volume
from core.errors import NoLungsFoundError
from core.geometry import Grid
from core.labels import LungLabel, Tissue
from core.lung.segmentation import segment_lungs
from core.orientation import RAS_TO_LPS, grid_affine_lps
from core.simulation.anatomy_params import ThoraxParams
from core.simulation.pathology import Pathology
from core.simulation.thorax import make_thorax_phantom
from tests.testdata import REAL_CT_DIR

GRID = Grid.centred((80, 144, 144), (3.6, 2.8, 2.8))
SIDES = (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


@pytest.fixture(scope="module")
def cohort():
    """The first 10 phantoms with at least one pathology from seed 100 on (random kinds and severities)."""
    cases, seed = [], 100
    while len(cases) < 10:
        phantom = make_thorax_phantom(GRID, seed)
        if phantom.pathologies:
            cases.append((phantom, segment_lungs(phantom.hu, grid_affine_lps(GRID))))
        seed += 1
    return cases


def test_dice_at_least_097_per_lung_on_ten_pathological_phantoms(cohort):
    scores = {p.seed: [round(dice(m == s, p.lung_mask == s), 4) for s in SIDES] for p, m in cohort}
    assert min(min(v) for v in scores.values()) >= 0.97, scores


def test_trachea_and_main_bronchi_excluded(cohort):
    for phantom, mask in cohort:
        airway = phantom.labels == Tissue.AIRWAY
        assert airway.sum() > 100
        assert (mask[airway] > 0).mean() < 0.01, phantom.seed


def test_nothing_outside_the_body(cohort):
    for phantom, mask in cohort:
        outside = np.isin(phantom.labels, (Tissue.OUTSIDE_AIR, Tissue.TABLE))
        assert not (mask[outside] > 0).any(), phantom.seed


def _reference():
    phantom = make_thorax_phantom(GRID, 31)
    return phantom, segment_lungs(phantom.hu, grid_affine_lps(GRID))


def test_ras_array_gives_the_same_lungs():
    phantom, expected = _reference()
    # NIfTI-style RAS array: axes (x to the right, y anterior, z superior) = flip x and y, reverse axis order
    ras_volume = np.transpose(phantom.hu[:, ::-1, ::-1], (2, 1, 0))
    dz, dy, dx = GRID.spacing_mm
    _, ny, nx = GRID.shape
    x0, y0, z0 = GRID.origin_lps_mm
    ras_affine = np.array(
        [[dx, 0, 0, -(x0 + (nx - 1) * dx)], [0, dy, 0, -(y0 + (ny - 1) * dy)], [0, 0, dz, z0], [0, 0, 0, 1]]
    )
    mask = segment_lungs(ras_volume, RAS_TO_LPS @ ras_affine)
    np.testing.assert_array_equal(np.transpose(mask, (2, 1, 0))[:, ::-1, ::-1], expected)


def test_feet_first_series_keeps_left_and_right():
    phantom, expected = _reference()
    # feet-first supine: image columns run towards the patient's right, slices are stored feet to head reversed
    volume = phantom.hu[::-1, :, ::-1]
    nz, _, nx = GRID.shape
    new_to_old_index = np.array([[-1, 0, 0, nz - 1], [0, 1, 0, 0], [0, 0, -1, nx - 1], [0, 0, 0, 1]], dtype=float)
    affine = grid_affine_lps(GRID) @ new_to_old_index
    mask = segment_lungs(volume, affine)
    np.testing.assert_array_equal(mask[::-1, :, ::-1], expected)
    for side in SIDES:
        assert dice(expected == side, phantom.lung_mask == side) >= 0.97


def test_lungs_touching_anteriorly_are_split():
    phantom = make_thorax_phantom(GRID, 8, params=ThoraxParams(anterior_gap_mm=0.0), pathologies=[])
    mask = segment_lungs(phantom.hu, grid_affine_lps(GRID))
    for side in SIDES:
        assert dice(mask == side, phantom.lung_mask == side) >= 0.97


def test_tumour_touching_the_pleura_is_inside_the_mask():
    healthy = make_thorax_phantom(GRID, 12, pathologies=[])
    lung = healthy.lung_mask == LungLabel.RIGHT_LUNG
    depth = ndimage.distance_transform_edt(lung, sampling=GRID.spacing_mm)
    middle = int(np.median(np.nonzero(lung)[0]))
    candidates = np.argwhere((np.abs(depth - 15.0) < 1.5) & lung)
    candidates = candidates[np.abs(candidates[:, 0] - middle) < 5]
    k, j, i = candidates[np.argmin(candidates[:, 2])]  # most lateral: the tumour reaches the chest wall
    centre = [(idx - (n - 1) / 2.0) * s for idx, n, s in zip((k, j, i), GRID.shape, GRID.spacing_mm)]
    tumour = Pathology("tumour", "right", 1.0, centre_mm=tuple(float(c) for c in centre), radius_mm=20.0)
    phantom = make_thorax_phantom(GRID, 12, pathologies=[tumour])
    mask = segment_lungs(phantom.hu, grid_affine_lps(GRID))
    voxels = phantom.labels == Tissue.TUMOUR
    assert voxels.sum() > 300
    assert (mask[voxels] == LungLabel.RIGHT_LUNG).mean() >= 0.9


def test_abdomen_only_ct_raises_a_clear_error():
    tall = Grid.centred((110, 128, 128), (4.0, 3.2, 3.2))
    phantom = make_thorax_phantom(tall, 3)
    below = np.flatnonzero((phantom.lung_mask > 0).any(axis=(1, 2)))[0] - 5
    abdomen = phantom.hu[:below]
    assert below > 20
    with pytest.raises(NoLungsFoundError, match="chest CT"):
        segment_lungs(abdomen, grid_affine_lps(tall))


def test_real_ct_slices_with_lung_bases():
    hu, grid = read_ct_volume(sorted(REAL_CT_DIR.glob("0*.dcm")))
    mask = segment_lungs(hu, grid_affine_lps(grid))
    x = np.broadcast_to(grid.axis_mm("x")[None, None, :], mask.shape)
    right, left = mask == LungLabel.RIGHT_LUNG, mask == LungLabel.LEFT_LUNG
    assert right.any() and left.any()
    assert x[right].mean() < x[left].mean()  # patient right is -x in LPS
    # lung bases only: a few slices of lung, far less than a whole lung
    assert 5.0 < right.sum() * grid.voxel_volume_ml < 200.0


def test_consolidated_segment_is_mostly_included():
    """Known limit, stated in the closing note: a consolidated segment without visible air is filled only up
    to the closing radius (25 mm), so its lung scores about 0.93 rather than >= 0.97; this guards against worse."""
    healthy = make_thorax_phantom(GRID, 7, pathologies=[])
    tree = healthy.anatomy.trees["artery_right"]
    segment = int(np.flatnonzero(tree.generation == 3)[0])
    phantom = make_thorax_phantom(GRID, 7, pathologies=[Pathology("consolidation", "right", 1.0, segment=segment)])
    mask = segment_lungs(phantom.hu, grid_affine_lps(GRID))
    assert dice(mask == LungLabel.RIGHT_LUNG, phantom.lung_mask == LungLabel.RIGHT_LUNG) >= 0.9
    assert dice(mask == LungLabel.LEFT_LUNG, phantom.lung_mask == LungLabel.LEFT_LUNG) >= 0.97
