"""app.yaml, the manifests generated from it, and the Dockerfile that lays out the MAP.

The MAP / Holoscan Application Package specification asks for: an Application Manifest
``/etc/holoscan/app.json`` (command, input and output with formats, environment, version, ...), a
Package Manifest ``/etc/holoscan/pkg.json`` (applicationRoot, modelRoot, models, resources, version),
the application under ``/opt/holoscan/app``, one folder per model under ``/opt/holoscan/models``,
``/var/holoscan`` as working directory with ``input``/``output``, and the ``HOLOSCAN_*`` variables.
None of these tests needs buildah or docker.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from app import __version__ as app_version
from app.config import AppConfig
from deploy.map import manifests
from deploy.map.manifests import MapConfigError
from tests.testdata import REPO_ROOT

DOCKERFILE = REPO_ROOT / "deploy" / "map" / "Dockerfile"
ENTRYPOINT = REPO_ROOT / "deploy" / "map" / "entrypoint.sh"
SPEC_ENVIRONMENT = (
    "HOLOSCAN_APPLICATION",
    "HOLOSCAN_INPUT_PATH",
    "HOLOSCAN_OUTPUT_PATH",
    "HOLOSCAN_WORKDIR",
    "HOLOSCAN_MODEL_PATH",
    "HOLOSCAN_CONFIG_PATH",
    "HOLOSCAN_APP_MANIFEST_PATH",
    "HOLOSCAN_PKG_MANIFEST_PATH",
    "HOLOSCAN_DOCS_PATH",
    "HOLOSCAN_LOGS_PATH",
)
"""The variables a MAP sets (specification's table, names as holoscan-cli writes them)."""


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("map")
    return {p.name: p for p in manifests.write_manifests(out)}


def test_app_yaml_is_complete_and_matches_the_package() -> None:
    config = manifests.load_app_yaml(REPO_ROOT / "app.yaml", REPO_ROOT / "models")
    assert config.title.strip()
    assert config.version == manifests.package_version(REPO_ROOT / "pyproject.toml") == app_version
    assert config.input_formats == ("file",) and config.output_formats == ("file",)
    assert config.timeout_s > 0
    assert config.resources["gpu"] == 0, "the image runs on the CPU and must not ask for a GPU"
    assert config.resources["cpu"] >= 1 and config.resources["memory"].endswith(("Mi", "Gi"))


def test_every_model_the_app_can_use_is_listed_and_shipped() -> None:
    config = manifests.load_app_yaml(REPO_ROOT / "app.yaml", REPO_ROOT / "models")
    listed = {m.name for m in config.models}
    shipped = {p.parent.name for p in (REPO_ROOT / "models").glob("*/metadata.json")}
    defaults = AppConfig()
    used = {defaults.function_model_dir, defaults.denoising_model_dir, defaults.ctp_model_dir, defaults.dsc_model_dir}
    assert {p.name for p in used} <= listed == shipped
    for model in config.models:
        metadata = json.loads((REPO_ROOT / "models" / model.name / "metadata.json").read_text())
        assert (metadata["name"], metadata["version"]) == (model.name, model.version)
        assert (REPO_ROOT / "models" / model.name / "model.ts").is_file()


def test_application_manifest_has_what_the_spec_requires(written: dict[str, Path]) -> None:
    app_json = json.loads(written["app.json"].read_text())
    config = yaml.safe_load((REPO_ROOT / "app.yaml").read_text())
    assert app_json["command"] == "python3 -m app"
    assert app_json["input"] == {"path": "input/", "formats": config["application"]["inputFormats"]}
    assert app_json["output"] == {"path": "output/", "formats": config["application"]["outputFormats"]}
    assert set(SPEC_ENVIRONMENT) <= set(app_json["environment"])
    assert app_json["environment"] == manifests.ENVIRONMENT
    assert app_json["workingDirectory"] == app_json["environment"]["HOLOSCAN_WORKDIR"] == "/var/holoscan"
    assert (app_json["version"], app_json["timeout"]) == (app_version, config["application"]["timeout"])
    assert (app_json["sdk"], app_json["sdkVersion"]) == ("monai-deploy", version("monai-deploy-app-sdk"))
    assert app_json["apiVersion"] == "1.0.0" and app_json["type"] == "application"


def test_package_manifest_lists_the_models_and_resources(written: dict[str, Path]) -> None:
    pkg_json = json.loads(written["pkg.json"].read_text())
    config = yaml.safe_load((REPO_ROOT / "app.yaml").read_text())
    assert pkg_json["applicationRoot"] == "/opt/holoscan/app"
    assert pkg_json["modelRoot"] == manifests.ENVIRONMENT["HOLOSCAN_MODEL_PATH"] == "/opt/holoscan/models"
    assert [m["name"] for m in pkg_json["models"]] == config["models"]
    assert all(m["path"] == m["name"] for m in pkg_json["models"])
    assert pkg_json["resources"] == config["resources"]
    assert pkg_json["version"] == app_version


def test_build_arguments_label_the_image(written: dict[str, Path]) -> None:
    pairs = dict(line.split("=", 1) for line in written["build-args.env"].read_text().splitlines())
    assert pairs["APP_VERSION"] == app_version
    assert pairs["MONAI_DEPLOY_SDK_VERSION"] == version("monai-deploy-app-sdk")
    assert pairs["HOLOSCAN_SDK_VERSION"] == version("holoscan-cu13")
    assert set(pairs) <= set(parse_dockerfile(DOCKERFILE).args), "every build argument must be an ARG"


# ---------------------------------------------------------------- invalid app.yaml


def _fake_repo(root: Path, edit: dict[str, object] | None = None, project_version: str = "0.1.0") -> Path:
    """A repository with one model, the real requirements.txt, and app.yaml changed by ``edit``."""
    config = yaml.safe_load((REPO_ROOT / "app.yaml").read_text())
    config["models"] = ["tiny"]
    for dotted, value in (edit or {}).items():
        *parents, key = dotted.split(".")
        section = config
        for parent in parents:
            section = section[parent]
        if value is None:
            section.pop(key)
        else:
            section[key] = value
    (root / "models" / "tiny").mkdir(parents=True)
    (root / "models" / "tiny" / "model.ts").write_bytes(b"torchscript")
    (root / "models" / "tiny" / "metadata.json").write_text(json.dumps({"name": "tiny", "version": "2.0.0"}))
    (root / "app.yaml").write_text(yaml.safe_dump(config))
    (root / "pyproject.toml").write_text(f'[project]\nname = "x"\nversion = "{project_version}"\n')
    shutil.copy(REPO_ROOT / "requirements.txt", root / "requirements.txt")
    return root


def test_a_valid_fake_repository_gives_manifests(tmp_path: Path) -> None:
    repo = _fake_repo(tmp_path / "repo")
    assert manifests.main(["--repo", str(repo), "--out", str(tmp_path / "out")]) == 0
    pkg_json = json.loads((tmp_path / "out" / "pkg.json").read_text())
    assert pkg_json["models"] == [{"name": "tiny", "path": "tiny", "version": "2.0.0"}]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"application.title": None}, "application.title"),
        ({"application.version": 1.0}, "semantic version"),
        ({"application.inputFormats": []}, "inputFormats"),
        ({"application.timeout": -1}, "timeout"),
        ({"application.colour": "red"}, "unknown key"),
        ({"resources.memory": None}, "lacks ['memory']"),
        ({"resources.memory": "4GB"}, "4Gi or 512Mi"),
        ({"resources.gpu": -1}, "resources.gpu"),
        ({"resources.gpus": 1}, "unknown key"),
        ({"models": ["tiny", "absent"]}, "absent"),
        ({"models": ["tiny", "tiny"]}, "twice"),
    ],
)
def test_invalid_app_yaml_is_refused_with_the_reason(tmp_path: Path, edit: dict[str, object], message: str) -> None:
    repo = _fake_repo(tmp_path, edit)
    with pytest.raises(MapConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        manifests.write_manifests(tmp_path / "out", repo)
    assert manifests.main(["--repo", str(repo), "--out", str(tmp_path / "out")]) == 2


def test_app_yaml_version_must_be_the_package_version(tmp_path: Path) -> None:
    repo = _fake_repo(tmp_path, project_version="9.9.9")
    with pytest.raises(MapConfigError, match=r"not pyproject.toml's 9\.9\.9"):
        manifests.write_manifests(tmp_path / "out", repo)
    assert not (tmp_path / "out").exists()


def test_unpinned_sdk_is_refused(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("monai-deploy-app-sdk>=4\nholoscan_cu13==4.6.0\n")
    assert manifests.pinned_version(requirements, "holoscan-cu13") == "4.6.0"
    with pytest.raises(MapConfigError, match="does not pin monai-deploy-app-sdk"):
        manifests.pinned_version(requirements, "monai-deploy-app-sdk")


# ---------------------------------------------------------------- the Dockerfile


@dataclass
class Dockerfile:
    """The instructions of a Dockerfile that matter here, ARG defaults substituted."""

    args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    copies: list[tuple[list[str], str]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def last(self, name: str) -> str:
        values = [rest for instruction, rest in self.instructions if instruction == name]
        assert values, f"no {name} instruction"
        return values[-1]


def parse_dockerfile(path: Path) -> Dockerfile:
    """Join continued lines, drop comments, and collect ARG, ENV, LABEL, COPY and RUN."""
    logical, current = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
        else:
            logical.append(current)
            current = ""
    parsed = Dockerfile()
    for line in logical:
        instruction, _, rest = line.strip().partition(" ")
        instruction = instruction.upper()
        parsed.instructions.append((instruction, rest.strip()))
        if instruction == "ARG":
            name, _, default = rest.strip().partition("=")
            parsed.args[name] = shlex.split(default)[0] if default else ""
        elif instruction in ("ENV", "LABEL"):
            pairs = dict(word.split("=", 1) for word in shlex.split(rest))
            (parsed.env if instruction == "ENV" else parsed.labels).update(pairs)
        elif instruction == "COPY":
            words = [w for w in shlex.split(rest) if not w.startswith("--")]
            parsed.copies.append((words[:-1], words[-1]))
        elif instruction == "RUN":
            parsed.runs.append(rest)
    return parsed


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE)


def test_dockerfile_sets_the_map_environment(dockerfile: Dockerfile) -> None:
    for name, value in manifests.ENVIRONMENT.items():
        assert dockerfile.env.get(name) == value, name
    assert dockerfile.env["PATH"].startswith("/opt/holoscan/venv/bin:")


def test_dockerfile_lays_out_the_map_folders(dockerfile: Dockerfile) -> None:
    copies = {tuple(sources): destination for sources, destination in dockerfile.copies}
    env = manifests.ENVIRONMENT
    assert copies[("map/app.json", "map/pkg.json")] == "/etc/holoscan/"
    assert str(Path(env["HOLOSCAN_APP_MANIFEST_PATH"]).parent) == "/etc/holoscan"
    assert copies[("app.yaml",)] == env["HOLOSCAN_CONFIG_PATH"]
    assert copies[("app/",)].rstrip("/") == env["HOLOSCAN_APPLICATION"] == manifests.APP_DIR
    assert copies[("models/",)].rstrip("/") == env["HOLOSCAN_MODEL_PATH"]
    assert copies[("docs/",)].rstrip("/") == env["HOLOSCAN_DOCS_PATH"]
    made = " ".join(dockerfile.runs)
    for folder in ("HOLOSCAN_INPUT_PATH", "HOLOSCAN_OUTPUT_PATH", "HOLOSCAN_LOGS_PATH"):
        assert env[folder] in made.split(), f"{env[folder]} is not created"
    assert dockerfile.last("WORKDIR") == env["HOLOSCAN_WORKDIR"]


def test_dockerfile_runs_the_app_as_a_non_root_user_without_gpu(dockerfile: Dockerfile) -> None:
    user = dockerfile.last("USER").replace("${UNAME}", dockerfile.args["UNAME"])
    assert user not in ("root", "0", "") and dockerfile.args["UID"] != "0"
    entrypoint = json.loads(dockerfile.last("ENTRYPOINT"))
    assert entrypoint == ["/opt/holoscan/entrypoint.sh"]
    assert ("entrypoint.sh",) in {tuple(s) for s, d in dockerfile.copies if d == entrypoint[0]}
    assert ENTRYPOINT.stat().st_mode & 0o111, "the entry point must be executable"
    assert "torch-*.whl" in " ".join(dockerfile.runs), "torch must come from the CPU wheel"
    assert dockerfile.last("FROM") == "${BASE_IMAGE}" and "bookworm" in dockerfile.args["BASE_IMAGE"]
    assert dockerfile.labels["org.opencontainers.image.version"] == "${APP_VERSION}"
    assert dockerfile.labels["org.opencontainers.image.title"] == "${APP_TITLE}"


def test_entrypoint_show_prints_both_manifests(written: dict[str, Path]) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOLOSCAN_APP_MANIFEST_PATH": str(written["app.json"]),
        "HOLOSCAN_PKG_MANIFEST_PATH": str(written["pkg.json"]),
    }
    result = subprocess.run(["sh", str(ENTRYPOINT), "show"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert written["app.json"].read_text() in result.stdout and written["pkg.json"].read_text() in result.stdout
