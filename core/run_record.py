"""The machine-readable record of one application run (``run_record.json``).

The record says what ran (versions, host), on what (series found, chosen and why,
volume geometry), what came out (lung segmentation outcome and volumes, files written),
how long each stage took and how high the process's memory had peaked when it ended.  It never
holds patient names, IDs, birth dates, accession numbers or study dates: only UIDs, series-level
descriptions and geometry.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pydicom

from core.geometry import Grid
from core.labels import LungLabel
from core.lung.enhancement import LungCrop
from core.series_selection import SelectionResult, SeriesVerdict

logger = logging.getLogger(__name__)

RECORD_VERSION = 1
"""Version of the record's layout; bumped when a field changes meaning or is removed."""

SOFTWARE_DISTRIBUTIONS: Mapping[str, tuple[str, ...]] = {
    "monai-deploy-app-sdk": ("monai-deploy-app-sdk",),
    "holoscan": ("holoscan-cu13", "holoscan-cu12", "holoscan"),
    "torch": ("torch",),
    "numpy": ("numpy",),
    "pydicom": ("pydicom",),
    "highdicom": ("highdicom",),
    "SimpleITK": ("SimpleITK",),
}
"""Reported name -> installed distribution names to try, first found wins."""

NOT_INSTALLED = "not installed"
_NVIDIA_DRIVER_FILE = Path("/proc/driver/nvidia/version")
_BYTES_PER_GIB = 1024**3
_BYTES_PER_MIB = 1024**2


