"""A real PACS round trip: Orthanc (Debian packages) in a loopback-only namespace, and ``python -m app.pacs``.

The sample study is stored in Orthanc; the app pulls it over WADO-RS, processes it and pushes its
results back with STOW-RS.  Orthanc's REST and DICOMweb APIs must then show the source series
untouched and every result series, with as many instances as the app wrote, in the source study.
The expected series and counts come from the sample folder and from the app's output folder.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest

from app.__main__ import EXIT_OK, EXIT_PACS
from tests.pacs.round_trip import (
    SAMPLE_STUDY,
    RoundTrip,
    dicom_headers,
    instances_per_series,
    orthanc_series,
)
from tests.testdata import REPO_ROOT

pytestmark = pytest.mark.slow

SERIES_UID_TAG, RELATED_INSTANCES_TAG = "0020000E", "00201209"
UNKNOWN_STUDY = "1.2.826.0.1.3680043.8.498.99"


def test_orthanc_runs_alone_in_a_loopback_only_network_namespace(round_trip: RoundTrip) -> None:
    pacs = round_trip.pacs
    assert pacs.interfaces() == ["lo"]
    assert os.stat(pacs.netns).st_ino != os.stat("/proc/self/ns/net").st_ino
    assert {"dicom-web", "web-viewer"} <= set(pacs.get_json("/plugins"))


def test_the_pacs_command_pulls_processes_and_pushes(round_trip: RoundTrip) -> None:
    assert round_trip.cli.returncode == EXIT_OK, round_trip.cli.stderr[-4000:]
    n_sample = len(dicom_headers(SAMPLE_STUDY))
    assert f"Pulled {n_sample} instance(s)" in round_trip.cli.stderr
    assert (round_trip.output_dir / "run_record.json").is_file()


def test_every_result_is_stored_in_the_source_study_with_its_instances(round_trip: RoundTrip) -> None:
    pacs = round_trip.pacs
    source, results = instances_per_series(SAMPLE_STUDY), instances_per_series(round_trip.output_dir)
    assert results, "the app wrote no DICOM result"
    assert not set(source) & set(results), "a result reuses a source SeriesInstanceUID"
    expected = dict(source + results)

    series = orthanc_series(pacs)
    assert {uid: len(record["Instances"]) for uid, record in series.items()} == expected
    studies = pacs.get_json("/studies?expand")
    assert [study["MainDicomTags"]["StudyInstanceUID"] for study in studies] == [round_trip.study_uid]
    assert {record["ParentStudy"] for record in series.values()} == {studies[0]["ID"]}

    qido = json.loads(
        pacs.request("GET", f"/dicom-web/studies/{round_trip.study_uid}/series?includefield={RELATED_INSTANCES_TAG}")
    )
    assert {item[SERIES_UID_TAG]["Value"][0]: int(item[RELATED_INSTANCES_TAG]["Value"][0]) for item in qido} == expected

    written = [*dicom_headers(SAMPLE_STUDY), *dicom_headers(round_trip.output_dir)]
    stored = {record["MainDicomTags"]["SOPInstanceUID"] for record in pacs.get_json("/instances?expand")}
    assert stored == {str(ds.SOPInstanceUID) for ds in written}


def test_the_source_instances_are_unchanged(round_trip: RoundTrip) -> None:
    def files(instances: list[dict[str, Any]]) -> dict[str, tuple[str, int]]:
        return {i["ID"]: (i["FileUuid"], i["FileSize"]) for i in instances}

    before = files(round_trip.instances_before)
    assert len(before) == len(dicom_headers(SAMPLE_STUDY))
    after = files(round_trip.pacs.get_json("/instances?expand"))
    assert {instance_id: after.get(instance_id) for instance_id in before} == before


def test_an_unknown_study_exits_with_the_pacs_code_and_writes_nothing(round_trip: RoundTrip) -> None:
    pacs, out = round_trip.pacs, round_trip.output_dir.with_name("unknown-study-out")
    argv = [sys.executable, "-m", "app.pacs", "--url", pacs.dicomweb_url, "--study", UNKNOWN_STUDY, "-o", str(out)]
    result = pacs.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == EXIT_PACS, result.stderr[-2000:]
    assert f"holds no study {UNKNOWN_STUDY}" in result.stderr
    assert not out.exists()
