"""Where fedledger finds its project files and the tools scripts/setup installs.

Every lookup honours an environment variable first, so an operator can point
at a tool installed elsewhere.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .._errors import ComponentMissingError

#: Kubo release built by scripts/setup (see scripts/kubo/go.mod).
KUBO_VERSION = "0.42.0"


def project_root() -> Path:
    """The checkout that holds contracts/, hardhat.config.js and node_modules/."""
    env = os.environ.get("FEDLEDGER_HOME")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent.parent.parent


def build_dir() -> Path:
    return project_root() / "build"


def node_bin_dir() -> Path:
    return project_root() / "node_modules" / ".bin"


def node22() -> Path:
    """The Node.js 22 binary that Hardhat 3 needs (npm package ``node@22``)."""
    env = os.environ.get("FEDLEDGER_NODE")
    if env:
        return Path(env)
    candidate = node_bin_dir() / "node"
    if candidate.exists():
        return candidate
    raise ComponentMissingError(
        "node22",
        f"Node.js 22 not found at {candidate}",
        hint="run scripts/setup to install the npm package node@22",
    )


def node_env() -> dict[str, str]:
    """Environment for Node tools: node_modules/.bin first so `node` is 22."""
    env = dict(os.environ)
    env["PATH"] = f"{node_bin_dir()}{os.pathsep}{env.get('PATH', '')}"
    return env


def anvil_binary() -> Path:
    """The anvil binary shipped by the npm package @foundry-rs/anvil."""
    env = os.environ.get("FEDLEDGER_ANVIL")
    if env:
        return Path(env)
    candidate = (
        project_root() / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    )
    if candidate.exists():
        return candidate
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise ComponentMissingError(
        "anvil", "anvil not found", hint="run scripts/setup to install @foundry-rs/anvil"
    )


def hardhat_cli() -> Path:
    candidate = node_bin_dir() / "hardhat"
    if candidate.exists():
        return candidate
    raise ComponentMissingError(
        "hardhat", f"Hardhat not found at {candidate}", hint="run scripts/setup (npm ci)"
    )


def solc_shim() -> Path:
    """The `solc` executable over solc-js that py-solc-x calls."""
    env = os.environ.get("FEDLEDGER_SOLC")
    if env:
        return Path(env)
    candidate = project_root() / "scripts" / "solc"
    if candidate.exists() and (project_root() / "node_modules" / "solc").exists():
        return candidate
    raise ComponentMissingError(
        "solc", "the solc-js compiler is not installed", hint="run scripts/setup (npm ci)"
    )


def kubo_binary() -> Path:
    """The Kubo `ipfs` binary built from the Go module proxy by scripts/setup."""
    env = os.environ.get("FEDLEDGER_IPFS_BIN")
    if env:
        return Path(env)
    candidate = project_root() / ".tools" / "bin" / "ipfs"
    if candidate.exists():
        return candidate
    found = shutil.which("ipfs")
    if found:
        return Path(found)
    raise ComponentMissingError(
        "kubo",
        f"Kubo (ipfs {KUBO_VERSION}) not found at {candidate}",
        hint="run scripts/setup, which builds it from the Go module proxy",
    )


def state_dir() -> Path:
    """Where daemons keep their data by default (``FEDLEDGER_STATE``)."""
    env = os.environ.get("FEDLEDGER_STATE")
    base = Path(env) if env else project_root() / ".fedledger"
    base.mkdir(parents=True, exist_ok=True)
    return base
