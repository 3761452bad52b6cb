"""Write the MAP manifests (``app.json``, ``pkg.json``) and the image's build arguments from ``app.yaml``.

``python -m deploy.map.manifests --out DIR`` reads the repository's ``app.yaml``, checks it (every
key the MONAI Application Package / Holoscan Application Package specification asks for, the models
it lists, its version against ``pyproject.toml``) and writes into ``DIR``:

* ``app.json``, the Application Manifest (the image's ``/etc/holoscan/app.json``);
* ``pkg.json``, the Package Manifest (``/etc/holoscan/pkg.json``);
* ``build-args.env``, ``KEY=VALUE`` lines for the Dockerfile's ``ARG``s (title, versions).

The paths and ``HOLOSCAN_*`` variables are those of the specification and of the classic
``holoscan package`` (holoscan-cli <= 4.2); :data:`ENVIRONMENT` is what ``deploy/map/Dockerfile`` sets.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]

API_VERSION = "1.0.0"
"""Version of the manifest schema (what holoscan-cli writes)."""
SDK_NAME = "monai-deploy"
SDK_DISTRIBUTION = "monai-deploy-app-sdk"
HOLOSCAN_DISTRIBUTION = "holoscan-cu13"
PLATFORM_CONFIG = "cpu"
"""The image runs every model on the CPU (holoscan-cli's platform configurations: igpu, dgpu, cpu)."""

APP_DIR = "/opt/holoscan/app"
MODELS_DIR = "/opt/holoscan/models"
DOCS_DIR = "/opt/holoscan/docs"
WORK_DIR = "/var/holoscan"
INPUT_DIR = "input/"
OUTPUT_DIR = "output/"
"""Input and output folders, relative to the working directory (the specification's defaults)."""
COMMAND = "python3 -m app"
"""How the image runs the application (``PYTHONPATH`` holds ``/opt/holoscan/app``)."""

ENVIRONMENT: dict[str, str] = {
    "HOLOSCAN_APPLICATION": APP_DIR,
    "HOLOSCAN_INPUT_PATH": f"{WORK_DIR}/input",
    "HOLOSCAN_OUTPUT_PATH": f"{WORK_DIR}/output",
    "HOLOSCAN_WORKDIR": WORK_DIR,
    "HOLOSCAN_MODEL_PATH": MODELS_DIR,
    "HOLOSCAN_CONFIG_PATH": f"{WORK_DIR}/app.yaml",
    "HOLOSCAN_APP_MANIFEST_PATH": "/etc/holoscan/app.json",
    "HOLOSCAN_PKG_MANIFEST_PATH": "/etc/holoscan/pkg.json",
    "HOLOSCAN_DOCS_PATH": DOCS_DIR,
    "HOLOSCAN_LOGS_PATH": f"{WORK_DIR}/logs",
    "PYTHONPATH": APP_DIR,
}
"""Environment of the application inside the image: ``app.json#environment`` and the Dockerfile's ``ENV``."""

MODEL_FILES = ("model.ts", "metadata.json")
APPLICATION_KEYS = frozenset({"title", "version", "inputFormats", "outputFormats", "timeout"})
MEMORY_KEYS = frozenset({"memory", "memoryLimit", "gpuMemory", "gpuMemoryLimit", "sharedMemory"})
"""Resource sizes, written as mebibytes or gibibytes (``512Mi``, ``4Gi``)."""
RESOURCE_KEYS = MEMORY_KEYS | {"cpu", "cpuLimit", "gpu", "gpuLimit"}
REQUIRED_RESOURCE_KEYS = ("cpu", "gpu", "memory")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]+)?$")
_MEMORY = re.compile(r"^\d+(?:\.\d+)?(?:Mi|Gi)$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class MapConfigError(ValueError):
    """Raised when ``app.yaml``, a model folder or a version pin cannot make a valid MAP."""


@dataclass(frozen=True)
class MapModel:
    """One model of the package: its folder name under ``models/`` and the version in its metadata."""

    name: str
    version: str


@dataclass(frozen=True)
class AppYaml:
    """The checked content of ``app.yaml``.

    Parameters
    ----------
    title, version
        ``application.title`` and ``application.version`` (semantic version).
    input_formats, output_formats
        ``application.inputFormats`` / ``outputFormats`` (e.g. ``["file"]``).
    timeout_s
        ``application.timeout``: seconds a hosting service allows one run (0: no limit).
    models
        The models listed under ``models``, in order.
    resources
        ``resources`` as written (cpu, gpu, memory, ...).
    """

    title: str
    version: str
    input_formats: tuple[str, ...]
    output_formats: tuple[str, ...]
    timeout_s: int
    models: tuple[MapModel, ...]
    resources: dict[str, Any]


def load_app_yaml(path: Path, models_dir: Path) -> AppYaml:
    """Read and check ``app.yaml``; every model it lists must be a folder of ``models_dir``.

    Raises
    ------
    MapConfigError
        If a required key is missing or malformed, a key is unknown, or a model folder is incomplete.
    """
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise MapConfigError(f"cannot read {path}: {error}") from error
    if not isinstance(raw, dict):
        raise MapConfigError(f"{path} must hold a mapping with 'application', 'models' and 'resources'")
    application = _section(raw, "application", path)
    _reject_unknown(application, APPLICATION_KEYS, "application", path)
    resources = _section(raw, "resources", path)
    _reject_unknown(resources, RESOURCE_KEYS, "resources", path)
    return AppYaml(
        title=_text(application, "title", path),
        version=_version(application, path),
        input_formats=_formats(application, "inputFormats", path),
        output_formats=_formats(application, "outputFormats", path),
        timeout_s=_timeout(application, path),
        models=_models(raw.get("models"), models_dir, path),
        resources=_resources(resources, path),
    )


def _section(raw: Mapping[str, Any], key: str, path: Path) -> dict[str, Any]:
    section = raw.get(key)
    if not isinstance(section, dict) or not section:
        raise MapConfigError(f"{path}: '{key}' is missing or empty; it must be a mapping")
    return section


def _reject_unknown(section: Mapping[str, Any], known: frozenset[str], name: str, path: Path) -> None:
    unknown = sorted(set(section) - known)
    if unknown:
        raise MapConfigError(f"{path}: unknown key(s) {unknown} under '{name}'; known: {sorted(known)}")


def _text(section: Mapping[str, Any], key: str, path: Path) -> str:
    value = section.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MapConfigError(f"{path}: 'application.{key}' must be a non-empty string, found {value!r}")
    return value


def _version(section: Mapping[str, Any], path: Path) -> str:
    value = section.get("version")
    if not isinstance(value, str) or not _SEMVER.match(value):
        raise MapConfigError(
            f"{path}: 'application.version' must be a semantic version string such as 0.1.0, found {value!r}"
        )
    return value


def _formats(section: Mapping[str, Any], key: str, path: Path) -> tuple[str, ...]:
    value = section.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise MapConfigError(f"{path}: 'application.{key}' must be a non-empty list such as ['file'], found {value!r}")
    return tuple(value)


def _timeout(section: Mapping[str, Any], path: Path) -> int:
    value = section.get("timeout")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MapConfigError(f"{path}: 'application.timeout' must be whole seconds >= 0 (0: none), found {value!r}")
    return value


def _models(value: Any, models_dir: Path, path: Path) -> tuple[MapModel, ...]:
    if not isinstance(value, list) or not value:
        raise MapConfigError(f"{path}: 'models' must list the model folders of {models_dir}")
    if len(set(map(str, value))) != len(value):
        raise MapConfigError(f"{path}: 'models' lists a model twice: {value}")
    models = []
    for name in value:
        if not isinstance(name, str) or not _MODEL_NAME.match(name):
            raise MapConfigError(f"{path}: model name {name!r} must be 1-128 letters, digits, '.', '_' or '-'")
        folder = models_dir / name
        missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
        if missing:
            raise MapConfigError(f"model '{name}' listed in {path} lacks {missing} in {folder}")
        metadata = json.loads((folder / "metadata.json").read_text())
        if metadata.get("name") != name or not isinstance(metadata.get("version"), str):
            raise MapConfigError(f"{folder / 'metadata.json'} must give name '{name}' and a version string")
        models.append(MapModel(name=name, version=metadata["version"]))
    return tuple(models)


def _resources(section: dict[str, Any], path: Path) -> dict[str, Any]:
    missing = [k for k in REQUIRED_RESOURCE_KEYS if k not in section]
    if missing:
        raise MapConfigError(f"{path}: 'resources' lacks {missing}")
    for key, value in section.items():
        if key in MEMORY_KEYS:
            if not isinstance(value, str) or not _MEMORY.match(value):
                raise MapConfigError(f"{path}: 'resources.{key}' must be a size such as 4Gi or 512Mi, found {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise MapConfigError(f"{path}: 'resources.{key}' must be a number >= 0, found {value!r}")
    if section["cpu"] <= 0:
        raise MapConfigError(f"{path}: 'resources.cpu' must be above 0")
    return dict(section)


def package_version(pyproject: Path) -> str:
    """``project.version`` of ``pyproject.toml``."""
    return str(tomllib.loads(pyproject.read_text())["project"]["version"])


def pinned_version(requirements: Path, distribution: str) -> str:
    """The version that ``requirements`` pins with ``==`` for ``distribution`` (names compared normalised)."""
    wanted = re.sub(r"[-_.]+", "-", distribution).lower()
    for line in requirements.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9._-]+)\s*==\s*([^\s;#]+)", line)
        if match and re.sub(r"[-_.]+", "-", match.group(1)).lower() == wanted:
            return match.group(2)
    raise MapConfigError(f"{requirements} does not pin {distribution} with '=='; pin it exactly")


def application_manifest(config: AppYaml, sdk_version: str) -> dict[str, Any]:
    """The Application Manifest (``/etc/holoscan/app.json``) of the package."""
    return {
        "apiVersion": API_VERSION,
        "type": "application",
        "command": COMMAND,
        "environment": dict(ENVIRONMENT),
        "input": {"path": INPUT_DIR, "formats": list(config.input_formats)},
        "output": {"path": OUTPUT_DIR, "formats": list(config.output_formats)},
        "sdk": SDK_NAME,
        "sdkVersion": sdk_version,
        "timeout": config.timeout_s,
        "version": config.version,
        "workingDirectory": WORK_DIR,
    }


def package_manifest(config: AppYaml) -> dict[str, Any]:
    """The Package Manifest (``/etc/holoscan/pkg.json``): layout, models and resources."""
    return {
        "apiVersion": API_VERSION,
        "applicationRoot": APP_DIR,
        "modelRoot": MODELS_DIR,
        "models": [{"name": m.name, "path": m.name, "version": m.version} for m in config.models],
        "resources": dict(config.resources),
        "version": config.version,
        "platformConfig": PLATFORM_CONFIG,
    }


def build_args(config: AppYaml, sdk_version: str, holoscan_version: str) -> dict[str, str]:
    """Values of the Dockerfile's ``ARG``s that label the image."""
    return {
        "APP_TITLE": config.title,
        "APP_VERSION": config.version,
        "MONAI_DEPLOY_SDK_VERSION": sdk_version,
        "HOLOSCAN_SDK_VERSION": holoscan_version,
    }


def write_manifests(out_dir: Path, repo_root: Path = REPO_ROOT) -> list[Path]:
    """Check ``repo_root``'s ``app.yaml`` and write ``app.json``, ``pkg.json``, ``build-args.env`` into ``out_dir``.

    Raises
    ------
    MapConfigError
        If ``app.yaml`` is invalid or its version is not ``pyproject.toml``'s.
    """
    config = load_app_yaml(repo_root / "app.yaml", repo_root / "models")
    project_version = package_version(repo_root / "pyproject.toml")
    if config.version != project_version:
        raise MapConfigError(
            f"app.yaml's version {config.version} is not pyproject.toml's {project_version}; make them equal"
        )
    requirements = repo_root / "requirements.txt"
    sdk_version = pinned_version(requirements, SDK_DISTRIBUTION)
    holoscan_version = pinned_version(requirements, HOLOSCAN_DISTRIBUTION)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "app.json": json.dumps(application_manifest(config, sdk_version), indent=2) + "\n",
        "pkg.json": json.dumps(package_manifest(config), indent=2) + "\n",
        "build-args.env": "".join(
            f"{key}={value}\n" for key, value in build_args(config, sdk_version, holoscan_version).items()
        ),
    }
    written = []
    for name, text in files.items():
        (out_dir / name).write_text(text)
        written.append(out_dir / name)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the manifests; exit 2 with the reason when ``app.yaml`` is invalid."""
    parser = argparse.ArgumentParser(prog="python -m deploy.map.manifests", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write app.json, pkg.json, build-args.env")
    parser.add_argument("--repo", type=Path, default=REPO_ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        written = write_manifests(args.out, args.repo)
    except MapConfigError as error:
        logger.error("%s", error)
        return 2
    logger.info("wrote %s", ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
