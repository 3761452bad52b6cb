"""Per-case anatomical parameters of the digital thorax phantom, drawn from adult ranges.

Ranges (adult, supine, full inspiration breath-hold CT):
- chest width 300-380 mm and depth 200-260 mm at the level of the carina;
- lung height apex to posterior costophrenic recess 220-290 mm;
- total lung volume 3.5-7 L at inspiration (checked by the tests, not imposed here);
- subcutaneous fat 5-30 mm, chest-wall muscle 8-18 mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ThoraxParams:
    """Anatomy of one phantom case; lengths in mm, relative sizes dimensionless."""

    body_width_mm: float = 340.0
    body_depth_mm: float = 235.0
    fat_mm: float = 14.0
    muscle_mm: float = 12.0
    lung_height_mm: float = 255.0
    apex_below_top_mm: float = 25.0
    right_lung_scale: float = 1.0
    left_lung_scale: float = 0.95
    anterior_gap_mm: float = 10.0
    heart_scale: float = 1.0
    dome_height_mm: float = 55.0
    right_dome_extra_mm: float = 15.0
    shape_warp_mm: float = 6.0
    table: bool = True

    def __post_init__(self) -> None:
        checks = {
            "body_width_mm": (200.0, 500.0),
            "body_depth_mm": (150.0, 350.0),
            "lung_height_mm": (150.0, 350.0),
            "anterior_gap_mm": (0.0, 40.0),
        }
        for name, (lo, hi) in checks.items():
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise ValueError(f"ThoraxParams.{name}={value} is outside the adult range [{lo}, {hi}] mm")


def sample_thorax_params(rng: np.random.Generator) -> ThoraxParams:
    """Draw a plausible adult anatomy; lungs touching anteriorly in about one case out of five.

    The inner rib-cage size is drawn first (width 245-300 mm, depth 0.64-0.76 of it) and the body
    is built outwards from it, so that thin and obese patients keep adult lung volumes.
    """
    cavity_width = rng.uniform(245.0, 300.0)
    cavity_depth = cavity_width * rng.uniform(0.64, 0.76)
    fat = rng.uniform(5.0, 18.0)
    muscle = rng.uniform(8.0, 14.0)
    wall = 2.0 * (fat + muscle + 10.0)
    return ThoraxParams(
        body_width_mm=cavity_width + wall,
        body_depth_mm=cavity_depth + wall,
        fat_mm=fat,
        muscle_mm=muscle,
        lung_height_mm=rng.uniform(235.0, 290.0),
        apex_below_top_mm=rng.uniform(15.0, 35.0),
        right_lung_scale=rng.uniform(0.95, 1.05),
        left_lung_scale=rng.uniform(0.88, 1.0),
        anterior_gap_mm=0.0 if rng.random() < 0.2 else rng.uniform(3.0, 20.0),
        heart_scale=rng.uniform(0.85, 1.15),
        dome_height_mm=rng.uniform(40.0, 70.0),
        right_dome_extra_mm=rng.uniform(5.0, 25.0),
        shape_warp_mm=rng.uniform(3.0, 10.0),
        table=True,
    )
