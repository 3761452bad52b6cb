"""Which series of a study the application uses, and why.

Pure functions over pydicom datasets and small frozen records; no framework imports.
The rules are data (:class:`SelectionRules`); their values live in the app's config.

Roles a series can take:

* ``"ct"``: the chest CT, a stack of axial single-frame CT images.  Among several, the
  one with the most slices wins, then the thinnest, then the lowest series number.
* ``"ctp"``: a dynamic axial CT (CT perfusion): the same slice positions at many acquisition times.
  Among several, the one with most slices wins, then most time points.
* ``"dsc"``: a dynamic axial MR series (DSC perfusion), single-frame MR images repeating their slice
  positions at many time points; chosen like a CT perfusion.
* ``"perfusion"``, ``"ventilation"``, ``"bone"``, ``"bone_fast"``: a reconstructed tomographic NM
  (SPECT) volume in one multi-frame instance, classified by its radiopharmaceutical
  (Radiopharmaceutical Information Sequence), with the SeriesDescription as a fallback, and,
  where a rule asks for it, by its acquisition time per view (ActualFrameDuration of the
  Rotation Information Sequence): a 1/7-time bone SPECT is ``"bone_fast"``, a standard one
  ``"bone"``.  Among several of one tracer, attenuation-corrected ones win, then the one with
  most slices.

Nothing here reads or reports patient names, IDs or birth dates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import MediaStorageDirectoryStorage

from core.dicom.ctp_reader import time_points_per_position
from core.errors import NoMatchingSeriesError

CT_ROLE = "ct"
CTP_ROLE = "ctp"
"""Role of a dynamic (4D) CT perfusion series: the same slice positions at several acquisition times."""
DSC_ROLE = "dsc"
"""Role of a dynamic susceptibility contrast MR perfusion series."""
CHOSEN = "chosen"
NOT_CHOSEN = "not chosen"
REJECTED = "rejected"
_POSITION_DECIMALS = 3


def _check_tilt(owner: str, max_tilt_deg: float) -> None:
    if not 0.0 < max_tilt_deg < 90.0:
        raise ValueError(f"{owner}.max_tilt_deg must be in (0, 90) degrees, got {max_tilt_deg}")


@dataclass(frozen=True)
class TracerRule:
    """How to recognise one NM tracer.

    Parameters
    ----------
    tracer
        Role name, e.g. ``"perfusion"``.
    radiopharmaceutical_pattern
        Regular expression (case-insensitive) searched in the CodeMeaning of the
        Radiopharmaceutical Code Sequence and in the Radiopharmaceutical text.
    description_pattern
        Regular expression (case-insensitive) searched in SeriesDescription when the
        radiopharmaceutical names no tracer.
    max_time_per_view_s
        If set, only series whose time per view is known and at most this many seconds qualify
        (a fast acquisition).
    min_exclusive_time_per_view_s
        If set, series whose time per view is known and not longer than this do not qualify
        (an unknown time per view does); with the same value as another rule's
        ``max_time_per_view_s``, every series fits exactly one of the two.
    """

    tracer: str
    radiopharmaceutical_pattern: str
    description_pattern: str
    max_time_per_view_s: float | None = None
    min_exclusive_time_per_view_s: float | None = None

    def accepts_time_per_view(self, seconds: float | None) -> bool:
        """Whether a series acquired with ``seconds`` per view (None: unknown) can be this tracer."""
        if self.max_time_per_view_s is not None and (seconds is None or seconds > self.max_time_per_view_s):
            return False
        return not (
            self.min_exclusive_time_per_view_s is not None
            and seconds is not None
            and seconds <= self.min_exclusive_time_per_view_s
        )

    def __post_init__(self) -> None:
        limits = (self.min_exclusive_time_per_view_s, self.max_time_per_view_s)
        if any(v is not None and not v > 0 for v in limits):
            raise ValueError(f"TracerRule {self.tracer!r}: time-per-view limits must be positive, got {limits}")
        for name in ("radiopharmaceutical_pattern", "description_pattern"):
            try:
                re.compile(getattr(self, name))
            except re.error as error:
                raise ValueError(
                    f"TracerRule {self.tracer!r}: {name} is not a valid regular expression: {error}"
                ) from error


@dataclass(frozen=True)
class CtRule:
    """What makes a series a usable chest CT.

    Parameters
    ----------
    modality
        DICOM Modality, ``"CT"``.
    sop_class_uids
        Accepted SOP classes (single-frame CT Image Storage).
    excluded_image_types
        ImageType values that disqualify a series (``"LOCALIZER"``).
    max_tilt_deg
        Largest angle in degrees between the slice normal and the patient's z axis.
    min_slices
        Fewest distinct slice positions that make a volume.
    min_perfusion_frames
        Fewest time points at every position that make a dynamic series a CT perfusion (role ``ctp``);
        a series repeating its positions fewer times is rejected.
    """

    modality: str
    sop_class_uids: tuple[str, ...]
    excluded_image_types: tuple[str, ...]
    max_tilt_deg: float
    min_slices: int
    min_perfusion_frames: int = 10

    def __post_init__(self) -> None:
        _check_tilt("CtRule", self.max_tilt_deg)
        if self.min_slices < 1:
            raise ValueError(f"CtRule.min_slices must be at least 1, got {self.min_slices}")
        if self.min_perfusion_frames < 2:
            raise ValueError(f"CtRule.min_perfusion_frames must be at least 2, got {self.min_perfusion_frames}")


@dataclass(frozen=True)
class NmRule:
    """What makes a series a usable tomographic NM (SPECT) volume.

    Parameters
    ----------
    modality
        DICOM Modality, ``"NM"``.
    sop_class_uids
        Accepted SOP classes (NM Image Storage).
    required_image_type
        ImageType value every candidate carries (``"RECON TOMO"``).
    excluded_image_types
        ImageType values that disqualify a series (``"TRANSMISSION"``: attenuation maps).
    max_tilt_deg
        Largest angle in degrees between the slice normal and the patient's z axis.
    tracers
        How each tracer is recognised, in order of precedence.
    """

    modality: str
    sop_class_uids: tuple[str, ...]
    required_image_type: str
    excluded_image_types: tuple[str, ...]
    max_tilt_deg: float
    tracers: tuple[TracerRule, ...]

    def __post_init__(self) -> None:
        _check_tilt("NmRule", self.max_tilt_deg)
        names = [rule.tracer for rule in self.tracers]
        if len(set(names)) != len(names) or CT_ROLE in names:
            raise ValueError(f"NmRule.tracers must have distinct names other than {CT_ROLE!r}, got {names}")


@dataclass(frozen=True)
class MrRule:
    """What makes a series a usable DSC perfusion MR series.

    Parameters
    ----------
    modality
        DICOM Modality, ``"MR"``.
    sop_class_uids
        Accepted SOP classes (single-frame MR Image Storage).
    max_tilt_deg
        Largest angle in degrees between the slice normal and the patient's z axis.
    min_perfusion_frames
        Fewest time points at every slice position that make a DSC perfusion series (a first pass
        of the bolus with a baseline before it lasts at least about 20 s at one volume per second).
    """

    modality: str
    sop_class_uids: tuple[str, ...]
    max_tilt_deg: float = 30.0
    min_perfusion_frames: int = 20

    def __post_init__(self) -> None:
        _check_tilt("MrRule", self.max_tilt_deg)
        if self.min_perfusion_frames < 2:
            raise ValueError(f"MrRule.min_perfusion_frames must be at least 2, got {self.min_perfusion_frames}")


DSC_MR_RULE = MrRule(modality="MR", sop_class_uids=("1.2.840.10008.5.1.4.1.1.4",))
"""DSC perfusion: single-frame MR Image Storage, at most 30 degrees from axial (oblique-axial brain slices)."""


@dataclass(frozen=True)
class SelectionRules:
    """All selection rules of the application."""

    ct: CtRule
    nm: NmRule
    mr: MrRule = DSC_MR_RULE

    @property
    def roles(self) -> tuple[str, ...]:
        """Every role a series can be chosen for, CT, CT perfusion and DSC first."""
        return (CT_ROLE, CTP_ROLE, DSC_ROLE, *(rule.tracer for rule in self.nm.tracers))


@dataclass(frozen=True)
class SeriesSummary:
    """What the selection needs to know about one series; free of patient identifiers.

    ``slice_normal`` is the unit normal ``row x column`` of ImageOrientationPatient
    (for NM taken from the Detector Information Sequence), or None when absent.
    ``n_slices`` counts distinct slice positions (single-frame) or frames (multi-frame).
    """

    series_instance_uid: str
    study_instance_uid: str
    modality: str
    sop_class_uid: str
    series_description: str
    series_number: int | None
    n_instances: int
    n_slices: int
    image_type: tuple[str, ...]
    slice_normal: tuple[float, float, float] | None
    slice_thickness_mm: float | None
    uniform_geometry: bool
    attenuation_corrected: bool
    radiopharmaceuticals: tuple[str, ...]
    time_per_view_s: float | None = None
    """ActualFrameDuration of the first rotation, in s; None when not given (or not NM)."""
    time_points: int = 1
    """Most acquisition times at one slice position: 1 for a static CT, the frame count of a CT perfusion."""
    conflicting_positions: int = 0
    """Slice positions of a static series holding two or more different images that the DICOM loader
    cannot tell apart (other SOP Instance UIDs, the same AcquisitionNumber)."""

    @property
    def orientation(self) -> str:
        """``"axial"``, ``"coronal"``, ``"sagittal"`` (dominant axis of the normal) or ``"unknown"``."""
        if self.slice_normal is None:
            return "unknown"
        return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(self.slice_normal)))]

    def tilt_deg(self) -> float | None:
        """Angle in degrees between the slice normal and the patient z axis, None if unknown."""
        if self.slice_normal is None:
            return None
        return math.degrees(math.acos(min(1.0, abs(self.slice_normal[2]))))

    def describe(self) -> str:
        """One line for logs: number, modality, description, size and orientation."""
        number = "?" if self.series_number is None else str(self.series_number)
        return (
            f"series {number} ({self.modality}, '{self.series_description}', {self.n_instances} instance(s), "
            f"{self.n_slices} slice(s), {self.orientation})"
        )


@dataclass(frozen=True)
class SeriesVerdict:
    """The decision about one series: ``decision`` is CHOSEN, NOT_CHOSEN or REJECTED."""

    summary: SeriesSummary
    role: str | None
    decision: str
    reason: str


@dataclass(frozen=True)
class SelectionResult:
    """Every series found, each with its verdict."""

    verdicts: tuple[SeriesVerdict, ...]

    @property
    def chosen(self) -> dict[str, SeriesVerdict]:
        """Chosen series by role."""
        return {v.role: v for v in self.verdicts if v.decision == CHOSEN and v.role is not None}

    @property
    def study_instance_uid(self) -> str | None:
        """The study the chosen series belong to, None when nothing was chosen."""
        chosen = list(self.chosen.values())
        return chosen[0].summary.study_instance_uid if chosen else None


@dataclass(frozen=True)
class DamagedFile:
    """A DICOM Part 10 file that cannot be used: its header does not parse, or it names no study or series."""

    path: Path
    problem: str


@dataclass(frozen=True)
class FolderScan:
    """Headers found in an input folder, the files that are not DICOM Part 10, and the damaged ones.

    ``directory_files`` are DICOMDIR media directories: DICOM, but not part of any series.
    """

    n_files: int
    series: tuple[SeriesSummary, ...]
    non_dicom_files: tuple[Path, ...]
    damaged_files: tuple[DamagedFile, ...] = ()
    directory_files: tuple[Path, ...] = ()

    @property
    def n_dicom_files(self) -> int:
        """Number of DICOM Part 10 files."""
        return self.n_files - len(self.non_dicom_files)


def scan_folder(folder: Path) -> FolderScan:
    """Read the headers (no pixel data) of every DICOM Part 10 file under ``folder``.

    Files without the ``DICM`` preamble are listed as non-DICOM, as the SDK's DICOM loader skips
    them.  A file whose header does not parse (corrupted, or cut off by an interrupted transfer) or
    that names no StudyInstanceUID or SeriesInstanceUID is listed as damaged, a DICOMDIR as a
    directory file; neither belongs to a series.  An unreadable file raises ``OSError``.
    """
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    by_series: dict[str, list[Dataset]] = {}
    non_dicom, damaged, directories = [], [], []
    for path in files:
        try:
            ds = dcmread(path, stop_before_pixels=True)
            for _ in ds.iterall():  # pydicom parses elements when first accessed: parse them all now
                pass
        except InvalidDicomError:
            non_dicom.append(path)
            continue
        except OSError:
            raise
        except Exception as error:  # any parse failure of a damaged header (ValueError, NotImplementedError, ...)
            damaged.append(DamagedFile(path, f"header does not parse: {error}"))
            continue
        if ds.file_meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
            directories.append(path)
        elif "SeriesInstanceUID" in ds and "StudyInstanceUID" in ds:
            by_series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
        else:
            damaged.append(DamagedFile(path, "no StudyInstanceUID or SeriesInstanceUID (truncated or damaged?)"))
    summaries = tuple(summarize_series(group) for group in by_series.values())
    return FolderScan(len(files), summaries, tuple(non_dicom), tuple(damaged), tuple(directories))


def summarize_series(datasets: Sequence[Dataset]) -> SeriesSummary:
    """Summarise the instances of one series (headers suffice; pixel data is not read)."""
    if not datasets:
        raise ValueError("summarize_series needs at least one dataset, got none")
    first = datasets[0]
    n_frames = [int(ds.get("NumberOfFrames", 1) or 1) for ds in datasets]
    if max(n_frames) > 1:
        n_slices = sum(n_frames)
    else:
        positions = {_rounded(ds.ImagePositionPatient) for ds in datasets if "ImagePositionPatient" in ds}
        n_slices = len(positions) if positions else len(datasets)
    normal = _slice_normal(first)
    return SeriesSummary(
        series_instance_uid=str(first.SeriesInstanceUID),
        study_instance_uid=str(first.StudyInstanceUID),
        modality=str(first.get("Modality", "")).upper(),
        sop_class_uid=str(first.get("SOPClassUID", "")),
        series_description=str(first.get("SeriesDescription", "") or ""),
        series_number=int(first.SeriesNumber) if first.get("SeriesNumber") not in (None, "") else None,
        n_instances=len(datasets),
        n_slices=n_slices,
        image_type=tuple(str(v).strip().upper() for v in _as_list(first.get("ImageType"))),
        slice_normal=None if normal is None else (float(normal[0]), float(normal[1]), float(normal[2])),
        slice_thickness_mm=float(first.SliceThickness) if first.get("SliceThickness") not in (None, "") else None,
        uniform_geometry=len({_geometry_key(ds) for ds in datasets}) == 1,
        attenuation_corrected="ATTN" in {str(v).upper() for v in _as_list(first.get("CorrectedImage"))},
        radiopharmaceuticals=_radiopharmaceutical_texts(first),
        time_per_view_s=_time_per_view_s(first),
        time_points=max(time_points_per_position(datasets), 1) if max(n_frames) == 1 else 1,
        conflicting_positions=_conflicting_positions(datasets) if max(n_frames) == 1 else 0,
    )


def classify_tracer(summary: SeriesSummary, tracers: Sequence[TracerRule]) -> tuple[str | None, str]:
    """Tracer of an NM series and how it was recognised.

    Returns
    -------
    tracer, reason
        ``tracer`` is None when the series names no tracer or several; ``reason`` says why.
    """
    tracers = [rule for rule in tracers if rule.accepts_time_per_view(summary.time_per_view_s)]
    by_pharmaceutical = _matches(summary.radiopharmaceuticals, tracers, "radiopharmaceutical_pattern")
    if len(by_pharmaceutical) == 1:
        tracer, text = next(iter(by_pharmaceutical.items()))
        return tracer, f"radiopharmaceutical '{text}'"
    if len(by_pharmaceutical) > 1:
        return None, f"radiopharmaceutical names several tracers ({', '.join(sorted(by_pharmaceutical))})"
    description = (summary.series_description,)
    by_description = _matches(description, tracers, "description_pattern")
    by_description.update(_matches(description, tracers, "radiopharmaceutical_pattern"))
    if len(by_description) == 1:
        tracer = next(iter(by_description))
        return tracer, f"SeriesDescription '{summary.series_description}'"
    known = ", ".join(f"'{t}'" for t in summary.radiopharmaceuticals) or "none given"
    return None, f"tracer not recognised (radiopharmaceutical: {known}; '{summary.series_description}')"


def assess_series(summary: SeriesSummary, rules: SelectionRules) -> tuple[str | None, str]:
    """The role a series qualifies for (None if none) and why."""
    if summary.modality == rules.ct.modality:
        return _assess_ct(summary, rules.ct)
    if summary.modality == rules.nm.modality:
        return _assess_nm(summary, rules.nm)
    if summary.modality == rules.mr.modality:
        return _assess_mr(summary, rules.mr)
    return None, f"modality {summary.modality or 'missing'} is not used by this application"


def select_series(summaries: Sequence[SeriesSummary], rules: SelectionRules) -> SelectionResult:
    """Choose at most one series per role, all from one study.

    Raises
    ------
    NoMatchingSeriesError
        If no series qualifies for any role; the message lists what was found.
    """
    ordered = sorted(summaries, key=lambda s: (_or_inf(s.series_number), s.series_instance_uid))
    assessed = [(s, *assess_series(s, rules)) for s in ordered]
    study = _best_study([(s, role) for s, role, _ in assessed])
    winners = {
        role: _best_candidate(role, [s for s, r, _ in assessed if r == role and s.study_instance_uid == study])
        for role in rules.roles
    }
    result = SelectionResult(tuple(_verdict(s, role, reason, winners, study) for s, role, reason in assessed))
    if not result.chosen:
        found = "; ".join(f"{v.summary.describe()}: {v.reason}" for v in result.verdicts) or "no series"
        raise NoMatchingSeriesError(
            f"no chest CT, CT perfusion, DSC perfusion MR or lung/bone SPECT series found (found: {found}); "
            "add such a series to the input folder, or correct the problem given for it"
        )
    return result


def require_ct(result: SelectionResult) -> None:
    """Refuse a selection without a chest CT, a CT perfusion or a DSC MR: every result is computed from one.

    The synthetic maps need only the CT; the SPECT comparisons are made on the CT's lungs; the
    perfusion maps need only the CT perfusion or the DSC series.

    Raises
    ------
    NoMatchingSeriesError
        If none was chosen; the message lists what was found and why each series was not used.
    """
    if {CT_ROLE, CTP_ROLE, DSC_ROLE} & set(result.chosen):
        return
    found = "; ".join(f"{v.summary.describe()}: {v.reason}" for v in result.verdicts) or "no series"
    raise NoMatchingSeriesError(
        "no chest CT series found (nor a CT perfusion or DSC perfusion MR); every result of this application is "
        "computed from one of them, so add the study's CT series to the input folder, or correct the problem "
        f"given for it (found: {found})"
    )


def selection_warnings(result: SelectionResult, rules: SelectionRules) -> list[str]:
    """Findings a user may want to act on.

    Qualifying series from more than one study, and reconstructed SPECT series that were
    rejected (unknown tracer, split over instances, not axial).  Localizers, reformats and
    other modalities are rejected silently: they are expected in every study.
    """
    warnings = []
    studies = {v.summary.study_instance_uid for v in result.verdicts if v.role is not None}
    if len(studies) > 1:
        warnings.append(
            f"qualifying series come from {len(studies)} studies; only study {result.study_instance_uid} was used"
        )
    for verdict in result.verdicts:
        image_type = set(verdict.summary.image_type)
        if (
            verdict.decision == REJECTED
            and verdict.summary.modality == rules.nm.modality
            and rules.nm.required_image_type in image_type
            and not image_type & set(rules.nm.excluded_image_types)
        ):
            warnings.append(f"SPECT {verdict.summary.describe()} was not used: {verdict.reason}")
    return warnings


def _assess_ct(summary: SeriesSummary, rule: CtRule) -> tuple[str | None, str]:
    if summary.sop_class_uid not in rule.sop_class_uids:
        return None, f"CT SOP class {summary.sop_class_uid} is not single-frame CT Image Storage"
    excluded = sorted(set(summary.image_type) & set(rule.excluded_image_types))
    if excluded:
        return None, f"{excluded[0].lower()} image (ImageType {_joined(summary.image_type)})"
    tilt = summary.tilt_deg()
    if tilt is None and "AXIAL" not in summary.image_type:
        return None, "orientation unknown (no ImageOrientationPatient and ImageType is not AXIAL)"
    if tilt is not None and tilt > rule.max_tilt_deg:
        return None, (
            f"not axial ({summary.orientation}, slice normal {tilt:.0f} deg from the patient axis; at most "
            f"{rule.max_tilt_deg:g} deg is accepted, so a gantry-tilted or oblique CT needs axial slices "
            "reconstructed first)"
        )
    if not summary.uniform_geometry:
        return None, "slices differ in size or orientation"
    if summary.n_slices < rule.min_slices:
        return None, f"only {summary.n_slices} slice(s); a volume needs at least {rule.min_slices}"
    if summary.conflicting_positions and summary.time_points == 1:
        return None, (
            f"{summary.conflicting_positions} slice position(s) hold two different images (other SOP Instance "
            "UIDs, the same AcquisitionNumber); remove the wrong copies or send the series again"
        )
    if summary.time_points > 1:
        if summary.time_points < rule.min_perfusion_frames:
            return None, (
                f"dynamic CT with only {summary.time_points} time points; a CT perfusion needs at least "
                f"{rule.min_perfusion_frames}"
            )
        return CTP_ROLE, f"dynamic axial CT (CT perfusion), {summary.time_points} time points"
    return CT_ROLE, "axial CT"


def _assess_mr(summary: SeriesSummary, rule: MrRule) -> tuple[str | None, str]:
    if summary.sop_class_uid not in rule.sop_class_uids:
        return None, f"MR SOP class {summary.sop_class_uid} is not single-frame MR Image Storage"
    if summary.time_points < 2:
        return None, "static MR (no repeated slice positions): not a DSC perfusion series"
    tilt = summary.tilt_deg()
    if tilt is None or tilt > rule.max_tilt_deg:
        return None, f"dynamic MR not axial ({summary.orientation})"
    if not summary.uniform_geometry:
        return None, "slices differ in size or orientation"
    if summary.time_points < rule.min_perfusion_frames:
        return None, (
            f"dynamic MR with only {summary.time_points} time points; a DSC perfusion needs at least "
            f"{rule.min_perfusion_frames}"
        )
    return DSC_ROLE, f"dynamic axial MR (DSC perfusion), {summary.time_points} time points"


def _assess_nm(summary: SeriesSummary, rule: NmRule) -> tuple[str | None, str]:
    image_type = _joined(summary.image_type)
    if summary.sop_class_uid not in rule.sop_class_uids:
        return None, f"NM SOP class {summary.sop_class_uid} is not NM Image Storage"
    if rule.required_image_type not in summary.image_type:
        return None, f"not a reconstructed tomographic image (ImageType {image_type})"
    if set(summary.image_type) & set(rule.excluded_image_types):
        return None, f"transmission / attenuation map (ImageType {image_type})"
    if summary.n_instances != 1:
        return None, f"volume spread over {summary.n_instances} instances; expected one multi-frame instance"
    tilt = summary.tilt_deg()
    if tilt is None or tilt > rule.max_tilt_deg:
        return None, f"not an axial volume ({summary.orientation})"
    tracer, how = classify_tracer(summary, rule.tracers)
    if tracer is None:
        return None, how
    return tracer, f"reconstructed SPECT, {tracer} by {how}"


def _best_study(candidates: Sequence[tuple[SeriesSummary, str | None]]) -> str | None:
    """The study with the most distinct roles, then most qualifying series, then the lowest UID."""
    roles: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for summary, role in candidates:
        if role is not None:
            roles.setdefault(summary.study_instance_uid, set()).add(role)
            counts[summary.study_instance_uid] = counts.get(summary.study_instance_uid, 0) + 1
    if not roles:
        return None
    return min(roles, key=lambda uid: (-len(roles[uid]), -counts[uid], uid))


def _best_candidate(role: str, candidates: Sequence[SeriesSummary]) -> SeriesSummary | None:
    if not candidates:
        return None
    if role == CT_ROLE:
        return min(
            candidates,
            key=lambda s: (-s.n_slices, _or_inf(s.slice_thickness_mm), _or_inf(s.series_number), s.series_instance_uid),
        )
    if role in (CTP_ROLE, DSC_ROLE):
        return min(
            candidates,
            key=lambda s: (-s.n_slices, -s.time_points, _or_inf(s.series_number), s.series_instance_uid),
        )
    return min(
        candidates,
        key=lambda s: (not s.attenuation_corrected, -s.n_slices, _or_inf(s.series_number), s.series_instance_uid),
    )


def _verdict(
    summary: SeriesSummary, role: str | None, reason: str, winners: dict[str, SeriesSummary | None], study: str | None
) -> SeriesVerdict:
    if role is None:
        return SeriesVerdict(summary, None, REJECTED, reason)
    if summary.study_instance_uid != study:
        return SeriesVerdict(summary, role, NOT_CHOSEN, f"{reason}, but from another study than the chosen series")
    winner = winners[role]
    if winner is summary:
        return SeriesVerdict(summary, role, CHOSEN, f"{reason}; {_preference(role, summary)}")
    assert winner is not None
    return SeriesVerdict(summary, role, NOT_CHOSEN, f"{reason}, but {winner.describe()} is preferred")


def _preference(role: str, summary: SeriesSummary) -> str:
    if role == CT_ROLE:
        thickness = "" if summary.slice_thickness_mm is None else f", {summary.slice_thickness_mm:g} mm thick"
        return f"most slices ({summary.n_slices}{thickness})"
    if role in (CTP_ROLE, DSC_ROLE):
        return f"most slices ({summary.n_slices}) and time points ({summary.time_points})"
    corrected = "attenuation-corrected, " if summary.attenuation_corrected else ""
    return f"{corrected}{summary.n_slices} slices"


def _matches(texts: Iterable[str], tracers: Sequence[TracerRule], attribute: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for text in texts:
        for rule in tracers:
            if text and re.search(getattr(rule, attribute), text, re.IGNORECASE):
                found.setdefault(rule.tracer, text)
    return found


def _radiopharmaceutical_texts(ds: Dataset) -> tuple[str, ...]:
    texts: list[str] = []
    for item in ds.get("RadiopharmaceuticalInformationSequence", []):
        texts.extend(str(code.get("CodeMeaning", "")) for code in item.get("RadiopharmaceuticalCodeSequence", []))
        texts.append(str(item.get("Radiopharmaceutical", "") or ""))
    return tuple(dict.fromkeys(t.strip() for t in texts if t and t.strip()))


def _time_per_view_s(ds: Dataset) -> float | None:
    for item in ds.get("RotationInformationSequence", []):
        duration = item.get("ActualFrameDuration")
        if duration not in (None, "") and float(duration) > 0:
            return float(duration) / 1000.0
    return None


def _conflicting_positions(datasets: Sequence[Dataset]) -> int:
    """Positions whose images of the highest AcquisitionNumber are two or more different instances.

    The DICOM loader keeps one image per position, the one of the highest AcquisitionNumber (a
    re-acquired slice); between different images of equal numbers it cannot choose.
    """
    by_position: dict[tuple[float, ...], dict[int, set[str]]] = {}
    for ds in datasets:
        if "ImagePositionPatient" in ds:
            number = int(ds.get("AcquisitionNumber") or -1)
            instances = by_position.setdefault(_rounded(ds.ImagePositionPatient), {}).setdefault(number, set())
            instances.add(str(ds.get("SOPInstanceUID", "")))
    return sum(len(numbers[max(numbers)]) > 1 for numbers in by_position.values())


def _orientation(ds: Dataset) -> list[float] | None:
    if "ImageOrientationPatient" in ds:
        return [float(v) for v in ds.ImageOrientationPatient]
    for item in ds.get("DetectorInformationSequence", []):
        if "ImageOrientationPatient" in item:
            return [float(v) for v in item.ImageOrientationPatient]
    return None


def _slice_normal(ds: Dataset) -> np.ndarray | None:
    iop = _orientation(ds)
    if iop is None or len(iop) != 6:
        return None
    normal = np.cross(np.asarray(iop[:3]), np.asarray(iop[3:]))
    norm = float(np.linalg.norm(normal))
    return None if norm == 0.0 else normal / norm


def _geometry_key(ds: Dataset) -> tuple[object, ...]:
    iop = _orientation(ds)
    return (ds.get("Rows"), ds.get("Columns"), None if iop is None else _rounded(iop))


def _rounded(values: Iterable[object]) -> tuple[float, ...]:
    return tuple(round(float(v), _POSITION_DECIMALS) for v in values)  # type: ignore[arg-type]


def _as_list(value: object) -> list[object]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return list(value)
    return [value]


def _joined(image_type: tuple[str, ...]) -> str:
    return "\\".join(image_type) or "missing"


def _or_inf(value: float | int | None) -> float:
    return math.inf if value is None else float(value)
