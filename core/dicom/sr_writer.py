"""Write the regional lung quantification as a DICOM Structured Report (TID 1500), and read it back.

The object
----------
A Comprehensive 3D SR built by highdicom holding one TID 1500 "Imaging Measurement Report":

* observation context: a device observer (TID 1004) naming the application and the model;
* procedure reported: LOINC 24627-2 "CT Chest" (:data:`PROCEDURE_REPORTED`), the examination
  whose CT the maps were synthesised from (CID 100 is extensible);
* one TID 1501 "Measurement and Qualitative Evaluation Group" per region of
  :func:`core.lung.quantification.quantify_regions`, with a Tracking Identifier (the region
  name, e.g. ``"right upper"``) and a Tracking Unique Identifier, the algorithm (TID 4019:
  model name and version), the finding site (SCT 39607008 Lung for a lung, SCT 281392002 /
  281393007 / 281394001 Upper / Middle / Lower zone of lung for a zone, with the laterality
  SCT 24028007 Right or SCT 7771000 Left; "both lungs" is Lung without laterality) and the
  measurements of :data:`MEASUREMENTS`: volume (SCT 118565006, mL), shares of total perfusion
  and ventilation (%), V/Q ratio (UCUM "1", left out when it is not defined) and the high- and
  low-function volumes (mL), the last five under private codes of
  :mod:`core.dicom.provenance` (no standard terminology codes them).

Same study as the CT, a new series whose description says it is synthetic and for research use,
the CT slices as evidence (CurrentRequestedProcedureEvidenceSequence), the private coding scheme
in the CodingSchemeIdentificationSequence and the application in the ContributingEquipmentSequence
(IHE AI Results).  Values are stored as NumericValue (DS) and FloatingPointValue (FD), so
:func:`read_measurement_report` gives back the exact floats.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom
from highdicom.sr import (
    AlgorithmIdentification,
    Comprehensive3DSR,
    DeviceObserverIdentifyingAttributes,
    FindingSite,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
    TrackingIdentifier,
)
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from core.dicom.provenance import (
    DEVICE_SERIAL_NUMBER,
    HIGH_PERFUSION_VOLUME,
    HIGH_VENTILATION_VOLUME,
    LOW_PERFUSION_VOLUME,
    LOW_VENTILATION_VOLUME,
    MANUFACTURER,
    MILLILITER,
    PERFUSION_SHARE,
    SOURCE_PERSON_NAME_WARNING,
    SYNTHETIC_NOTICE,
    VENTILATION_SHARE,
    VQ_RATIO,
    contributing_equipment,
    private_coding_scheme,
)
from core.dicom.structures import LATERALITY, ZONE_TYPES
from core.lung.quantification import RegionStats

logger = logging.getLogger(__name__)

APPLICATION_NAME = "perfusion-map lung quantification"
"""Device observer name, ManufacturerModelName and the contributing equipment's model name."""
PROCEDURE_REPORTED = Code("24627-2", "LN", "CT Chest")
SERIES_DESCRIPTION = f"Lung V/Q quantification ({SYNTHETIC_NOTICE})"
CONTRIBUTION_DESCRIPTION = "Regional quantification of synthetic lung perfusion/ventilation"
DEFAULT_SERIES_NUMBER = 950
BOTH_LUNGS = "both lungs"


@dataclass(frozen=True)
class ReportedMeasurement:
    """How one :class:`RegionStats` field is written as a TID 1501 measurement.

    Parameters
    ----------
    field
        The :class:`RegionStats` attribute, also the key :func:`read_measurement_report` returns.
    name
        Concept name of the measurement.
    unit
        UCUM unit.
    """

    field: str
    name: Code
    unit: Code


