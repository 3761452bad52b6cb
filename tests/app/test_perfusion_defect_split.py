"""End-to-end: the app's left/right perfusion split for a phantom with a known left-lung embolic defect.

Acceptance line: "a test with a phantom whose left lung has a known perfusion defect shows the
expected left/right split within 5 percentage points of the truth."

Phantom: :func:`core.simulation.thorax.make_thorax_phantom` on the CT grid of the ``sample`` preset
(192x192x96 at 2.1 x 2.1 x 3.0 mm, the smallest preset with lungs of adult shape), seed
``PHANTOM_SEED``, no drawn pathology, and one complete embolism (severity 1) of the left pulmonary
artery branch whose territory holds closest to ``DEFECT_TERRITORY_SHARE`` of that tree's seed points:
a lobar-size, pleura-based wedge with the generator's mosaic CT sign (perfusion x 0.05, blood x 0.1,
so the parenchyma is about 18 % less dense, 25-30 HU).  The matched phantom without it (same seed,
no pathology) shows that the defect is there, and the app runs on both CTs to show that it sees it.
Only the CTs are written: synthesis needs no SPECT.

Truth: the phantom's true perfusion (relative flow per function-grid voxel) summed over each lung of
the phantom's own function-grid lung labels, so that it shares no mistake with the app's segmentation.
The app's maps are scaled per lung (1 = that lung's 75th percentile, clipped at 1), so even the true
field put through that scaling gives a split a little off the truth: a few pp for a defect this size.

Tolerances, in percentage points (pp) of the perfusion of both lungs: the two lungs sum to 100 +- 0.5;
the app's left share is within 5 pp of the truth's.

Reachable by a CT-only predictor: the phantom's CT-visible perfusion (``perfusion_given_ct``, the
heterogeneity the CT cannot show replaced by its expectation, the embolism's territory known from its
mosaic sign) put through the same per-lung scaling meets the tolerance, so the strict expected failures
below are the shipped model's, not a bar no model on this CT could clear.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from app.__main__ import EXIT_OK
from core.dicom.ct_writer import write_ct_series
from core.dicom.study import synthetic_patient_study
from core.geometry import Grid
from core.labels import LungLabel
from core.nm.standardisation import normalise_spect
from core.simulation.pathology import Pathology
from core.simulation.study import PRESETS
from core.simulation.thorax import ThoraxPhantom, make_thorax_phantom
from core.simulation.tree import Tree
from tests.app.conftest import run_app_process

pytestmark = pytest.mark.slow

MODEL_MISSES_LOBAR_DEFECTS = pytest.mark.xfail(
    strict=True,
    reason=(
        "known failure of the shipped model (issue 5 not met): it does not see a lobar embolic defect on the CT "
        "(app left share 43.3 % against a true 34.0 %, 43.5 % without the defect); a model retrained with lobar "
        "emboli in half of the cohort did not either (42.6 %), nor a fine-tune on lobar emboli alone (41.1 %, "
        "held-out accuracy falling).  strict: remove this mark when a model passes"
    ),
)

PHANTOM_SEED = 2
PRESET = "sample"
DEFECT_TERRITORY_SHARE = 0.3
"""Target share of the left arterial tree's seed points (about its volume) in the occluded territory."""
DEFECT_BRANCH_GENERATIONS = (1, 4)
"""Branches considered for the occlusion: lobar to segmental size."""
DEFECT_LOSS_RANGE = (0.2, 0.4)
"""The share of the left lung's own perfusion that the defect must remove for the test to mean anything."""
SPLIT_TOLERANCE_PP = 5.0
SUM_TOLERANCE_PP = 0.5


@dataclass(frozen=True)
class DefectCase:
    """The phantom pair and the app's run on the defect phantom's CT."""

    healthy: ThoraxPhantom = field(repr=False)
    defect: ThoraxPhantom = field(repr=False)
    regions: dict[str, dict]
    """The app's regional table for the defect phantom's CT."""
    healthy_regions: dict[str, dict]
    """The same for the matched phantom without the defect."""


def defect_branch(tree: Tree, share: float) -> int:
    """The branch (of ``DEFECT_BRANCH_GENERATIONS``) whose subtree supplies closest to ``share`` of the points."""
    low, high = DEFECT_BRANCH_GENERATIONS
    branches = np.flatnonzero((tree.generation >= low) & (tree.generation <= high))
    shares = np.array([np.isin(tree.point_owner, tree.subtree(int(b))).mean() for b in branches])
    return int(branches[np.argmin(np.abs(shares - share))])


def shares_percent(field: np.ndarray, lungs: np.ndarray, *, scaled: bool = False) -> dict[str, float]:
    """Right and left shares of ``field`` in percent, summed per lung of ``lungs``; ``scaled``: after the model's
    scaling first (each lung / its own P75, clipped to [0, 1])."""
    sums = {}
    for label, side in ((LungLabel.RIGHT_LUNG, "right"), (LungLabel.LEFT_LUNG, "left")):
        lung = lungs == label
        values = np.clip(normalise_spect(field, lung), 0.0, 1.0) if scaled else field
        sums[side] = float(values[lung].astype(np.float64).sum())
    total = sums["right"] + sums["left"]
    return {side: 100.0 * value / total for side, value in sums.items()}


def true_shares_percent(phantom: ThoraxPhantom) -> dict[str, float]:
    """Right and left shares of the phantom's true perfusion, in percent, summed on its function grid."""
    return shares_percent(phantom.perfusion, phantom.function_lung_mask)


