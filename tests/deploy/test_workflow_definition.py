"""The MONAI Deploy Workflow Manager definition (deploy/workflow/perfusion_workflow.json).

The rules are those the Workflow Manager applies when a workflow is registered (``POST /workflows``),
from Project-MONAI/monai-deploy-workflow-manager:

* ``src/WorkflowManager/WorkflowManager/Validators/WorkflowValidator.cs``: name, version,
  ``informatics_gateway.ae_title`` (1-15 characters), at least one task, task ids matching
  ``^[a-zA-Z0-9-_]+$`` and unique, task types from ``ValidTaskTypes``, input artifacts with a name
  and a value (all but routers), no destination back to the first task, no task that is the
  destination of two tasks, no task other than the first that is nobody's destination, export
  tasks with export destinations registered in ``informatics_gateway.export_destinations``;
* ``src/Common/Miscellaneous/ValidationConstants.cs``: the valid task types;
* ``src/WorkflowManager/Contracts/Models/TaskObject.cs``: ``args`` is a string-to-string map;
* ``src/TaskManager/Plug-ins/Docker/Keys.cs`` and ``DockerPlugin.cs``: the Docker plug-in's
  required arguments, and every input / output artifact name must be an argument (its value is the
  path inside the container, passed as an environment variable without the ``env_`` prefix);
* ``guidelines/mwm-conditionals.md`` and ``CombineConditionString``: conditions are joined with AND,
  and a condition may use ``AND`` / ``OR`` with brackets.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pydicom
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "deploy" / "workflow" / "perfusion_workflow.json"
SAMPLES = REPO / "dicom_samples"

WORKFLOW_FIELDS = ("name", "version", "informatics_gateway", "tasks")
GATEWAY_FIELDS = ("ae_title", "data_origins", "export_destinations")
TASK_FIELDS = ("id", "type")
VALID_TASK_TYPES = ("argo", "aide_clinical_review", "router", "export", "docker", "email", "remote_app_execution")
TASK_ID = re.compile(r"^[a-zA-Z0-9-_]+$")
DOCKER_REQUIRED_ARGS = ("server_url", "entrypoint", "command", "container_image", "temp_storage_container_path")
MAX_AE_TITLE = 15

CLAUSE = re.compile(r"\{\{\s*context\.dicom\.series\.any\('(\w{4})','(\w{4})'\)\s*\}\}\s*==\s*'([^']*)'")


@pytest.fixture(scope="module")
def workflow() -> dict:
    return json.loads(WORKFLOW.read_text())


def _app_version() -> str:
    app_yaml = REPO / "app.yaml"
    if app_yaml.exists():
        return str(yaml.safe_load(app_yaml.read_text())["application"]["version"])
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def test_workflow_fields_the_manager_requires(workflow):
    assert all(workflow.get(key) for key in WORKFLOW_FIELDS), WORKFLOW_FIELDS
    gateway = workflow["informatics_gateway"]
    assert all(key in gateway for key in GATEWAY_FIELDS)
    assert 0 < len(gateway["ae_title"]) <= MAX_AE_TITLE
    ids = [task["id"] for task in workflow["tasks"]]
    assert len(ids) == len(set(ids)) and all(TASK_ID.match(i) for i in ids)
    for task in workflow["tasks"]:
        assert all(task.get(key) for key in TASK_FIELDS), task
        assert task["type"] in VALID_TASK_TYPES
        assert all(isinstance(value, str) for value in task.get("args", {}).values()), task["id"]
        if task["type"] != "router":
            inputs = task["artifacts"]["input"]
            assert inputs and all(a.get("name") and a.get("value") for a in inputs), task["id"]
        outputs = [a["name"] for a in task.get("artifacts", {}).get("output", [])]
        assert len(outputs) == len(set(outputs))


def test_task_graph_is_a_tree_from_the_first_task(workflow):
    ids = [task["id"] for task in workflow["tasks"]]
    destinations = [d["name"] for task in workflow["tasks"] for d in task.get("task_destinations", [])]
    assert set(destinations) <= set(ids) and ids[0] not in destinations
    assert len(destinations) == len(set(destinations)), "converging task destinations"
    assert set(ids[1:]) <= set(destinations), "unreferenced tasks"
    assert all(
        isinstance(c, str)
        for task in workflow["tasks"]
        for d in task.get("task_destinations", [])
        for c in d.get("conditions", [])
    )


def test_docker_task_runs_this_map_and_maps_its_folders(workflow):
    (task,) = [t for t in workflow["tasks"] if t["type"] == "docker"]
    args = task["args"]
    assert all(args.get(key) for key in DOCKER_REQUIRED_ARGS)
    assert re.match(r"^unix:///|^(tcp|http)s?://", args["server_url"])
    for artifact in (*task["artifacts"]["input"], *task["artifacts"]["output"]):
        assert artifact["name"] in args and artifact["name"].startswith("env_"), artifact
    assert args["env_HOLOSCAN_INPUT_PATH"] == "/var/holoscan/input"  # the MAP image's defaults (deploy/map/Dockerfile)
    assert args["env_HOLOSCAN_OUTPUT_PATH"] == "/var/holoscan/output"
    assert args["command"].split(",") == ["-i", "/var/holoscan/input", "-o", "/var/holoscan/output"]
    assert task["artifacts"]["input"][0]["value"] == "{{ context.input.dicom }}"


def test_image_and_versions_agree_with_the_package(workflow):
    version = _app_version()
    (task,) = [t for t in workflow["tasks"] if t["type"] == "docker"]
    assert task["args"]["container_image"] == f"perfusion-map:{version}"
    assert workflow["version"] == version
    app_yaml = REPO / "app.yaml"
    if app_yaml.exists():  # the task may run as long as the package says one study may take
        timeout_s = yaml.safe_load(app_yaml.read_text())["application"]["timeout"]
        assert 60 * int(task["args"]["task_timeout_minutes"]) >= timeout_s


def test_results_go_back_to_a_registered_destination(workflow):
    registered = set(workflow["informatics_gateway"]["export_destinations"])
    (export,) = [t for t in workflow["tasks"] if t["type"] == "export"]
    names = [d["name"] for d in export["export_destinations"]]
    assert names and set(names) <= registered and len(names) == len(set(names))
    (docker,) = [t for t in workflow["tasks"] if t["type"] == "docker"]
    (source,) = export["artifacts"]["input"]
    assert source["value"] == f"{{{{ context.executions.{docker['id']}.artifacts.env_HOLOSCAN_OUTPUT_PATH }}}}"
    assert export["id"] in [d["name"] for d in docker["task_destinations"]]


def _routes(condition: str, series: list[dict[str, str]]) -> bool:
    """The condition on a study's series: each ``any(tag) == value`` clause, then AND / OR with brackets."""

    def clause(match: re.Match[str]) -> str:
        tag = f"{match[1]}{match[2]}".upper()
        return str(any(s.get(tag) == match[3] for s in series))

    resolved = CLAUSE.sub(clause, condition)
    assert re.fullmatch(r"[\s()]*(True|False)([\s()]*(AND|OR)[\s()]*(True|False))*[\s()]*", resolved), resolved
    return bool(eval(resolved.replace("AND", "and").replace("OR", "or")))  # only True/False/and/or/brackets


def _series_of(study: Path) -> list[dict[str, str]]:
    seen = set()
    for path in sorted(p for p in study.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality", "BodyPartExamined"])
        except pydicom.errors.InvalidDicomError:
            continue
        seen.add((ds.get("Modality", ""), ds.get("BodyPartExamined", "")))
    return [{"00080060": modality, "00180015": body_part} for modality, body_part in sorted(seen)]


@pytest.mark.parametrize("study", ["thorax_small", "bone_small", "ctp_small", "dsc_small"])
def test_router_passes_the_bundled_studies(workflow, study):
    (condition,) = workflow["tasks"][0]["task_destinations"][0]["conditions"]
    series = _series_of(SAMPLES / study)
    assert series and _routes(condition, series)


@pytest.mark.parametrize(
    "series",
    [[{"00080060": "CT", "00180015": "ABDOMEN"}], [{"00080060": "MR", "00180015": "KNEE"}], [{"00080060": "NM"}]],
)
def test_router_stops_other_studies(workflow, series):
    (condition,) = workflow["tasks"][0]["task_destinations"][0]["conditions"]
    assert not _routes(condition, series)
