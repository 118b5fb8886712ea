"""`fedledger doctor`: check every component and say how to fix what is missing."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from ._errors import FedLedgerError
from .ops._paths import KUBO_VERSION, anvil_binary, hardhat_cli, kubo_binary, node22, node_env, project_root

PY_PACKAGES = ("web3", "eth_tester", "eth", "solcx", "nacl", "httpx", "click", "rich", "torch")


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _run(argv: list[str], timeout: float = 60) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=node_env(), cwd=project_root())
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["failed"])
    return proc.stdout.strip()


def _check(name: str, fix: str, fn: Callable[[], str]) -> Check:
    try:
        return Check(name, True, fn())
    except FedLedgerError as exc:
        return Check(name, False, exc.message, exc.hint or fix)
    except Exception as exc:  # noqa: BLE001 - doctor reports, never crashes
        return Check(name, False, f"{type(exc).__name__}: {exc}", fix)


def _python_packages() -> str:
    missing = []
    for mod in PY_PACKAGES:
        try:
            importlib.import_module(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise RuntimeError("missing: " + ", ".join(missing))
    return f"{len(PY_PACKAGES)} packages import"


def _node() -> str:
    version = _run([str(node22()), "--version"])
    if not version.startswith("v22."):
        raise RuntimeError(f"Node {version}; Hardhat 3 needs Node 22")
    return version


def _hardhat() -> str:
    return "hardhat " + _run([str(hardhat_cli()), "--version"]).splitlines()[-1]


def _solc() -> str:
    from .chain._solc import solc_version

    return "solc-js " + solc_version()


def _anvil() -> str:
    return _run([str(anvil_binary()), "--version"]).splitlines()[0]


def _kubo() -> str:
    out = _run([str(kubo_binary()), "version"])
    if KUBO_VERSION not in out:
        raise RuntimeError(f"{out}; expected {KUBO_VERSION}")
    return out


def _prg() -> str:
    """Which keccak-CTR path masks here; the Python fallbacks are correct, only
    slower, so this never fails (scripts/setup builds the native one with cargo)."""
    from . import _encoding

    return _encoding.prg_path()


def _build() -> str:
    from .chain._artifacts import check_fresh, load_artifacts

    check_fresh()
    return f"{len(load_artifacts())} contracts, up to date"


def _chain(rpc_url: str | None) -> Callable[[], str]:
    def run() -> str:
        from .chain._chain import connect
        from .chain._deploy import deploy_all

        with connect(rpc_url or "embedded") as chain:
            if rpc_url:
                return f"chain id {chain.chain_id} at block {chain.block_number}"
            rec = deploy_all(chain)
            return f"embedded chain: deployed {', '.join(rec.contracts)}"
    return run


def _ipfs(api: str | None) -> Callable[[], str]:
    def run() -> str:
        from .store._store import KuboClient, KuboDaemon

        if api:
            client = KuboClient(api, timeout=10)
            try:
                return f"Kubo {client.version()} at {client.api}"
            finally:
                client.close()
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory(prefix="fedledger-doctor-") as tmp:
            daemon = KuboDaemon(Path(tmp) / "repo", timeout=30)
            try:
                c = daemon.start()
                cid = c.add(b"fedledger doctor")
                assert c.cat(cid) == b"fedledger doctor"
                return f"temporary Kubo daemon round-tripped a blob ({cid})"
            finally:
                daemon.stop()
    return run


def run_checks(*, rpc_url: str | None = None, ipfs_api: str | None = None) -> list[Check]:
    setup = "run scripts/setup"
    return [
        _check("python packages", setup, _python_packages),
        _check("node 22", setup, _node),
        _check("hardhat", setup, _hardhat),
        _check("solc (solc-js)", setup, _solc),
        _check("anvil", setup, _anvil),
        _check("kubo", setup, _kubo),
        _check("go toolchain", "install Go 1.26 (needed only to build Kubo)",
               lambda: shutil.which("go") or _raise("go not on PATH")),
        _check("solidity build", "run `fedledger chain compile`", _build),
        _check("mask PRG", setup, _prg),
        _check("chain", "check --rpc-url, or run scripts/setup", _chain(rpc_url)),
        _check("ipfs", "check --ipfs-api, or run scripts/setup", _ipfs(ipfs_api)),
    ]


def _raise(msg: str) -> str:
    raise RuntimeError(msg)
