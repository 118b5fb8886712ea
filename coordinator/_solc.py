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
from ._errors import BuildError
from ._paths import solc_shim

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
                                             "evm.deployedBytecode.object"]}},
        },
    }


def compile_sources(root: Path | None = None) -> dict[str, bytes]:
    """Contract name -> runtime bytecode, compiled by py-solc-x."""
    import solcx  # imported lazily: only auditors need it

    try:
        out = solcx.compile_standard(standard_input(root), solc_binary=solc_shim())
    except solcx.exceptions.SolcError as exc:
        raise BuildError(f"py-solc-x compilation failed: {exc}") from exc
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise BuildError("solc reported errors: " + "; ".join(e["formattedMessage"] for e in errors))
    runtime: dict[str, bytes] = {}
    for contracts in out["contracts"].values():
        for name, c in contracts.items():
            runtime[name] = bytes.fromhex(c["evm"]["deployedBytecode"]["object"])
    return runtime


def solc_version() -> str:
    import solcx

    return str(solcx.wrapper.get_solc_version(solc_shim(), with_commit_hash=True))
