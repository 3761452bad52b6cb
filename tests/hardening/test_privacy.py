"""No patient name, ID, birth date or accession number in the log or the run record, even at DEBUG level.

The reference study (``conftest.reference``) carries distinctive identifiers in every file; the app
runs on it with ``-l DEBUG``, so the SDK's, Holoscan's and highdicom's own messages are included.
"""

from __future__ import annotations

from tests.hardening.cases import Identity
from tests.hardening.running import AppRun


def _leaks(text: str, identity: Identity) -> list[str]:
    lowered = text.lower()
    return [variant for variant in identity.variants() if variant.lower() in lowered]


def test_the_debug_log_holds_no_patient_identifier(reference: AppRun, identity: Identity) -> None:
    assert reference.returncode == 0, reference.log
    assert "[DEBUG]" in reference.log  # the level was applied
    assert _leaks(reference.log, identity) == []


def test_the_run_record_holds_no_patient_identifier(reference: AppRun, identity: Identity) -> None:
    text = (reference.output / "run_record.json").read_text(encoding="utf-8")
    assert _leaks(text, identity) == []


def test_the_identifiers_are_in_the_input_so_the_check_can_fail(reference: AppRun, identity: Identity) -> None:
    """The DICOM outputs join the patient's study, so they carry the name: the grep would find a leak."""
    seg = (reference.output / "lung_seg.dcm").read_bytes().decode("latin-1")
    assert identity.name in seg and identity.patient_id in seg and identity.birth_date in seg
