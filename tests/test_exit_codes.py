"""Each documented exit code of `fedledger` has a test (README: 3 component
missing, 5 Solidity build missing/stale, 6 transaction failed, 7 a round
cannot be aggregated, 8 an audit check failed, 130 interrupted), and
`audit challenge` runs end to end through the command line.

Commands that need a running chain run in process through the real entry
point (``coordinator.cli.main``), with ``open_federation``/``open_store``
pointed at the embedded EVM and block store: a read-only ``--rpc-url`` would
need a chain in another process, and that wiring is not what is tested."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import coordinator.cli as core_cli
from coordinator import connect
from coordinator import _encoding as enc
from coordinator.chain._contracts import LedgerPolicy, Phase, Policy, deploy_federation
from coordinator.ops._paths import project_root
from coordinator.privacy._privacy import dp_config
from coordinator.protocol._agent import Aggregator, PeerAgent
from coordinator.protocol._aggregate import aggregate, apply_update, blob_fixed, collect, round_start
from coordinator.protocol._driver import initial_adapter_args
from coordinator.store._store import EmbeddedStore
from ledger_tools import cli as audit_cli

FEDLEDGER = [sys.executable, "-m", "coordinator.cli"]
STAKE = 10**17
L = 200


def _federation():
    chain = connect("embedded")
    chain.ensure_accounts(9)
    store = EmbeddedStore()
    pol = Policy(participants=5, threshold=3, keys_blocks=30, shares_blocks=30, commit_blocks=30,
                 reveal_blocks=30, aggregate_blocks=30, challenge_blocks=3, bond=STAKE)
    fed, _ = deploy_federation(chain, policy=pol, ledger_policy=LedgerPolicy(epsilon_cap=40),
                               **initial_adapter_args(store, np.zeros(L, np.float32), chunk_elems=64))
    for i in range(1, 6):
        fed.register(sender=i, stake=STAKE)
    fed.register_config(dp_config(config_id=1, q=0.2, sigma=1.0, steps=10))
    return chain, fed, store


def _to_aggregate(fed, store, *, corrupt: int | None = None) -> int:
    r, _ = fed.open_round(dp_config=1, vector_length=L, chunk_elems=64)
    agents = [PeerAgent(fed, store, a, r) for a in fed.participants(r)]
    for step in ("post_keys", "post_shares", "receive_shares"):
        for a in agents:
            getattr(a, step)()
    for a in agents:
        x = np.arange(L, dtype=np.uint32) * (a.index + 1)
        if a.index == corrupt:  # commits a root that is not its vector's
            y = a.masked(x)
            cid = store.add(enc.to_bytes(y))
            y[0] += 1
            fed.commit(r, cid_digest=cid.digest, chunks_root=enc.vector_root(y, 64), weight=1,
                       dp_config=1, sender=a.address)
        else:
            a.commit(x, weight=10, dp_config=1)
    for a in agents:
        a.reveal()
    assert fed.round_info(r).phase == Phase.AGGREGATE
    return r


def _main(monkeypatch, capsys, chain, fed, store, signer: str, *argv: str) -> tuple[int, str, str]:
    for mod in (core_cli, audit_cli):
        monkeypatch.setattr(mod, "open_federation", lambda *a, **k: (chain, fed, signer))
        monkeypatch.setattr(mod, "open_store", lambda *_: store)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        core_cli.main([*argv, "--rpc-url", "http://unused"])
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def _one_line(err: str) -> None:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_exit_6_when_a_transaction_reverts(monkeypatch, capsys) -> None:
    chain, fed, store = _federation()
    with chain:
        r, _ = fed.open_round(dp_config=1, vector_length=L, chunk_elems=64)
        code, _, err = _main(monkeypatch, capsys, chain, fed, store, chain.account(1).address,
                             "round", "finalize", "--round", str(r))
        assert code == 6 and "RoundsWrongPhase" in err, err
        _one_line(err)


def test_exit_7_when_a_round_cannot_be_aggregated(monkeypatch, capsys) -> None:
    chain, fed, store = _federation()
    with chain:
        r = _to_aggregate(fed, store, corrupt=2)
        code, _, err = _main(monkeypatch, capsys, chain, fed, store, chain.account(1).address,
                             "round", "aggregate", "--round", str(r))
        assert code == 7 and "participant 2 does not match its committed Merkle root" in err, err
        _one_line(err)
        assert fed.result_of(r).bond == 0  # nothing was posted


def test_exit_8_when_an_audit_check_fails_and_challenge_end_to_end(monkeypatch, capsys) -> None:
    chain, fed, store = _federation()
    with chain:
        r = _to_aggregate(fed, store)
        agg = aggregate(collect(fed, r), store)
        start = blob_fixed(round_start(fed, store, r))
        total = agg.total.copy()
        total[64 + 3] ^= 0x10000  # chunk 1 is wrong
        bad = dataclasses.replace(agg, total=total)
        liar = chain.account(1).address
        Aggregator(fed, store, liar).post(r, bad, apply_update(start, bad))
        code, out, _ = _main(monkeypatch, capsys, chain, fed, store, "", "audit", "verify",
                             "--round", str(r), "--no-budgets", "--no-code", "--json")
        assert code == 8 and json.loads(out)["counts"]["fail"] >= 1
        # Anyone proves it on-chain through the CLI; the liar's bond is slashed.
        challenger = chain.account(8).address
        code, out, err = _main(monkeypatch, capsys, chain, fed, store, challenger, "audit",
                               "challenge", "--round", str(r), "--json")
        assert code == 0, err
        data = json.loads(out)
        assert data["fraud"]["kind"] == "chunk" and data["fraud"]["index"] == 1
        assert data["aggregator"] == liar and data["slashed_wei"] == STAKE
        assert fed.withdrawable(challenger) == data["reward_wei"] > 0
        assert fed.round_info(r).phase == Phase.AGGREGATE and fed.peer_info(liar)["quarantined"]
        # An honest re-aggregation has nothing to challenge: exit 8, one line on stdout.
        Aggregator(fed, store, chain.account(2).address).run(r)
        code, out, _ = _main(monkeypatch, capsys, chain, fed, store, challenger, "audit",
                             "challenge", "--round", str(r))
        assert code == 8 and "nothing to challenge" in out


def _project_copy(tmp: Path, *, node_modules: bool) -> Path:
    root = project_root()
    work = tmp / "proj"
    work.mkdir()
    for name in ("contracts", "build", "hardhat.config.js", "package.json"):
        src = root / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name, **(
            {"symlinks": True} if src.is_dir() else {}))
    if node_modules:
        (work / "node_modules").symlink_to(root / "node_modules")
    return work


def test_exit_5_when_the_solidity_build_is_stale(tmp_path) -> None:
    work = _project_copy(tmp_path, node_modules=True)
    src = work / "contracts" / "FedRounds.sol"
    src.write_text(src.read_text() + "\n// edited after the build\n")
    env = os.environ | {"FEDLEDGER_HOME": str(work), "FEDLEDGER_STATE": str(tmp_path / "state")}
    proc = subprocess.run([*FEDLEDGER, "chain", "deploy", "--out", str(tmp_path / "d.json")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 5, proc.stderr
    assert "stale" in proc.stderr and "FedRounds.sol" in proc.stderr
    _one_line(proc.stderr)


def test_exit_3_when_a_component_is_missing(tmp_path) -> None:
    work = _project_copy(tmp_path, node_modules=False)  # no node_modules: no anvil
    env = os.environ | {"FEDLEDGER_HOME": str(work), "FEDLEDGER_STATE": str(tmp_path / "state")}
    proc = subprocess.run([*FEDLEDGER, "chain", "up", "--kind", "anvil"], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 3, proc.stderr
    assert "anvil" in proc.stderr.lower()
    assert "Traceback" not in proc.stderr


@pytest.mark.integration
def test_exit_130_when_interrupted(tmp_path) -> None:
    """Ctrl-C (SIGINT) to `chain up`: the node is stopped and the exit is 130."""
    env = os.environ | {"FEDLEDGER_STATE": str(tmp_path / "state")}
    # SIGINT as a terminal's Ctrl-C finds it: a job started in the background
    # by a non-interactive shell inherits SIGINT ignored, and Python then
    # never raises KeyboardInterrupt (two full-suite runs here hung on it).
    proc = subprocess.Popen([*FEDLEDGER, "chain", "up", "--kind", "anvil", "--no-deploy", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = ""
        deadline = time.monotonic() + 120
        buf = ""
        while time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline() if proc.stdout else ""
            buf += line
            try:
                info = json.loads(buf)
                break
            except ValueError:
                continue
        else:
            pytest.fail(f"chain up did not report ready: {buf}")
        assert len(info["accounts"]) == len(set(info["accounts"])) >= 20  # every funded account
        ignored = int(next(line for line in open(f"/proc/{proc.pid}/status")
                           if line.startswith("SigIgn:")).split()[1], 16)
        assert not ignored & (1 << (signal.SIGINT - 1)), "chain up ignores SIGINT"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        err = proc.stderr.read() if proc.stderr else ""
        assert code == 130, err
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1] in ("aborted", "interrupted"), err
        # The node it started is gone.
        import urllib.request

        with pytest.raises(OSError):
            urllib.request.urlopen(info["rpc_url"], timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
