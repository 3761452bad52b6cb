"""Compare two output folders of the application, DICOM object by DICOM object.

``python -m deploy.map.compare_outputs EXPECTED ACTUAL`` checks that ``ACTUAL`` (e.g. written by the
MAP container) holds the same results as ``EXPECTED`` (e.g. a run outside it): the same files, and
for every DICOM object the same pixel data, byte for byte, and the same attributes, except those
that differ between any two runs (UIDs, dates and times, and the encapsulated PDF, which embeds its
creation time).  ``run_record.json`` is compared without its run-specific keys (times, host, folders,
output UIDs).  Exit status 0 when nothing differs, 1 otherwise; every difference is listed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

logger = logging.getLogger(__name__)

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
"""Elements holding the pixel data (integer, float and double Parametric Map pixels)."""
RUN_SPECIFIC_VRS = frozenset({"UI", "DA", "TM", "DT"})
"""UIDs, dates and times: new in every run."""
RUN_SPECIFIC_KEYWORDS = frozenset({"EncapsulatedDocument", "EncapsulatedDocumentLength"})
"""The PDF report embeds its creation time, so its bytes (and length) differ between runs."""
RUN_SPECIFIC_RECORD_KEYS = frozenset(
    {"started_at", "ended_at", "timings_s", "seconds", "host", "software", "input_folder", "output_folder"}
)
"""Keys of ``run_record.json`` that describe the run, not its results (at any depth)."""
RUN_RECORD_NAME = "run_record.json"


@dataclass
class Comparison:
    """Outcome of comparing two output folders.

    Attributes
    ----------
    dicom_objects
        Number of DICOM objects found in both folders and compared.
    pixel_objects
        How many of them hold pixel data.
    differences
        One line per difference; empty when the folders hold the same results.
    """

    dicom_objects: int = 0
    pixel_objects: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        """True when no difference was found."""
        return not self.differences


def compare_output_folders(expected: Path, actual: Path) -> Comparison:
    """Compare every file of ``expected`` with the file of the same relative path in ``actual``."""
    expected_files = {p.relative_to(expected) for p in expected.rglob("*") if p.is_file()}
    actual_files = {p.relative_to(actual) for p in actual.rglob("*") if p.is_file()}
    comparison = Comparison()
    comparison.differences += [f"{name}: only in {expected}" for name in sorted(expected_files - actual_files)]
    comparison.differences += [f"{name}: only in {actual}" for name in sorted(actual_files - expected_files)]
    for name in sorted(expected_files & actual_files):
        left, right = expected / name, actual / name
        if name.name == RUN_RECORD_NAME:
            comparison.differences += _compare_run_records(left, right, str(name))
            continue
        expected_ds, actual_ds = _read_dicom(left), _read_dicom(right)
        if expected_ds is None or actual_ds is None:
            if left.read_bytes() != right.read_bytes():
                comparison.differences.append(f"{name}: contents differ")
            continue
        comparison.dicom_objects += 1
        comparison.pixel_objects += any(k in expected_ds for k in PIXEL_KEYWORDS)
        comparison.differences += [f"{name}: {d}" for d in compare_datasets(expected_ds, actual_ds)]
    return comparison


def _read_dicom(path: Path) -> Dataset | None:
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        return None


def compare_datasets(expected: Dataset, actual: Dataset) -> list[str]:
    """Differences between two DICOM objects: pixel data first, then every other kept attribute."""
    differences = []
    for keyword in PIXEL_KEYWORDS:
        left, right = expected.get(keyword), actual.get(keyword)
        if left is None and right is None:
            continue
        if left is None or right is None:
            differences.append(f"{keyword} present in only one object")
        elif left != right:
            differences.append(f"{keyword} differs ({_pixel_difference(expected, actual)})")
    left_items = dict(_attributes(expected))
    right_items = dict(_attributes(actual))
    for path in sorted(left_items.keys() | right_items.keys()):
        if left_items.get(path) != right_items.get(path):
            differences.append(f"{path}: {_short(left_items.get(path))} != {_short(right_items.get(path))}")
    return differences


def _pixel_difference(expected: Dataset, actual: Dataset) -> str:
    """How far apart two objects' pixel arrays are, in words."""
    try:
        left, right = expected.pixel_array, actual.pixel_array
    except (AttributeError, ValueError, RuntimeError) as error:
        return f"pixel arrays not decodable: {error}"
    if left.shape != right.shape:
        return f"shapes {left.shape} and {right.shape}"
    delta = np.abs(left.astype(np.float64) - right.astype(np.float64))
    return f"{int(np.count_nonzero(delta))} of {delta.size} values, max |difference| {float(delta.max()):.6g}"


