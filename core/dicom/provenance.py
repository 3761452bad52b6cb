"""What every object this application writes says about where it came from (IHE AI Results).

One place for the manufacturer, the research-use labels, the ContributingEquipmentSequence
item that names the algorithm and its version, and the private coding scheme for the few
concepts that no standard terminology codes (share of total perfusion, high-function lung).

Private codes use the coding scheme designator :data:`PRIVATE_SCHEME` ("99PMAP"; DICOM PS3.16
8.2: designators starting with "99" are local), and every object that uses one carries a
CodingSchemeIdentificationSequence item that names the scheme (:func:`private_coding_scheme`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import highdicom
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

MANUFACTURER = "perfusion-map (research software)"
DEVICE_SERIAL_NUMBER = "none (software)"
SYNTHETIC_NOTICE = "SYNTHETIC - research use"
"""Burned into every rendered picture and written into every synthetic object's descriptions."""
RESEARCH_NOTICE = (
    "Synthetic functional images computed from CT by a network trained on digital phantoms; "
    "not clinically validated; research use only."
)
SOURCE_PERSON_NAME_WARNING = r".*unlikely to represent the intended person name"
"""highdicom's UserWarning about a one-component PatientName copied from the CT: nobody running the app can fix it."""

PRIVATE_SCHEME = "99PMAP"
PRIVATE_SCHEME_NAME = "perfusion-map local codes"
PRIVATE_SCHEME_RESPONSIBLE = "perfusion-map project"

HIGH_PERFUSION = Code("PM001", PRIVATE_SCHEME, "High-perfusion lung")
LOW_PERFUSION = Code("PM002", PRIVATE_SCHEME, "Low-perfusion lung")
HIGH_VENTILATION = Code("PM003", PRIVATE_SCHEME, "High-ventilation lung")
LOW_VENTILATION = Code("PM004", PRIVATE_SCHEME, "Low-ventilation lung")
SYNTHETIC_PERFUSION = Code("PM010", PRIVATE_SCHEME, "Synthetic relative lung perfusion")
SYNTHETIC_VENTILATION = Code("PM011", PRIVATE_SCHEME, "Synthetic relative lung ventilation")
PERFUSION_SHARE = Code("PM020", PRIVATE_SCHEME, "Share of total lung perfusion")
VENTILATION_SHARE = Code("PM021", PRIVATE_SCHEME, "Share of total lung ventilation")
VQ_RATIO = Code("PM022", PRIVATE_SCHEME, "Ventilation share to perfusion share ratio")
HIGH_PERFUSION_VOLUME = Code("PM023", PRIVATE_SCHEME, "High-perfusion lung volume")
LOW_PERFUSION_VOLUME = Code("PM024", PRIVATE_SCHEME, "Low-perfusion lung volume")
HIGH_VENTILATION_VOLUME = Code("PM025", PRIVATE_SCHEME, "High-ventilation lung volume")
LOW_VENTILATION_VOLUME = Code("PM026", PRIVATE_SCHEME, "Low-ventilation lung volume")

FUNCTION_CATEGORY = codes.SCT.Function
"""SCT 246464006, a Segmented Property Category of CID 7150."""
MILLILITER = Code("mL", "UCUM", "milliliter")


def private_coding_scheme() -> CodingSchemeIdentificationItem:
    """The CodingSchemeIdentificationSequence item naming :data:`PRIVATE_SCHEME`."""
    return CodingSchemeIdentificationItem(
        designator=PRIVATE_SCHEME,
        name=PRIVATE_SCHEME_NAME,
        responsible_organization=PRIVATE_SCHEME_RESPONSIBLE,
    )


def contributing_equipment(
    algorithm_name: str, algorithm_version: str, description: str
) -> highdicom.ContributingEquipment:
    """IHE AIR: the algorithm that produced the content, as processing equipment.

    Parameters
    ----------
    algorithm_name
        Written as ManufacturerModelName of the equipment item.
    algorithm_version
        Written as SoftwareVersions.
    description
        ContributionDescription (64 characters at most).
    """
    return highdicom.ContributingEquipment(
        manufacturer=MANUFACTURER,
        purpose_of_reference=codes.DCM.ProcessingEquipment,
        manufacturer_model_name=algorithm_name,
        software_versions=algorithm_version,
        contribution_datetime=datetime.now(UTC),
        contribution_description=description,
    )
