"""The one loader of compiled contracts (Hardhat 3 build output).

Python never compiles on its own at run time: `fedledger chain compile`
runs Hardhat, and this module reads ``build/artifacts``. Loading checks the
build against the sources on disk, so a stale build fails loudly instead of
deploying old bytecode.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .._errors import BuildError
from ..ops._paths import build_dir, project_root

#: Hardhat 3 prefixes the project's own sources with this in solc input.
SOURCE_PREFIX = "project/"
_COMPILE_HINT = "run `fedledger chain compile` (or scripts/setup)"


@dataclass(frozen=True, slots=True)
class Artifact:
    """ABI and bytecode of one compiled contract."""

    name: str
    source: str  # path relative to the project root, e.g. contracts/Rounds.sol
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes
    deployed_bytecode: bytes


def _is_test_source(rel: str) -> bool:
    return rel.startswith("contracts/test/") or rel.endswith(".t.sol")


def contract_sources(root: Path | None = None) -> dict[str, str]:
    """Every deployable Solidity source: relative path -> text.

    Solidity tests (``contracts/test/``, ``*.t.sol``) are not deployable and
    are left out.
    """
    base = root or project_root()
    out: dict[str, str] = {}
    for path in sorted((base / "contracts").rglob("*.sol")):
        rel = path.relative_to(base).as_posix()
        if _is_test_source(rel):
            continue
        out[rel] = path.read_text()
    return out


def source_hash(root: Path | None = None) -> str:
    """sha256 over the deployable sources, recorded in deployment records."""
    h = hashlib.sha256()
    for rel, text in contract_sources(root).items():
        h.update(rel.encode() + b"\0" + text.encode() + b"\0")
    return "0x" + h.hexdigest()


def _built_sources(artifacts: Path) -> dict[str, str]:
    """Each source as compiled into its own artifacts.

    A source's content is read from the build-info its artifacts name. Other
    build-infos may hold older copies: Hardhat compiles Solidity tests
    separately, with the contracts they import, and keeps that build-info
    until the tests are compiled again.
    """
    own: dict[str, str] = {}  # source -> build id of its artifacts
    for path in (artifacts / "contracts").rglob("*.json"):
        try:
            data = json.loads(path.read_text())
            own.setdefault(data["sourceName"], data["buildInfoId"])
        except (KeyError, json.JSONDecodeError):
            continue
    inputs: dict[str, dict[str, str]] = {}
    for info in (artifacts / "build-info").glob("*.json"):
        if info.name.endswith(".output.json"):
            continue
        data = json.loads(info.read_text())
        inputs[info.stem] = {
            name.removeprefix(SOURCE_PREFIX): src["content"]
            for name, src in data["input"]["sources"].items() if "content" in src
        }
    built: dict[str, str] = {}
    for rel, build_id in own.items():
        if rel in inputs.get(build_id, {}):
            built[rel] = inputs[build_id][rel]
    for sources in inputs.values():  # sources that made no artifact of their own
        for rel, text in sources.items():
            built.setdefault(rel, text)
    return built


def check_fresh(root: Path | None = None) -> None:
    """Raise :class:`BuildError` if any deployable source differs from the build."""
    base = root or project_root()
    artifacts = base / "build" / "artifacts"
    if not (artifacts / "build-info").is_dir():
        raise BuildError(f"no Solidity build output in {artifacts}", hint=_COMPILE_HINT)
    built = _built_sources(artifacts)
    for rel, text in contract_sources(base).items():
        if rel not in built:
            raise BuildError(f"{rel} has never been compiled", hint=_COMPILE_HINT)
        if built[rel] != text:
            raise BuildError(f"build output is stale: {rel} changed since the last build",
                             hint=_COMPILE_HINT)


@lru_cache(maxsize=None)
def _load_all(artifacts_dir: str) -> dict[str, Artifact]:
    out: dict[str, Artifact] = {}
    base = Path(artifacts_dir) / "contracts"
    for path in sorted(base.rglob("*.json")):
        if path.name.endswith(".dbg.json"):
            continue
        data = json.loads(path.read_text())
        if "contractName" not in data or _is_test_source(data.get("sourceName", "")):
            continue
        name = data["contractName"]
        if name in out:
            raise BuildError(f"two contracts are named {name}; names must be unique")
        out[name] = Artifact(
            name=name,
            source=data["sourceName"],
            abi=tuple(data["abi"]),
            bytecode=bytes.fromhex(data["bytecode"].removeprefix("0x")),
            deployed_bytecode=bytes.fromhex(data["deployedBytecode"].removeprefix("0x")),
        )
    return out


def load_artifacts(*, check: bool = True) -> dict[str, Artifact]:
    """All compiled contracts by name, after checking the build is fresh."""
    if check:
        check_fresh()
    return _load_all(str(build_dir() / "artifacts"))


def load_artifact(name: str, *, check: bool = True) -> Artifact:
    arts = load_artifacts(check=check)
    try:
        return arts[name]
    except KeyError:
        raise BuildError(
            f"no compiled contract named {name!r}; known: {', '.join(sorted(arts))}",
            hint=_COMPILE_HINT,
        ) from None


def strip_metadata(runtime: bytes) -> bytes:
    """Runtime bytecode without solc's trailing CBOR metadata (which embeds
    source hashes and so differs between otherwise identical builds)."""
    if len(runtime) < 2:
        return runtime
    n = int.from_bytes(runtime[-2:], "big")
    if n + 2 > len(runtime):
        return runtime
    return runtime[: -(n + 2)]