def _attributes(dataset: Dataset, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every attribute except pixel data and run-specific ones, sequences walked into.

    Values are compared as stored (raw bytes where pydicom has not decoded them yet): exact, and fast
    for the long ContourData of an RT Structure Set.
    """
    tags = list(dataset.keys())  # not `for element in dataset`, which would decode every value
    for tag in tags:
        raw = dataset.get_item(tag)
        vr = raw.VR if raw.VR is not None else dataset[tag].VR
        keyword = keyword_for_tag(tag) or str(tag)
        if keyword in PIXEL_KEYWORDS or keyword in RUN_SPECIFIC_KEYWORDS or vr in RUN_SPECIFIC_VRS:
            continue
        path = f"{prefix}{keyword}"
        if vr == "SQ":
            items = dataset[tag].value
            yield path, len(items)
            for index, item in enumerate(items):
                yield from _attributes(item, f"{path}[{index}].")
        else:
            yield path, raw.value


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def _compare_run_records(left: Path, right: Path, name: str) -> list[str]:
    expected = _without_run_specific(json.loads(left.read_text()))
    actual = _without_run_specific(json.loads(right.read_text()))
    return [f"{name}: {d}" for d in _json_differences(expected, actual, "")]


def _without_run_specific(value: Any) -> Any:
    """The run record without run-specific keys, nor the UIDs of the series it wrote."""
    if isinstance(value, dict):
        kept = {k: _without_run_specific(v) for k, v in value.items() if k not in RUN_SPECIFIC_RECORD_KEYS}
        if "file" in kept:  # an entry of "outputs": its series UID is new in every run
            kept.pop("series_instance_uid", None)
        return kept
    if isinstance(value, list):
        return [_without_run_specific(v) for v in value]
    return value


def _json_differences(expected: Any, actual: Any, path: str) -> Iterator[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(expected.keys() | actual.keys()):
            yield from _json_differences(expected.get(key), actual.get(key), f"{path}/{key}")
    elif isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for index, (left, right) in enumerate(zip(expected, actual)):
            yield from _json_differences(left, right, f"{path}[{index}]")
    elif expected != actual:
        yield f"{path or '/'}: {_short(expected)} != {_short(actual)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: compare, log every difference, exit 0 when the folders hold the same results."""
    parser = argparse.ArgumentParser(prog="python -m deploy.map.compare_outputs", description=__doc__.splitlines()[0])
    parser.add_argument("expected", type=Path, help="reference output folder (e.g. a run outside the container)")
    parser.add_argument("actual", type=Path, help="output folder to check (e.g. the container's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    for folder in (args.expected, args.actual):
        if not folder.is_dir():
            logger.error("%s is not a folder", folder)
            return 2
    comparison = compare_output_folders(args.expected, args.actual)
    for difference in comparison.differences:
        logger.error("%s", difference)
    logger.info(
        "%d DICOM objects compared (%d with pixel data): %s",
        comparison.dicom_objects,
        comparison.pixel_objects,
        "identical results" if comparison.equal else f"{len(comparison.differences)} difference(s)",
    )
    return 0 if comparison.equal else 1


if __name__ == "__main__":
    sys.exit(main())
