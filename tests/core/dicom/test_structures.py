"""The coded structures of the functional lung pipeline: order, codes, RT interpretation, empty masks, validation.

Lungs, zones and functional volumes come from :mod:`core.lung.quantification` on a small synthetic
case: the right lung fills columns 0-3 of slices 0-11, the left lung columns 4-7 of slices 3-11 (so
every zone differs); perfusion alternates 1.0 / 0.5 in each lung (high and low both present) and
ventilation is uniform (every lung voxel high-function, so the low-ventilation volume is empty).
Expected codes are written out here, not imported from the module under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.sr.coding import Code

from core.dicom.structures import Structure, lung_function_structures
from core.labels import LungLabel
from core.lung.quantification import FunctionalVolumes, functional_volumes, zone_labels

SHAPE = (12, 4, 8)
ANATOMICAL_STRUCTURE = ("91723000", "SCT")
LUNG = ("39607008", "SCT")
RIGHT, LEFT = ("24028007", "SCT"), ("7771000", "SCT")
UPPER, MIDDLE, LOWER = ("281392002", "SCT"), ("281393007", "SCT"), ("281394001", "SCT")
FUNCTION = ("246464006", "SCT")
PRIVATE_SCHEME = "99PMAP"


def lung_labels() -> np.ndarray:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[:, :, :4] = LungLabel.RIGHT_LUNG
    labels[3:, :, 4:] = LungLabel.LEFT_LUNG
    return labels


def volumes_of(labels: np.ndarray) -> dict[str, FunctionalVolumes]:
    lungs = labels > 0
    alternating = np.where(np.indices(SHAPE).sum(axis=0) % 2 == 0, 1.0, 0.5)
    perfusion = np.where(lungs, alternating, 0.0).astype(np.float32)
    ventilation = np.where(lungs, 1.0, 0.0).astype(np.float32)
    return {
        "perfusion": functional_volumes(perfusion, labels),
        "ventilation": functional_volumes(ventilation, labels),
    }


def _code(code: Code | None) -> tuple[str, str] | None:
    return None if code is None else (code.value, code.scheme_designator)


@pytest.fixture(scope="module")
def case() -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, FunctionalVolumes], list[Structure]]:
    labels = lung_labels()
    zones = zone_labels(labels)
    volumes = volumes_of(labels)
    return labels, zones, volumes, lung_function_structures(labels, zones, volumes)


def test_order_is_lungs_then_zones_then_functional_volumes(case) -> None:
    _, _, volumes, structures = case
    assert volumes["ventilation"].low.sum() == 0  # the case is built so
    kinds = [
        "lung" if _code(s.property_type) == LUNG else "function" if _code(s.category) == FUNCTION else "zone"
        for s in structures
    ]
    assert kinds == ["lung"] * 2 + ["zone"] * 6 + ["function"] * 3
    assert [_code(s.modifier) for s in structures[:8]] == [RIGHT, LEFT] + [RIGHT] * 3 + [LEFT] * 3
    assert [_code(s.property_type) for s in structures[2:8]] == [UPPER, MIDDLE, LOWER] * 2
    assert len({s.label for s in structures}) == len(structures)


def test_lungs_are_coded_with_laterality_and_hold_their_labels(case) -> None:
    labels, _, _, structures = case
    for structure, laterality, value in zip(structures[:2], (RIGHT, LEFT), (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG)):
        assert _code(structure.category) == ANATOMICAL_STRUCTURE
        assert _code(structure.property_type) == LUNG
        assert _code(structure.modifier) == laterality
        assert structure.interpreted_type == "ORGAN"
        np.testing.assert_array_equal(structure.mask, labels == value)


def test_zone_codes_follow_the_cranio_caudal_position(case) -> None:
    """Slice index grows towards the head: the upper zone's slices lie above the middle's, above the lower's."""
    labels, zones, _, structures = case
    for laterality, value in ((RIGHT, LungLabel.RIGHT_LUNG), (LEFT, LungLabel.LEFT_LUNG)):
        by_type = {_code(s.property_type): s for s in structures[2:8] if _code(s.modifier) == laterality}
        slices = {zone: np.flatnonzero(by_type[zone].mask.any(axis=(1, 2))) for zone in (UPPER, MIDDLE, LOWER)}
        assert slices[LOWER].max() < slices[MIDDLE].min() <= slices[MIDDLE].max() < slices[UPPER].min()
        union = np.zeros(SHAPE, dtype=bool)
        for structure in by_type.values():
            assert _code(structure.category) == ANATOMICAL_STRUCTURE
            assert structure.interpreted_type == "ORGAN"
            assert not (structure.mask & (labels != value)).any()  # inside its own lung
            union |= structure.mask
        np.testing.assert_array_equal(union, labels == value)
    codes_by_name = {
        f"{side} {zone}": (laterality, code)
        for side, laterality in (("right", RIGHT), ("left", LEFT))
        for zone, code in (("upper", UPPER), ("middle", MIDDLE), ("lower", LOWER))
    }
    by_codes = {(_code(s.modifier), _code(s.property_type)): s.mask for s in structures[2:8]}
    for name, mask in zones.items():
        np.testing.assert_array_equal(by_codes[codes_by_name[name]], mask)