MEASUREMENTS = (
    ReportedMeasurement("volume_ml", codes.SCT.Volume, MILLILITER),
    ReportedMeasurement("perfusion_percent", PERFUSION_SHARE, codes.UCUM.Percent),
    ReportedMeasurement("ventilation_percent", VENTILATION_SHARE, codes.UCUM.Percent),
    ReportedMeasurement("vq_ratio", VQ_RATIO, codes.UCUM.NoUnits),
    ReportedMeasurement("high_perfusion_ml", HIGH_PERFUSION_VOLUME, MILLILITER),
    ReportedMeasurement("low_perfusion_ml", LOW_PERFUSION_VOLUME, MILLILITER),
    ReportedMeasurement("high_ventilation_ml", HIGH_VENTILATION_VOLUME, MILLILITER),
    ReportedMeasurement("low_ventilation_ml", LOW_VENTILATION_VOLUME, MILLILITER),
)
OPTIONAL_FIELDS = frozenset({"vq_ratio"})
"""Fields left out of a group when they are ``nan`` (V/Q of a region without perfusion)."""


def finding_site(region: str) -> FindingSite:
    """The coded anatomy of a region name of :func:`core.lung.quantification.quantify_regions`.

    ``"both lungs"`` is Lung; ``"right"`` / ``"left"`` is Lung with laterality;
    ``"<right|left> <upper|middle|lower>"`` is the zone of lung with laterality.

    Raises
    ------
    ValueError
        If ``region`` is none of these names.
    """
    if region == BOTH_LUNGS:
        return FindingSite(codes.SCT.Lung)
    words = region.split()
    if len(words) == 1 and words[0] in LATERALITY:
        return FindingSite(codes.SCT.Lung, laterality=LATERALITY[words[0]])
    if len(words) == 2 and words[0] in LATERALITY and words[1] in ZONE_TYPES:
        return FindingSite(ZONE_TYPES[words[1]], laterality=LATERALITY[words[0]])
    raise ValueError(
        f"region {region!r} is not a region name of quantify_regions "
        f"('{BOTH_LUNGS}', 'right', 'left' or '<right|left> <upper|middle|lower>')"
    )


def _check_regions(regions: Sequence[RegionStats]) -> None:
    if not regions:
        raise ValueError("regions is empty; there is no measurement to report")
    names = [stats.region for stats in regions]
    if len(set(names)) != len(names):
        raise ValueError(f"region names must be unique, got {names}")
    for stats in regions:
        finding_site(stats.region)
        for measurement in MEASUREMENTS:
            value = float(getattr(stats, measurement.field))
            if not math.isfinite(value) and not (math.isnan(value) and measurement.field in OPTIONAL_FIELDS):
                raise ValueError(f"{stats.region}: {measurement.field} must be finite, got {value}")


def _measurement_group(stats: RegionStats, algorithm: AlgorithmIdentification) -> MeasurementsAndQualitativeEvaluations:
    """TID 1501 group of one region; ``nan`` optional values are left out."""
    measurements = []
    for measurement in MEASUREMENTS:
        value = float(getattr(stats, measurement.field))
        if math.isnan(value):
            continue
        measurements.append(Measurement(name=measurement.name, value=value, unit=measurement.unit))
    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=highdicom.UID(), identifier=stats.region),
        algorithm_id=algorithm,
        finding_sites=[finding_site(stats.region)],
        measurements=measurements,
    )


def _observation_context(model_name: str, model_version: str) -> ObservationContext:
    """A device observer: the application running the model (its UID is stable per model and version)."""
    device = DeviceObserverIdentifyingAttributes(
        uid=generate_uid(entropy_srcs=[MANUFACTURER, APPLICATION_NAME, model_name, model_version]),
        name=APPLICATION_NAME,
        manufacturer_name=MANUFACTURER,
        model_name=model_name,
        serial_number=DEVICE_SERIAL_NUMBER,
    )
    return ObservationContext(
        observer_device_context=ObserverContext(observer_type=codes.DCM.Device, observer_identifying_attributes=device)
    )


