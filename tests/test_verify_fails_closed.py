"""`audit verify` fails closed: what it could not check is never a pass, a
round in flight is "in progress" (never a failure), every read of a run is
pinned to one block, and FINAL rounds that passed are cached.

The chain is the embedded EVM (eth-tester + py-evm) and the store the
embedded block store (Kubo's CIDs); the CLI command runs in process with
``open_federation``/``open_store`` pointed at them, because a read-only
``--rpc-url`` needs a chain in another process (the wiring, not what is
tested, differs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from coordinator import connect
from coordinator.chain._contracts import Federation, LedgerPolicy, Phase, Policy, deploy_federation
from coordinator.privacy._privacy import dp_config
from coordinator.protocol._agent import Aggregator, PeerAgent
from coordinator.protocol._aggregate import load_adapter
from coordinator.protocol._driver import initial_adapter_args
from coordinator.store._store import EmbeddedStore
from ledger_tools import cli as audit_cli
from ledger_tools._inspect import build_log
from ledger_tools._verify import (FAIL, IN_PROGRESS, NOT_CHECKED, OK, VerifyCache, exit_ok,
                                  summary, verify_budgets, verify_rounds)

STAKE = 10**17
L = 200


def _federation(*, start_adapter: bool = True, q: float = 0.2, sigma: float = 1.0,
                steps: int = 10, cap: float = 40):
    chain = connect("embedded")
    chain.ensure_accounts(8)
    store = EmbeddedStore()
    pol = Policy(participants=5, threshold=3, keys_blocks=30, shares_blocks=30, commit_blocks=30,
                 reveal_blocks=30, aggregate_blocks=30, challenge_blocks=3, bond=STAKE)
    kw = initial_adapter_args(store, np.linspace(-1, 1, L, dtype=np.float32), chunk_elems=64) if start_adapter else {}
    fed, _ = deploy_federation(chain, policy=pol, ledger_policy=LedgerPolicy(epsilon_cap=cap), **kw)
    for i in range(1, 6):
        fed.register(sender=i, stake=STAKE)
    fed.register_config(dp_config(config_id=1, q=q, sigma=sigma, steps=steps))
    return chain, fed, store


def _agents(fed, store, r):
    return [PeerAgent(fed, store, a, r) for a in fed.participants(r)]


def _to_commit(fed, store) -> tuple[int, list[PeerAgent]]:
    r, _ = fed.open_round(dp_config=1, vector_length=L, chunk_elems=64)
    agents = _agents(fed, store, r)
    for step in ("post_keys", "post_shares", "receive_shares"):
        for a in agents:
            getattr(a, step)()
    return r, agents


def _final_round(chain, fed, store, *, start: np.ndarray | None) -> int:
    r, agents = _to_commit(fed, store)
    for a in agents:
        a.commit(np.arange(L, dtype=np.uint32) * (a.index + 1), weight=10, dp_config=1)
    for a in agents:
        a.reveal()
    Aggregator(fed, store, chain.account(1).address).run(r)
    chain.mine(4)
    fed.finalize(r)
    assert fed.round_info(r).phase == Phase.FINAL
    return r


def _run_cli(monkeypatch, chain, fed, store, *args: str):
    monkeypatch.setattr(audit_cli, "open_federation", lambda *a, **k: (chain, fed, ""))
    monkeypatch.setattr(audit_cli, "open_store", lambda *_: store)
    return CliRunner().invoke(audit_cli.audit, ["verify", "--rpc-url", "http://unused",
                                                "--no-code", *args])


def test_verify_exits_non_zero_on_a_round_it_cannot_check(monkeypatch) -> None:
    """Round 1's start adapter is no longer to be had from the content store
    (its blocks are gone): the new adapter cannot be recomputed. On the old
    code an uncheckable adapter check silently disappeared and verify exited
    0; round 999 was 'skipped' as a pass."""
    chain, fed, store = _federation()
    with chain:
        r = _final_round(chain, fed, store, start=None)
        start_cid = fed.round_info(r).adapter_cid
        for cid in list(store._blocks):  # the start adapter's blocks vanish
            if cid.digest == start_cid:
                del store._blocks[cid]
        verdicts = verify_rounds(fed, store, [r, 999])
        unchecked = {(v.scope, v.check) for v in verdicts if v.status == NOT_CHECKED}
        assert unchecked == {("round 1", "starting adapter matches its on-chain root"),
                             ("round 999", "round exists")}
        assert all(not v.ok for v in verdicts if v.status == NOT_CHECKED)
        assert not exit_ok(verdicts) and exit_ok(verdicts, allow_unchecked=True)

        res = _run_cli(monkeypatch, chain, fed, store, "--all", "--json")
        assert res.exit_code == 8, res.output
        out = json.loads(res.stdout)
        assert out["ok"] is False and out["counts"][NOT_CHECKED] == 1 and out["counts"][FAIL] == 0
        # The CLI refuses an unknown round up front (issue 17: no false success).
        res = _run_cli(monkeypatch, chain, fed, store, "--round", "999", "--json")
        assert res.exit_code != 0 and "round 999 does not exist" in str(res.exception)
        # The user can choose to accept what could not be checked.
        res = _run_cli(monkeypatch, chain, fed, store, "--all", "--allow-unchecked")
        assert res.exit_code == 0, res.output
        assert "NOT CHECKED round 1: starting adapter" in res.stdout
        assert "1 not checked" in res.stdout.splitlines()[-1]


def test_verify_all_reports_a_round_in_flight_as_in_progress_and_passes(monkeypatch) -> None:
    chain, fed, store = _federation()
    with chain:
        _final_round(chain, fed, store, start=None)
        r, agents = _to_commit(fed, store)
        for a in agents[:3]:  # charged, round still in its commit phase
            a.commit(np.ones(L, dtype=np.uint32), weight=1, dp_config=1)
        assert fed.round_info(r).phase == Phase.COMMIT
        res = _run_cli(monkeypatch, chain, fed, store, "--all", "--json")
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        mine = [v for v in out["verdicts"] if v["scope"] == f"round {r}"]
        assert [(v["status"], v["check"]) for v in mine] == [(IN_PROGRESS, "round in flight")]
        assert "COMMIT" in mine[0]["detail"]
        assert out["counts"][FAIL] == 0 and out["counts"][NOT_CHECKED] == 0
        assert out["counts"][OK] > 10
        # Per-round progress on stderr, one line per round, and the summary count.
        lines = res.stderr.strip().splitlines()
        assert lines == ["[1/2] round 1: ok", "[2/2] round 2: in progress"]
        human = _run_cli(monkeypatch, chain, fed, store, "--all")
        assert human.exit_code == 0
        assert human.stdout.splitlines()[-1].endswith("0 failed, 0 not checked, 1 in progress")


def test_a_failed_round_is_checked_not_skipped() -> None:
    chain, fed, store = _federation()
    with chain:
        r, agents = _to_commit(fed, store)
        for a in agents[:2]:  # two of t = 3 commit: the round fails and refunds them
            a.commit(np.ones(L, dtype=np.uint32), weight=1, dp_config=1)
        chain.mine(40)
        fed.advance(r)
        assert fed.round_info(r).phase == Phase.FAILED
        verdicts = verify_rounds(fed, store, [r])
        assert [(v.check, v.status) for v in verdicts] == [
            ("failure reason matches the on-chain counts", OK),
            ("charges of a failed round refunded", OK)]
        assert "INSUFFICIENT_COMMITS: 2 < t = 3" in verdicts[0].detail


def test_every_read_of_a_verify_is_pinned_to_one_block() -> None:
    """The live-federation false failure of issue 19: the ledger's ε read at
    the head while the charge events were read a few blocks earlier."""
    chain, fed, store = _federation()
    with chain:
        r, agents = _to_commit(fed, store)
        other = Federation(chain, fed.addresses, deploy_block=fed.deploy_block)  # a live peer's view
        with fed.snapshot() as block:
            log = build_log(fed)
            for a in agents[:3]:  # commits (charges) land after the snapshot was taken
                other.commit(r, cid_digest=bytes(32), chunks_root=bytes(32), weight=1,
                             dp_config=1, sender=a.address)
            assert chain.block_number > block
            verdicts = verify_budgets(fed, log)
            assert summary(verdicts)[FAIL] == 0, [v for v in verdicts if not v.ok]
            assert fed.round_info(r).n_commits == 0 and fed.current_round() == r
            assert build_log(fed) == log  # events after the block are not read
        # Outside the snapshot the head is read again: the charges are visible.
        assert fed.round_info(r).n_commits == 3
        assert sum(len(p["charges"]) for p in build_log(fed)["peers"]) == 3
        with fed.snapshot():
            assert summary(verify_budgets(fed, build_log(fed)))[FAIL] == 0


def test_final_rounds_are_cached_by_result_identity(tmp_path, monkeypatch) -> None:
    from ledger_tools._serve import Explorer

    chain, fed, store = _federation()
    with chain:
        for _ in range(2):
            _final_round(chain, fed, store, start=None)
        explorer = Explorer(fed, store)
        first = explorer.verify()
        assert explorer.cache.hits == 0 and first["ok"]
        assert explorer.verify() is first  # the log has not changed: the same answer
        explorer._verified = None  # as after a new event: the per-round cache answers
        second = explorer.verify()
        assert explorer.cache.hits == 3  # both FINAL rounds and the code: no re-aggregation
        assert second["verdicts"] == first["verdicts"]
        # The key names chain, contract, round and the posted result.
        key = VerifyCache.key(fed, 1)
        assert key.startswith(f"{chain.chain_id}:{fed.rounds.address.lower()}:1:")
        assert fed.result_of(1).result_root.hex() in key and VerifyCache.key(fed, 2) != key
        # On disk (CLI --cache): written atomically, read back by the next run.
        path = tmp_path / "verify-cache.json"
        res = _run_cli(monkeypatch, chain, fed, store, "--all", "--no-budgets", "--cache",
                       str(path), "--json")
        assert res.exit_code == 0 and json.loads(res.stdout)["cache_hits"] == 0
        assert len(json.loads(path.read_text())) == 2
        res = _run_cli(monkeypatch, chain, fed, store, "--all", "--no-budgets", "--cache",
                       str(path), "--json")
        assert json.loads(res.stdout)["cache_hits"] == 2
        # A cache entry under another result identity is never used.
        data = json.loads(path.read_text())
        root = fed.result_of(1).result_root.hex()
        forged = {(k.replace(root, "00" * 32) if k.split(":")[2] == "1" else k): v
                  for k, v in data.items()}
        path.write_text(json.dumps(forged))
        res = _run_cli(monkeypatch, chain, fed, store, "--all", "--no-budgets", "--cache",
                       str(path), "--json")
        assert json.loads(res.stdout)["cache_hits"] == 1


def test_a_failing_round_is_not_cached(monkeypatch) -> None:
    chain, fed, store = _federation()
    with chain:
        r = _final_round(chain, fed, store, start=None)
        cache = VerifyCache()
        assert all(v.status == OK for v in verify_rounds(fed, store, [r], cache=cache))
        fresh = VerifyCache()
        digest = fed.result_of(r).new_adapter_cid
        for cid in list(store._blocks):
            if cid.digest == digest:
                del store._blocks[cid]  # the posted adapter is no longer available
        verdicts = verify_rounds(fed, store, [r], cache=fresh)
        assert summary(verdicts)[FAIL] == 1 and fresh.hits == 0
        assert verify_rounds(fed, store, [r], cache=fresh) == verdicts and fresh.hits == 0


def test_a_prv_accountant_that_cannot_give_a_number_is_not_a_pass() -> None:
    """At q = 1, σ = 0.08, T = 10 Opacus' PRV accountant returns ∞ (in 0.8 s;
    σ = 0.2, T = 100 does too, in 20 s a call): the
    PRV comparison could not be made, so it is "not checked" (the old code
    folded PRV into the RDP verdict and turned an exception into NaN, a pass)."""
    chain, fed, store = _federation(q=1.0, sigma=0.08, steps=10, cap=10**6)
    with chain:
        r, agents = _to_commit(fed, store)
        for a in agents:
            a.commit(np.ones(L, dtype=np.uint32), weight=1, dp_config=1)
        with fed.snapshot():
            verdicts = verify_budgets(fed, build_log(fed))
        prv = [v for v in verdicts if v.check == "Opacus PRV ε never above the ledger's"]
        assert prv and all(v.status == NOT_CHECKED and not v.ok for v in prv), prv
        assert not exit_ok(verdicts)