def test_functional_volumes_are_private_codes_and_high_function_is_avoided(case) -> None:
    _, _, volumes, structures = case
    functional = structures[8:]
    expected = [
        (volumes["perfusion"].high, "AVOIDANCE"),
        (volumes["perfusion"].low, "ORGAN"),
        (volumes["ventilation"].high, "AVOIDANCE"),
    ]
    for structure, (mask, interpreted) in zip(functional, expected, strict=True):
        np.testing.assert_array_equal(structure.mask, mask)
        assert structure.interpreted_type == interpreted
        assert _code(structure.category) == FUNCTION
        assert structure.property_type.scheme_designator == PRIVATE_SCHEME
        assert structure.modifier is None
    assert len({_code(s.property_type) for s in functional}) == 3
    assert "perfusion" in functional[0].label.lower() and "high" in functional[0].label.lower()
    assert "ventilation" in functional[2].label.lower()


def test_empty_masks_are_left_out() -> None:
    labels = lung_labels()
    labels[labels == LungLabel.LEFT_LUNG] = 0
    structures = lung_function_structures(labels, zone_labels(labels), volumes_of(labels))
    assert all(s.mask.any() for s in structures)
    assert [_code(s.modifier) for s in structures[:4]] == [RIGHT] * 4  # right lung and its three zones
    assert all(_code(s.modifier) != LEFT for s in structures)
    assert [_code(s.category) for s in structures[4:]] == [FUNCTION] * 3  # low ventilation is empty
    assert len(structures) == 7


def test_zone_masks_of_any_dtype_become_boolean() -> None:
    labels = lung_labels()
    zones = {name: mask.astype(np.uint8) for name, mask in zone_labels(labels).items()}
    structures = lung_function_structures(labels, zones, volumes_of(labels))
    assert all(s.mask.dtype == np.bool_ for s in structures)
    assert len(structures) == 11


def _structure(label: str = "Right lung", mask: np.ndarray | None = None) -> Structure:
    return Structure(
        label,
        Code(*ANATOMICAL_STRUCTURE, "Anatomical Structure"),
        Code(*LUNG, "Lung"),
        Code(*RIGHT, "Right"),
        "red",
        "ORGAN",
        np.ones(SHAPE, dtype=bool) if mask is None else mask,
    )


def test_structure_accepts_a_valid_region() -> None:
    assert _structure("x" * 64).label == "x" * 64


@pytest.mark.parametrize(
    ("label", "mask", "message"),
    [
        ("Right lung", np.ones(SHAPE[1:], dtype=bool), "3-D boolean"),
        ("Right lung", np.ones(SHAPE, dtype=np.uint8), "3-D boolean"),
        ("", None, "1 to 64 characters"),
        ("x" * 65, None, "1 to 64 characters"),
    ],
    ids=["2-d", "uint8", "empty-label", "long-label"],
)
def test_structure_validation(label: str, mask: np.ndarray | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _structure(label, mask)