def write_measurement_report(
    regions: Sequence[RegionStats],
    ct_datasets: Sequence[Dataset],
    out_path: Path,
    *,
    algorithm_version: str,
    model_name: str,
    model_version: str,
    series_number: int = DEFAULT_SERIES_NUMBER,
) -> Path:
    """Write ``regions`` as a Comprehensive 3D SR (TID 1500 Measurement Report) in the CT's study.

    Parameters
    ----------
    regions
        Output of :func:`core.lung.quantification.quantify_regions` (unique region names).
    ct_datasets
        The CT series' slices (headers suffice), recorded as evidence; patient and study come from them.
    out_path
        File to write (its folder must exist).
    algorithm_version
        Version of the application: SoftwareVersions and the contributing equipment's version.
    model_name, model_version
        The network that synthesised the maps: AlgorithmName / AlgorithmVersion of each group
        and the device observer's model name.
    series_number
        SeriesNumber of the new SR series.

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    ValueError
        If ``regions`` or ``ct_datasets`` is empty, a region name is unknown or repeated, or a
        value other than the V/Q ratio is not finite.
    """
    _check_regions(regions)
    if not ct_datasets:
        raise ValueError("ct_datasets is empty; the report needs the CT slices as evidence")
    algorithm = AlgorithmIdentification(name=model_name, version=model_version)
    report = MeasurementReport(
        observation_context=_observation_context(model_name, model_version),
        procedure_reported=PROCEDURE_REPORTED,
        imaging_measurements=[_measurement_group(stats, algorithm) for stats in regions],
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=SOURCE_PERSON_NAME_WARNING, category=UserWarning)
        sr = Comprehensive3DSR(
            evidence=list(ct_datasets),
            content=report,
            series_instance_uid=highdicom.UID(),
            series_number=series_number,
            sop_instance_uid=highdicom.UID(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            is_complete=True,
            contributing_equipment=[
                contributing_equipment(APPLICATION_NAME, algorithm_version, CONTRIBUTION_DESCRIPTION)
            ],
            coding_schemes=[private_coding_scheme()],
            series_description=SERIES_DESCRIPTION,
            manufacturer_model_name=APPLICATION_NAME,
            software_versions=algorithm_version,
            device_serial_number=DEVICE_SERIAL_NUMBER,
            # an empty SpecificCharacterSet in the CT means the default repertoire: leave it out
            specific_character_set=ct_datasets[0].get("SpecificCharacterSet") or None,
        )
    out_path = Path(out_path)
    sr.save_as(out_path, enforce_file_format=True)
    logger.debug("wrote measurement report SR (%d regions) to %s", len(regions), out_path)
    return out_path


def read_measurement_report(path: Path) -> dict[str, dict[str, float]]:
    """The regions and values of an SR written by :func:`write_measurement_report`.

    Parameters
    ----------
    path
        The SR file.

    Returns
    -------
    dict
        Region name (Tracking Identifier) -> :class:`RegionStats` field name -> value, for the
        measurements of :data:`MEASUREMENTS` present in the group (a ``nan`` V/Q ratio is absent).

    Raises
    ------
    ValueError
        If the file holds no TID 1500 report, a group has no tracking identifier, or a region repeats.
    """
    sr = highdicom.sr.srread(path)
    report = sr.content
    if not isinstance(report, MeasurementReport):
        raise ValueError(f"{path} holds no TID 1500 Measurement Report")
    regions: dict[str, dict[str, float]] = {}
    for group in report.get_image_measurement_groups():
        region = group.tracking_identifier
        if region is None:
            raise ValueError(f"{path}: a measurement group has no Tracking Identifier")
        if region in regions:
            raise ValueError(f"{path}: region {region!r} is reported twice")
        values = {}
        for measurement in MEASUREMENTS:
            found = group.get_measurements(name=measurement.name)
            if found:
                values[measurement.field] = float(found[0].value)
        regions[str(region)] = values
    return regions
