"""The sandbox's own checks: it fails loudly (never skips) without root or the system packages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.pacs import orthanc_sandbox
from tests.pacs.orthanc_sandbox import (
    DICOMWEB_PLUGIN,
    WEBVIEWER_PLUGIN,
    OrthancSandbox,
    SandboxUnavailableError,
    check_requirements,
)

NON_ROOT_UID = 1000


def test_a_non_root_process_is_told_to_install_and_run_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orthanc_sandbox.os, "geteuid", lambda: NON_ROOT_UID)
    with pytest.raises(SandboxUnavailableError, match=r"needs root .*scripts/install_system_deps\.sh"):
        check_requirements()


def test_missing_commands_are_named_with_the_install_script(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(orthanc_sandbox.os, "geteuid", lambda: 0)
    monkeypatch.setattr(orthanc_sandbox, "_SBIN_DIRS", ())
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxUnavailableError, match=r"Orthanc, unshare, nsenter, ip; run .*install_system_deps"):
        check_requirements()


def test_a_missing_plugin_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(orthanc_sandbox, "PLUGIN_DIRS", (tmp_path,))
    with pytest.raises(SandboxUnavailableError, match=f"{DICOMWEB_PLUGIN} not found in {tmp_path}"):
        orthanc_sandbox.find_plugin(DICOMWEB_PLUGIN)


@pytest.mark.parametrize("webviewer", [False, True])
def test_the_configuration_keeps_everything_under_the_sandbox_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, webviewer: bool
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for name in (DICOMWEB_PLUGIN, WEBVIEWER_PLUGIN):
        (plugins / name).touch()
    monkeypatch.setattr(orthanc_sandbox, "PLUGIN_DIRS", (plugins,))
    sandbox = OrthancSandbox(tmp_path / "orthanc", webviewer=webviewer)
    config = json.loads(sandbox._write_config().read_text())
    expected_plugins = [DICOMWEB_PLUGIN, WEBVIEWER_PLUGIN] if webviewer else [DICOMWEB_PLUGIN]
    assert [Path(p).name for p in config["Plugins"]] == expected_plugins
    assert Path(config["StorageDirectory"]).parent == tmp_path / "orthanc"
    assert Path(config["WebViewer"]["CachePath"]).parent == tmp_path / "orthanc"
    assert (config["HttpPort"], config["RemoteAccessAllowed"]) == (sandbox.http_port, False)
    with pytest.raises(RuntimeError, match="not running"):
        _ = sandbox.pid
