"""The Solidity build is offline, fresh-checked, and reproducible with py-solc-x."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from coordinator import BuildError, check_fresh, load_artifact, load_artifacts, strip_metadata
from coordinator.chain._artifacts import contract_sources, source_hash
from coordinator.ops._paths import hardhat_cli, node_env, project_root
from coordinator.chain._solc import SOLC_SETTINGS, compile_sources, standard_input

ROOT = project_root()


def _hardhat_build_info() -> dict:
    infos = [p for p in (ROOT / "build/artifacts/build-info").glob("*.json")
             if not p.name.endswith(".output.json")]
    assert infos, "no Hardhat build-info; run scripts/setup"
    return json.loads(max(infos, key=lambda p: p.stat().st_mtime).read_text())


@pytest.mark.integration
def test_hardhat_compiles_offline_with_bundled_solcjs(tmp_path: Path) -> None:
    """Compile a copy of the project with no compiler cache and a dead proxy:
    any download attempt would fail the build."""
    work = tmp_path / "proj"
    work.mkdir()
    for name in ("contracts", "hardhat.config.js", "package.json"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    (work / "node_modules").symlink_to(ROOT / "node_modules")
    env = node_env() | {
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
    }
    proc = subprocess.run([str(hardhat_cli()), "build"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    art = json.loads((work / "build/artifacts/contracts/testing/Probe.sol/Probe.json").read_text())
    assert art["deployedBytecode"] == "0x" + load_artifact("Probe").deployed_bytecode.hex()


def test_python_solc_settings_mirror_hardhat() -> None:
    settings = dict(_hardhat_build_info()["input"]["settings"])
    settings.pop("outputSelection")
    settings.pop("remappings", None)
    assert settings == SOLC_SETTINGS


def test_solcx_runtime_bytecode_equals_hardhat() -> None:
    runtime = compile_sources()
    arts = load_artifacts()
    assert set(runtime) == set(arts)
    for name, art in arts.items():
        # Same source names and settings: even the metadata hash agrees.
        assert runtime[name] == art.deployed_bytecode, name
        assert strip_metadata(runtime[name]) == strip_metadata(art.deployed_bytecode)


def test_standard_input_uses_hardhat_source_names() -> None:
    hh: set[str] = set()
    for p in (ROOT / "build/artifacts/build-info").glob("*.json"):
        if not p.name.endswith(".output.json"):
            hh |= set(json.loads(p.read_text())["input"]["sources"])
    ours = set(standard_input()["sources"])
    assert ours and ours <= hh


def test_stale_build_is_detected(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "contracts", tmp_path / "contracts")
    (tmp_path / "build").mkdir()
    shutil.copytree(ROOT / "build/artifacts", tmp_path / "build/artifacts")
    check_fresh(tmp_path)  # identical copy: fresh
    probe = tmp_path / "contracts/testing/Probe.sol"
    probe.write_text(probe.read_text().replace("LIMIT = 1000", "LIMIT = 1001"))
    with pytest.raises(BuildError, match="stale: contracts/testing/Probe.sol changed"):
        check_fresh(tmp_path)
    (tmp_path / "contracts/New.sol").write_text("pragma solidity 0.8.30; contract New {}")
    probe.write_text((ROOT / "contracts/testing/Probe.sol").read_text())
    with pytest.raises(BuildError, match="contracts/New.sol has never been compiled"):
        check_fresh(tmp_path)


def test_missing_build_is_a_build_error(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "contracts", tmp_path / "contracts")
    with pytest.raises(BuildError, match="no Solidity build output"):
        check_fresh(tmp_path)


def test_source_hash_changes_with_sources(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "contracts", tmp_path / "contracts")
    before = source_hash(tmp_path)
    assert before == source_hash(ROOT)
    (tmp_path / "contracts/Extra.sol").write_text("// x")
    assert source_hash(tmp_path) != before
    assert "contracts/Extra.sol" in contract_sources(tmp_path)


def test_strip_metadata_removes_only_the_cbor_trailer() -> None:
    code = load_artifact("Probe").deployed_bytecode
    stripped = strip_metadata(code)
    n = int.from_bytes(code[-2:], "big")
    assert len(stripped) == len(code) - n - 2
    assert code.startswith(stripped)
    assert strip_metadata(b"\x01") == b"\x01"
