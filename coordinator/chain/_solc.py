"""Independent compilation with py-solc-x, for auditors.

An auditor checks that deployed bytecode comes from the published source
without trusting our Hardhat build: this module builds the same standard-JSON
input Hardhat builds (same source names, same settings) and compiles it with
py-solc-x through ``scripts/solc``, a shim over solc-js, so nothing is ever
downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._artifacts import SOURCE_PREFIX, contract_sources
from .._errors import BuildError
from ..ops._paths import solc_shim

#: Mirrors SOLC_SETTINGS in hardhat.config.js; a test checks they agree.
SOLC_SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
}


def standard_input(root: Path | None = None) -> dict[str, Any]:
    sources = {
        SOURCE_PREFIX + rel: {"content": text} for rel, text in contract_sources(root).items()
    }
    return {
        "language": "Solidity",
        "sources": sources,
        "settings": {
            **SOLC_SETTINGS,
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object",
                                             "evm.deployedBytecode.object",
                                             "evm.deployedBytecode.immutableReferences"]}},
        },
    }


def compile_sources(root: Path | None = None) -> dict[str, bytes]:
    """Contract name -> runtime bytecode, compiled by py-solc-x."""
    return {name: code for name, (code, _) in compile_runtime(root).items()}


def compile_runtime(root: Path | None = None) -> dict[str, tuple[bytes, list[tuple[int, int]]]]:
    """Contract name -> (runtime bytecode, byte ranges of its immutables).
    Deployed code has the constructor's values in those ranges."""
    import solcx  # imported lazily: only auditors need it

    try:
        out = solcx.compile_standard(standard_input(root), solc_binary=solc_shim())
    except solcx.exceptions.SolcError as exc:
        raise BuildError(f"py-solc-x compilation failed: {exc}") from exc
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise BuildError("solc reported errors: " + "; ".join(e["formattedMessage"] for e in errors))
    runtime: dict[str, tuple[bytes, list[tuple[int, int]]]] = {}
    for contracts in out["contracts"].values():
        for name, c in contracts.items():
            dep = c["evm"]["deployedBytecode"]
            refs = [(int(r["start"]), int(r["length"]))
                    for ranges in (dep.get("immutableReferences") or {}).values() for r in ranges]
            runtime[name] = (bytes.fromhex(dep["object"]), refs)
    return runtime


def comparable(code: bytes, immutables: list[tuple[int, int]]) -> bytes:
    """Runtime code with immutables zeroed and solc's metadata removed: what
    must be equal between a deployment and a compilation of its source."""
    from ._artifacts import strip_metadata

    buf = bytearray(code)
    for start, length in immutables:
        buf[start:start + length] = bytes(length)
    return strip_metadata(bytes(buf))


def solc_version() -> str:
    import solcx

    return str(solcx.wrapper.get_solc_version(solc_shim(), with_commit_hash=True))