def scaled_shares_percent(field: np.ndarray, lungs: np.ndarray) -> dict[str, float]:
    """Right and left shares of ``field`` after the model's scaling: each lung / its own P75, clipped to [0, 1]."""
    return shares_percent(field, lungs, scaled=True)


def left_loss_fraction(healthy: ThoraxPhantom, defect: ThoraxPhantom) -> float:
    """Fraction of the left lung's perfusion removed by the defect (the right lung is the same in both)."""
    before, after = true_shares_percent(healthy), true_shares_percent(defect)
    return 1.0 - (after["left"] / after["right"]) / (before["left"] / before["right"])


def write_ct_study(phantom: ThoraxPhantom, folder: Path) -> Path:
    """The phantom's CT as a DICOM series in ``folder`` (created); returns it."""
    study = synthetic_patient_study(np.random.default_rng([phantom.seed, 7]))
    write_ct_series(phantom.hu, phantom.grid, study, folder, frame_of_reference_uid=generate_uid())
    return folder


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> DefectCase:
    """Healthy and defect phantoms of one seed, and the regions of the app's run record for the defect CT."""
    spec = PRESETS[PRESET]
    grid = Grid.centred(spec.ct_shape, spec.ct_spacing_mm)
    healthy = make_thorax_phantom(grid, PHANTOM_SEED, pathologies=[], ct_noise_hu=spec.ct_noise_hu)
    assert healthy.anatomy is not None
    branch = defect_branch(healthy.anatomy.trees["artery_left"], DEFECT_TERRITORY_SHARE)
    embolism = Pathology("embolism", "left", severity=1.0, segment=branch)
    defect = make_thorax_phantom(grid, PHANTOM_SEED, pathologies=[embolism], ct_noise_hu=spec.ct_noise_hu)
    folder = tmp_path_factory.mktemp("perfusion_defect")
    return DefectCase(healthy, defect, app_regions(defect, folder / "defect"), app_regions(healthy, folder / "healthy"))


def app_regions(phantom: ThoraxPhantom, folder: Path) -> dict[str, dict]:
    """Run the app on the phantom's CT; its regional table by region name."""
    folder.mkdir()
    output = folder / "out"
    result = run_app_process("-i", write_ct_study(phantom, folder / "study"), "-o", output)
    assert result.returncode == EXIT_OK, result.stderr
    record = json.loads((output / "run_record.json").read_text(encoding="utf-8"))
    assert record["functional"] is not None, record["warnings"]
    return {r["region"]: r for r in record["functional"]["regions"]}


def test_the_phantom_defect_removes_a_fifth_to_two_fifths_of_the_left_lung_perfusion(case: DefectCase) -> None:
    low, high = DEFECT_LOSS_RANGE
    assert low <= left_loss_fraction(case.healthy, case.defect) <= high
    assert true_shares_percent(case.defect)["left"] < 50.0


def test_app_lung_shares_sum_to_100_percent(case: DefectCase) -> None:
    total = case.regions["right"]["perfusion_percent"] + case.regions["left"]["perfusion_percent"]
    assert total == pytest.approx(100.0, abs=SUM_TOLERANCE_PP)


def test_a_ct_only_predictor_can_meet_the_split_tolerance(case: DefectCase) -> None:
    """The truth and the CT-visible perfusion, each through the model's per-lung scaling, within 5 pp."""
    truth = true_shares_percent(case.defect)["left"]
    lungs = case.defect.function_lung_mask
    assert case.defect.perfusion_given_ct is not None
    visible = scaled_shares_percent(case.defect.perfusion_given_ct, lungs)["left"]
    scaled_truth = scaled_shares_percent(case.defect.perfusion, lungs)["left"]
    assert scaled_truth == pytest.approx(truth, abs=SPLIT_TOLERANCE_PP)
    assert visible == pytest.approx(truth, abs=SPLIT_TOLERANCE_PP), f"CT-visible {visible:.1f} %, truth {truth:.1f} %"
    # and it sees the defect: through the same scaling it lowers the left share as the truth does, within 1 pp
    assert case.healthy.perfusion_given_ct is not None
    healthy_lungs = case.healthy.function_lung_mask
    visible_drop = scaled_shares_percent(case.healthy.perfusion_given_ct, healthy_lungs)["left"] - visible
    true_drop = scaled_shares_percent(case.healthy.perfusion, healthy_lungs)["left"] - scaled_truth
    assert visible_drop == pytest.approx(true_drop, abs=1.0)


@MODEL_MISSES_LOBAR_DEFECTS
def test_app_left_share_is_within_5_pp_of_the_truth(case: DefectCase) -> None:
    truth = true_shares_percent(case.defect)["left"]
    measured = case.regions["left"]["perfusion_percent"]
    assert measured == pytest.approx(truth, abs=SPLIT_TOLERANCE_PP), (
        f"left lung perfusion: app {measured:.1f} %, truth {truth:.1f} %"
        f" (matched phantom without the defect: {true_shares_percent(case.healthy)['left']:.1f} %)"
    )


@MODEL_MISSES_LOBAR_DEFECTS
def test_app_sees_the_defect(case: DefectCase) -> None:
    """The defect lowers the app's left share by at least half of what it lowers the true one."""
    true_drop = true_shares_percent(case.healthy)["left"] - true_shares_percent(case.defect)["left"]
    app_drop = case.healthy_regions["left"]["perfusion_percent"] - case.regions["left"]["perfusion_percent"]
    assert app_drop >= 0.5 * true_drop, f"left share drop: app {app_drop:.1f} pp, truth {true_drop:.1f} pp"
