"""The papers' split protocol, by patient (both lungs of a case stay on the same side of every split).

Seed 000: 146 lungs of 73 patients, 84 for training with 4-fold cross-validation and 62 held out
for testing (about 60/40); the final model is fitted on the whole training part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Split:
    """Case identifiers of the held-out test set, the training part and its cross-validation folds."""

    test: tuple[str, ...]
    train: tuple[str, ...]
    folds: tuple[tuple[str, ...], ...]

    def fold(self, k: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(training cases, validation cases) of fold ``k``."""
        validation = self.folds[k]
        return tuple(c for c in self.train if c not in validation), validation


def case_of(sample_path: Path) -> str:
    """Case identifier of a ``<case>_<side>.npz`` sample."""
    return sample_path.stem.rsplit("_", 1)[0]


def split_cases(cases: list[str], *, test_fraction: float = 0.4, folds: int = 4, seed: int = 0) -> Split:
    """Shuffle the cases with ``seed`` and cut off ``test_fraction`` for testing, the rest into ``folds`` folds."""
    unique = sorted(set(cases))
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = max(1, round(len(unique) * test_fraction))
    if len(unique) - n_test < max(folds, 1):
        raise ValueError(f"{len(unique)} cases are too few for a {test_fraction:.0%} test split and {folds} folds")
    order = np.random.default_rng(seed).permutation(len(unique))
    shuffled = [unique[i] for i in order]
    test, train = tuple(sorted(shuffled[:n_test])), shuffled[n_test:]
    fold_lists = tuple(tuple(sorted(part.tolist())) for part in np.array_split(np.asarray(train), folds))
    return Split(test=test, train=tuple(sorted(train)), folds=fold_lists)