class StageTimings:
    """Wall-clock seconds spent in named stages, in the order they first ran; thread-safe.

    Each stage also records the process's peak resident memory when it last ended, so that the
    stage which raised the peak can be found (the peak only grows: the first stage whose reading
    equals the final peak is where it was reached).

    Parameters
    ----------
    clock
        Monotonic clock in seconds, ``time.perf_counter`` unless a test injects one.
    peak_rss_bytes
        The process's peak resident memory so far, :func:`process_peak_rss_bytes` unless a test
        injects one.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        peak_rss_bytes: Callable[[], int] | None = None,
    ) -> None:
        self._clock = clock
        self._peak_rss_bytes = peak_rss_bytes or process_peak_rss_bytes
        self._lock = threading.Lock()
        self._seconds: dict[str, float] = {}
        self._peak_after: dict[str, int] = {}
        self._first_start_s: float | None = None

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        """Add the time spent inside the ``with`` block to ``stage`` (also when it raises)."""
        start = self._clock()
        with self._lock:
            if self._first_start_s is None:
                self._first_start_s = start
        try:
            yield
        finally:
            elapsed = self._clock() - start
            peak = self._peak_rss_bytes()
            with self._lock:
                self._seconds[stage] = self._seconds.get(stage, 0.0) + elapsed
                self._peak_after[stage] = peak

    @property
    def first_start_s(self) -> float | None:
        """Clock reading when the first stage started, None before any did."""
        return self._first_start_s

    def seconds(self) -> dict[str, float]:
        """Seconds per stage, a copy."""
        with self._lock:
            return dict(self._seconds)

    def peak_rss_after(self) -> dict[str, int]:
        """Peak resident memory of the process (bytes) when each stage last ended, a copy."""
        with self._lock:
            return dict(self._peak_after)


def process_peak_rss_bytes() -> int:
    """The peak resident memory of this process so far, in bytes (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass(frozen=True)
class VolumeSummary:
    """Geometry of a volume the application built from a chosen series.

    ``shape`` is ``(nz, ny, nx)``, ``spacing_mm`` ``(dz, dy, dx)`` and ``origin_lps_mm`` the
    LPS centre of voxel ``[0, 0, 0]``, as in :class:`core.geometry.Grid`.
    """

    role: str
    series_instance_uid: str
    shape: tuple[int, ...]
    spacing_mm: tuple[float, ...]
    origin_lps_mm: tuple[float, ...]
    dtype: str

    @classmethod
    def from_grid(cls, role: str, series_instance_uid: str, volume: np.ndarray, grid: Grid) -> VolumeSummary:
        """Summary of ``volume`` (shape ``grid.shape``) on ``grid``."""
        if tuple(volume.shape) != tuple(grid.shape):
            raise ValueError(f"volume shape {volume.shape} differs from its grid's shape {grid.shape}")
        return cls(
            role,
            series_instance_uid,
            tuple(grid.shape),
            tuple(grid.spacing_mm),
            tuple(grid.origin_lps_mm),
            str(volume.dtype),
        )

    def as_dict(self) -> dict[str, object]:
        """JSON-ready mapping; floats rounded to micrometres."""
        return {
            "series_instance_uid": self.series_instance_uid,
            "shape": list(self.shape),
            "spacing_mm": [round(float(v), 6) for v in self.spacing_mm],
            "origin_lps_mm": [round(float(v), 6) for v in self.origin_lps_mm],
            "dtype": self.dtype,
        }


SEGMENTED = "segmented"
NO_LUNGS_FOUND = "no_lungs_found"
NOT_RUN = "not_run"
"""Values of :attr:`LungSegmentationSummary.status`."""


@dataclass(frozen=True)
class LungSegmentationSummary:
    """Outcome of the lung segmentation.

    ``status`` is :data:`SEGMENTED`, :data:`NO_LUNGS_FOUND` (the CT shows no lungs; ``reason``
    says why) or :data:`NOT_RUN` (no CT in the study).  ``lung_volumes_ml`` maps
    ``"right_lung"`` / ``"left_lung"`` to millilitres.
    """

    status: str
    reason: str | None = None
    lung_volumes_ml: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_mask(cls, mask: np.ndarray, affine_lps: np.ndarray) -> LungSegmentationSummary:
        """Summary of a :class:`LungLabel` mask whose voxels are placed by the 4x4 index-to-LPS ``affine_lps``."""
        voxel_ml = abs(float(np.linalg.det(np.asarray(affine_lps, dtype=np.float64)[:3, :3]))) / 1000.0
        volumes = {
            label.name.lower(): float(np.count_nonzero(mask == label)) * voxel_ml
            for label in (LungLabel.RIGHT_LUNG, LungLabel.LEFT_LUNG)
        }
        return cls(SEGMENTED, None, volumes)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready mapping; volumes rounded to 0.1 mL."""
        return {
            "status": self.status,
            "reason": self.reason,
            "lung_volumes_ml": {name: round(float(v), 1) for name, v in self.lung_volumes_ml.items()},
        }


@dataclass(frozen=True)
class LungCropSummary:
    """Where one lung's network crop lies.

    ``box_zyx`` holds ``[start, stop)`` voxel ranges of the canonical ``(z, y, x)`` CT grid
    (:mod:`core.orientation`); ``shape`` and ``spacing_mm`` are the crop's matrix and voxel size.
    """

    lung: str
    box_zyx: tuple[tuple[int, int], ...]
    shape: tuple[int, ...]
    spacing_mm: tuple[float, ...]

    @classmethod
    def from_crop(cls, label: LungLabel, crop: LungCrop) -> LungCropSummary:
        """Summary of the crop of lung ``label``."""
        return cls(
            label.name.lower(),
            tuple((int(part.start), int(part.stop)) for part in crop.box),
            tuple(int(n) for n in crop.shape),
            tuple(float(s) for s in crop.grid.spacing_mm),
        )

    def as_dict(self) -> dict[str, object]:
        """JSON-ready mapping; spacings rounded to micrometres."""
        return {
            "box_zyx": [list(r) for r in self.box_zyx],
            "shape": list(self.shape),
            "spacing_mm": [round(s, 6) for s in self.spacing_mm],
        }


@dataclass(frozen=True)
class OutputFile:
    """A DICOM object the run wrote, by its name inside the output folder."""

    name: str
    sop_class_uid: str
    series_instance_uid: str
    series_number: int
    series_description: str

    @classmethod
    def from_dicom(cls, path: Path, output_dir: Path) -> OutputFile:
        """Read the header of ``path`` (a file inside ``output_dir``)."""
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return cls(
            str(Path(path).relative_to(output_dir)),
            str(ds.SOPClassUID),
            str(ds.SeriesInstanceUID),
            int(ds.SeriesNumber),
            str(ds.get("SeriesDescription", "")),
        )

    def as_dict(self) -> dict[str, object]:
        """JSON-ready mapping."""
        return {
            "file": self.name,
            "sop_class_uid": self.sop_class_uid,
            "series_instance_uid": self.series_instance_uid,
            "series_number": self.series_number,
            "series_description": self.series_description,
        }


def software_versions() -> dict[str, str]:
    """Versions of Python and of the packages in :data:`SOFTWARE_DISTRIBUTIONS` (none is imported)."""
    versions = {"python": platform.python_version()}
    for name, distributions in SOFTWARE_DISTRIBUTIONS.items():
        versions[name] = NOT_INSTALLED
        for distribution in distributions:
            try:
                versions[name] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def host_info() -> dict[str, object]:
    """CPU count, usable CPUs, memory, platform and NVIDIA driver (None without one); no host name."""
    pages = os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    page_size = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0
    driver = _NVIDIA_DRIVER_FILE.read_text().splitlines()[0].strip() if _NVIDIA_DRIVER_FILE.is_file() else None
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(pages * page_size / _BYTES_PER_GIB, 1),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "nvidia_driver": driver,
    }


def series_entry(verdict: SeriesVerdict) -> dict[str, object]:
    """One found series and the decision about it, JSON-ready."""
    s = verdict.summary
    return {
        "series_instance_uid": s.series_instance_uid,
        "study_instance_uid": s.study_instance_uid,
        "series_number": s.series_number,
        "modality": s.modality,
        "series_description": s.series_description,
        "number_of_instances": s.n_instances,
        "number_of_slices": s.n_slices,
        "orientation": s.orientation,
        "image_type": list(s.image_type),
        "radiopharmaceuticals": list(s.radiopharmaceuticals),
        "classification": verdict.role,
        "decision": verdict.decision,
        "reason": verdict.reason,
    }


@dataclass(frozen=True)
class RunContext:
    """What is known about a run before it starts.

    ``started_perf_s`` is a reading of the same monotonic clock as the :class:`StageTimings`.
    """

    app_name: str
    app_version: str
    input_dir: Path
    output_dir: Path
    started_at: datetime
    started_perf_s: float


@dataclass(frozen=True)
class RunFacts:
    """What a finished run knows about itself; turned into the record by :func:`build_run_record`."""

    context: RunContext
    selection: SelectionResult
    volumes: Sequence[VolumeSummary]
    timings: StageTimings
    ended_at: datetime
    ended_perf_s: float
    status: str
    warnings: Sequence[str] = ()
    lung_segmentation: LungSegmentationSummary | None = None
    lung_crops: Sequence[LungCropSummary] = ()
    outputs: Sequence[OutputFile] = ()
    functional: Mapping[str, object] | None = None
    """Synthetic perfusion/ventilation: model and regional table (see operators.functional_synthesis_operator)."""
    denoising: Mapping[str, object] | None = None
    """Fast bone SPECT denoising: model, count ratio (see core.nm.denoising_outputs.DenoisingResult.summary)."""
    ct_perfusion: Mapping[str, object] | None = None
    dsc_perfusion: Mapping[str, object] | None = None
    """CT perfusion: method, AIF, lesion volumes, mismatch (see core.perfusion.ctp_outputs.ctp_summary)."""


def build_run_record(facts: RunFacts) -> dict[str, object]:
    """The run record as a JSON-ready dict (see the module docstring for what it never holds)."""
    context = facts.context
    first_start = facts.timings.first_start_s
    startup = None if first_start is None else round(first_start - context.started_perf_s, 3)
    return {
        "record_version": RECORD_VERSION,
        "app": {"name": context.app_name, "version": context.app_version},
        "status": facts.status,
        "started_at": context.started_at.isoformat(timespec="milliseconds"),
        "ended_at": facts.ended_at.isoformat(timespec="milliseconds"),
        "timings_s": {
            "total_wall": round(facts.ended_perf_s - context.started_perf_s, 3),
            "before_first_operator": startup,
            "operators": {name: round(s, 3) for name, s in facts.timings.seconds().items()},
        },
        "peak_memory_mib": {
            "process": round(process_peak_rss_bytes() / _BYTES_PER_MIB),
            "after_operator": {name: round(b / _BYTES_PER_MIB) for name, b in facts.timings.peak_rss_after().items()},
        },
        "software": software_versions(),
        "host": host_info(),
        "input_folder": str(context.input_dir),
        "output_folder": str(context.output_dir),
        "study_instance_uid": facts.selection.study_instance_uid,
        "series_found": [series_entry(v) for v in facts.selection.verdicts],
        "series_chosen": {
            role: {"series_instance_uid": v.summary.series_instance_uid, "reason": v.reason}
            for role, v in facts.selection.chosen.items()
        },
        "volumes": {v.role: v.as_dict() for v in facts.volumes},
        "lung_segmentation": None if facts.lung_segmentation is None else facts.lung_segmentation.as_dict(),
        "lung_crops": {crop.lung: crop.as_dict() for crop in facts.lung_crops},
        "functional": None if facts.functional is None else dict(facts.functional),
        "denoising": None if facts.denoising is None else dict(facts.denoising),
        "ct_perfusion": None if facts.ct_perfusion is None else dict(facts.ct_perfusion),
        "dsc_perfusion": None if facts.dsc_perfusion is None else dict(facts.dsc_perfusion),
        "outputs": [output.as_dict() for output in facts.outputs],
        "warnings": list(facts.warnings),
    }


def write_run_record(record: Mapping[str, object], path: Path) -> Path:
    """Write ``record`` as indented UTF-8 JSON to ``path`` and return ``path``."""
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    logger.debug("Wrote the run record to %s", path)
    return path
