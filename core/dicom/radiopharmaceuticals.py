"""Tc-99m radiopharmaceuticals of lung and bone SPECT, with their DICOM codes.

Codes come from the DICOM content mapping resource as shipped with pydicom:
radionuclide from CID 18 "Radiopharmaceutical Isotope", radiopharmaceutical
from CID 25 "Radiopharmaceutical", administration route from CID 11
"Administration Route" (all SNOMED CT, scheme designator SCT).

* perfusion: Tc-99m macroaggregated albumin (MAA) is "Technetium Tc^99m^
  aggregated albumin" (SCT 85693008) -- not "microaggregated albumin"
  (SCT 81761004), whose smaller particles are used for lymphoscintigraphy.
* ventilation: Technegas, an aerosol of Tc-99m labelled carbon nanoparticles, is
  "Technetium^99m labeled carbon" (SCT 447125008), inhaled.
* bone: Tc-99m MDP is "Technetium Tc^99m^ medronate" (SCT 96390006).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

TC99M_PHOTOPEAK_WINDOW_KEV = (126.45, 154.55)
"""Energy window of Tc-99m imaging: 140.5 keV photopeak +/- 10 % (20 % wide)."""

TC99M_PHOTOPEAK_WINDOW_NAME = "Tc99m 140keV 20%"
"""EnergyWindowName of the photopeak window."""

TC99M = codes.SCT._99mTechnetium
"""Radionuclide Tc-99m, SCT 72454006 (CID 18)."""


@dataclass(frozen=True)
class Radiopharmaceutical:
    """One Tc-99m radiopharmaceutical and its typical administration.

    Parameters
    ----------
    name
        Radiopharmaceutical (LO) free text, e.g. ``"Tc-99m MAA"``.
    code
        RadiopharmaceuticalCodeSequence entry (CID 25).
    route
        RadiopharmaceuticalRoute (LO) free text.
    route_code
        AdministrationRouteCodeSequence entry (CID 11).
    dose_mbq
        Typical RadionuclideTotalDose in MBq (adult, EANM guideline range).
    uptake_min
        Typical delay from administration to the start of acquisition, in minutes.
    """

    name: str
    code: Code
    route: str
    route_code: Code
    dose_mbq: float
    uptake_min: float


TRACERS: dict[str, Radiopharmaceutical] = {
    "perfusion": Radiopharmaceutical(
        name="Tc-99m MAA (macroaggregated albumin)",
        code=codes.SCT.TechnetiumTc99mAggregatedAlbumin,
        route="Intravenous",
        route_code=codes.SCT.IntravenousRoute,
        dose_mbq=120.0,
        uptake_min=10.0,
    ),
    "ventilation": Radiopharmaceutical(
        name="Tc-99m Technegas (carbon nanoparticles)",
        code=codes.SCT.Technetium99mLabeledCarbon,
        route="Inhalation",
        route_code=codes.SCT.ByInhalation,
        dose_mbq=40.0,
        uptake_min=5.0,
    ),
    "bone": Radiopharmaceutical(
        name="Tc-99m MDP (medronate)",
        code=codes.SCT.TechnetiumTc99mMedronate,
        route="Intravenous",
        route_code=codes.SCT.IntravenousRoute,
        dose_mbq=650.0,
        uptake_min=180.0,
    ),
}
"""Known tracers, keyed by the ``tracer`` argument of :func:`core.dicom.nm_writer.write_nm_series`."""


def radiopharmaceutical_for(tracer: str) -> Radiopharmaceutical:
    """The :class:`Radiopharmaceutical` of ``tracer`` (``"perfusion"``, ``"ventilation"`` or ``"bone"``).

    Raises
    ------
    ValueError
        If ``tracer`` is not one of :data:`TRACERS`.
    """
    try:
        return TRACERS[tracer]
    except KeyError:
        raise ValueError(f"unknown tracer {tracer!r}; expected one of {sorted(TRACERS)}") from None
