"""The peer's durable state and its resumption after a crash at each step
(in process: a crash is an exception out of a chain call, and a restart is a
new PeerNode over the same state file). Process-level kill -9 is in
tests/test_federation_processes.py."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

import cbor2
import numpy as np
import pytest

from coordinator import connect
from coordinator.protocol._aggregate import collect, verify
from coordinator.chain._contracts import LedgerPolicy, Phase, Policy, StatusFlag, deploy_federation
from coordinator.protocol._driver import RoundDriver, initial_adapter_args
from coordinator.privacy._privacy import dp_config
from coordinator.store._store import EmbeddedStore
from nodes._data import partition
from nodes._inprocess import drive
from nodes._model import ModelConfig, build_model, get_flat
from nodes._peer import ModelLearner, PeerNode
from nodes._state import PeerState, StateError
from nodes._train import TrainConfig

STAKE = 10**17
PASS = b"correct horse battery staple"
DEP = (31337, "0x" + "ab" * 20)


def test_state_seals_secrets_and_refuses_a_wrong_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    st = PeerState(path, PASS, deployment=DEP)
    secret = secrets.token_bytes(32)
    assert st.put_new(1, "secrets", secret, secret=True) == secret
    assert st.put_new(1, "secrets", b"another draw", secret=True) == secret  # first one wins
    st.put(1, "masked", b"public bytes")
    st.close()
    raw = path.read_bytes() + (path.with_name(path.name + "-wal").read_bytes()
                               if path.with_name(path.name + "-wal").exists() else b"")
    assert secret not in raw and b"public bytes" in raw
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(StateError, match="does not open"):
        PeerState(path, b"wrong", deployment=DEP)
    again = PeerState(path, PASS, deployment=DEP)
    assert again.get(1, "secrets") == secret and again.get(2, "secrets") is None
    # A sealed record altered on disk is refused, not silently used.
    db = sqlite3.connect(path)
    db.execute("UPDATE kv SET value = ? WHERE name = 'secrets'", (b"\x00" * 72,))
    db.commit()
    with pytest.raises(StateError, match="does not decrypt"):
        again.get(1, "secrets")
    with pytest.raises(StateError, match="empty passphrase"):
        PeerState(tmp_path / "t.sqlite", b"", deployment=DEP)


def test_state_file_is_never_readable_by_others_not_even_while_sqlite_opens_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import stat

    import nodes._state as state_mod

    seen: list[int] = []
    real_connect = sqlite3.connect

    def spy(path, *a, **kw):  # the mode the file has when SQLite first opens it
        seen.append(stat.S_IMODE(os.stat(path).st_mode) if os.path.exists(path) else -1)
        return real_connect(path, *a, **kw)

    monkeypatch.setattr(state_mod.sqlite3, "connect", spy)
    old = os.umask(0o022)
    try:
        path = tmp_path / "peer" / "s.sqlite"
        st = PeerState(path, PASS, deployment=DEP)
        st.put(1, "masked", b"x")
        st.close()
    finally:
        os.umask(old)
    assert seen == [0o600]
    for f in (path, path.with_name(path.name + "-wal")):
        if f.exists():
            assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, (f, oct(f.stat().st_mode))


def test_state_file_is_bound_to_one_signing_account(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    a, b = "0x" + "aa" * 20, "0x" + "bB" * 20
    st = PeerState(path, PASS, deployment=DEP, account=a)
    st.put_new(1, "secrets", b"A's keys", secret=True)
    st.close()
    PeerState(path, PASS, deployment=DEP, account=a.upper().replace("0X", "0x")).close()
    with pytest.raises(StateError, match=f"belongs to account {a}, not {b}"):
        PeerState(path, PASS, deployment=DEP, account=b)


def test_state_rows_are_bound_to_their_round_name_and_deployment(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    st = PeerState(path, PASS, deployment=DEP)
    st.put(1, "secrets", b"round one keys", secret=True)
    st.put(2, "secrets", b"round two keys", secret=True)
    st.put(2, "update", b"round two update", secret=True)
    st.close()
    # Swap sealed rows between rounds and names on disk: each is refused.
    db = sqlite3.connect(path)
    one = db.execute("SELECT value FROM kv WHERE round = 1 AND name = 'secrets'").fetchone()[0]
    upd = db.execute("SELECT value FROM kv WHERE round = 2 AND name = 'update'").fetchone()[0]
    db.execute("UPDATE kv SET value = ? WHERE round = 2 AND name = 'secrets'", (one,))
    db.execute("UPDATE kv SET value = ? WHERE round = 1 AND name = 'secrets'", (upd,))
    db.commit()
    db.close()
    st = PeerState(path, PASS, deployment=DEP)
    with pytest.raises(StateError, match="does not decrypt"):
        st.get(2, "secrets")
    with pytest.raises(StateError, match="does not decrypt"):
        st.get(1, "secrets")
    st.close()
    # The same file opened for another deployment is refused in one line.
    for other in ((DEP[0] + 1, DEP[1]), (DEP[0], "0x" + "cd" * 20)):
        with pytest.raises(StateError, match="belongs to deployment") as err:
            PeerState(path, PASS, deployment=other)
        assert "\n" not in str(err.value)


def test_state_of_an_older_layout_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE kv (round INTEGER, name TEXT, sealed INTEGER, value BLOB, at REAL, "
               "PRIMARY KEY (round, name))")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="older fedledger"):
        PeerState(path, PASS, deployment=DEP)


class Crash(Exception):
    """Stands for the process dying at this point."""


def _federation(n: int = 4, t: int = 3):
    chain = connect("embedded")
    chain.ensure_accounts(n + 2)
    store = EmbeddedStore()
    model = build_model(ModelConfig(encoder="tiny", seed=0))
    start = get_flat(model)
    pol = Policy(participants=n, threshold=t, keys_blocks=8, shares_blocks=8, commit_blocks=8,
                 reveal_blocks=8, aggregate_blocks=8, challenge_blocks=1, bond=STAKE)
    fed, _ = deploy_federation(chain, policy=pol, ledger_policy=LedgerPolicy(epsilon_cap=50),
                               **initial_adapter_args(store, start))
    fed.register_config(dp_config(config_id=1, q=0.5, sigma=1.0, steps=2))
    for i in range(1, n + 1):
        fed.register(sender=i, stake=STAKE)
    parts = partition(n, examples_per_peer=40, seed=1)
    learners = [ModelLearner(model, parts[i].train, TrainConfig(lr=1e-2, secure_rng=True))
                for i in range(n)]
    driver = RoundDriver(fed, store, aggregator=chain.account(1).address, dp_config=1,
                         vector_length=len(start), rounds=1)
    return chain, fed, store, learners, driver


def _node(fed, store, learners, i: int, path: Path) -> PeerNode:
    return PeerNode(fed, store, fed.chain.account(i + 1).address,
                    PeerState(path, PASS, deployment=(fed.chain.chain_id, fed.rounds.address)),
                    learners[i])


@pytest.mark.parametrize("where", ["post_keys", "post_shares", "commit-before", "commit-after",
                                   "reveal-after"])
def test_peer_resumes_after_a_crash_without_new_secrets_or_a_second_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    chain, fed, store, learners, driver = _federation()
    with chain:
        nodes = [_node(fed, store, learners, i, tmp_path / f"p{i}.sqlite") for i in range(4)]
        r = int(driver.tick().split()[-1])  # "opened round 1"
        victim = nodes[0]
        name, _, when = where.partition("-")
        real = getattr(type(fed), name)
        crashed = []

        def crashing(self, *args, **kwargs):
            if kwargs.get("sender") == victim.address and not crashed:
                crashed.append(True)
                if when == "after":  # the transaction landed, then the process died
                    real(self, *args, **kwargs)
                raise Crash(name)
            return real(self, *args, **kwargs)

        monkeypatch.setattr(type(fed), name, crashing)
        before: dict[str, bytes | None] = {}
        try:
            drive(fed, driver, nodes, r)
        except Crash:
            for key in ("secrets", "dp_seed", "bundle", "masked"):
                before[key] = victim.state.get(r, key)
            victim.state.close()
            # Restart: a new process over the same state file.
            nodes[0] = _node(fed, store, learners, 0, tmp_path / "p0.sqlite")
            drive(fed, driver, nodes, r)
        assert crashed
        for key, value in before.items():
            if value is not None:  # what was drawn before the crash is what was used
                assert nodes[0].state.get(r, key) == value, key
        assert fed.round_info(r).phase == Phase.AGGREGATE
        pub = collect(fed, r)
        assert len(pub.u3) == 4 and len(pub.reveals) == 4
        commits = [e for e in fed.events("FedRounds", "UpdateCommitted", 0)
                   if e.args["peer"] == victim.address]
        assert len(commits) == 1  # never two commits
        if before.get("masked") is not None:
            from coordinator.store._store import layout

            assert commits[0].args["cidDigest"] == layout(before["masked"], store.opts)[0].digest
        driver.tick()
        assert all(c.ok for c in verify(fed, store, r))


def test_peer_that_lost_its_state_sits_the_round_out(tmp_path: Path) -> None:
    chain, fed, store, learners, driver = _federation()
    with chain:
        nodes = [_node(fed, store, learners, i, tmp_path / f"p{i}.sqlite") for i in range(4)]
        r = int(driver.tick().split()[-1])
        for nd in nodes:
            nd.step(r)  # everyone posts keys (and trains)
        keys = cbor2.loads(nodes[0].state.get(r, "secrets"))
        nodes[0].state.close()
        (tmp_path / "p0.sqlite").unlink()
        nodes[0] = _node(fed, store, learners, 0, tmp_path / "p0.sqlite")
        drive(fed, driver, nodes, r)
        assert nodes[0].state.get(r, "secrets") is None  # no fresh keys for a joined round
        assert nodes[0].state.get(r, "abandoned") is not None
        _, flags = fed.status(r, nodes[0].address)
        assert flags & StatusFlag.KEYS and not flags & StatusFlag.SHARES
        assert fed.round_info(r).phase == Phase.AGGREGATE and len(collect(fed, r).u3) == 3
        # The keys on-chain are those of the lost state (the restarted peer did
        # not post fresh ones), and none of its secrets reached the new state.
        from nacl.bindings import crypto_scalarmult_base

        posted = [e.args for e in fed.all_events("FedRounds", fed.round_info(r).opened_block)
                  if e.name == "KeysPosted" and e.args["peer"] == nodes[0].address]
        assert len(posted) == 1
        assert bytes(posted[0]["encPk"]) == crypto_scalarmult_base(keys["enc"])
        assert bytes(posted[0]["maskPk"]) == crypto_scalarmult_base(keys["mask"])


def test_resumed_training_is_byte_identical_and_the_seed_is_secret(tmp_path: Path) -> None:
    """A crash after the round's DP seed is sealed but before the update is
    stored retrains to the byte-identical update; another state (an attacker
    replaying the peer's public inputs) draws another seed and other noise."""
    chain, fed, store, learners, driver = _federation()
    with chain:
        r = int(driver.tick().split()[-1])
        a = _node(fed, store, learners, 0, tmp_path / "a.sqlite")
        a.step(r)  # keys (shares, then training, wait for their phases)
        a._train(r)
        first = a.state.get(r, "update")
        seed = a.state.get(r, "dp_seed")
        assert first is not None and seed is not None and len(seed) == 32
        # The crash: the update row never reached disk. Restart and retrain.
        a.state._db.execute("DELETE FROM kv WHERE name = 'update'")
        a.state.close()
        again = _node(fed, store, learners, 0, tmp_path / "a.sqlite")
        again._train(r)
        redo = cbor2.loads(again.state.get(r, "update"))
        assert redo["x"] == cbor2.loads(first)["x"]  # the quantized update, byte for byte
        assert redo["weight"] == cbor2.loads(first)["weight"]
        assert again.state.get(r, "dp_seed") == seed
        # Same address, round, chain and data, fresh state: a fresh secret.
        other = _node(fed, store, learners, 0, tmp_path / "b.sqlite")
        other._train(r)
        assert other.state.get(r, "dp_seed") != seed
        x1 = cbor2.loads(first)["x"]
        x2 = cbor2.loads(other.state.get(r, "update"))["x"]
        assert x1 != x2


def test_a_clear_row_planted_under_a_secret_name_is_refused(tmp_path: Path) -> None:
    """Whoever can write the state file plants a clear ``dp_seed`` for a future
    round (the sealed flag is a column, not part of the AEAD): on the old code
    ``put_new`` then returned the planted all-zero seed and the peer's DP noise
    was the attacker's. Now a clear row under a secret name is never used."""
    path = tmp_path / "s.sqlite"
    st = PeerState(path, PASS, deployment=DEP)
    st.put(1, "masked", b"public")
    st.close()
    db = sqlite3.connect(path)
    row = list(db.execute("SELECT * FROM kv WHERE name = 'masked'").fetchone())
    cols = [c[1] for c in db.execute("PRAGMA table_info(kv)")]
    row[cols.index("round")], row[cols.index("name")] = 5, "dp_seed"
    row[cols.index("value")] = bytes(32)
    db.execute(f"INSERT INTO kv VALUES ({', '.join('?' * len(row))})", row)
    db.commit()
    db.close()
    st = PeerState(path, PASS, deployment=DEP)
    with pytest.raises(StateError, match="must be sealed"):
        st.put_new(5, "dp_seed", secrets.token_bytes(32), secret=True)
    with pytest.raises(ValueError, match="is a secret"):
        st.put(6, "secrets", b"keys in the clear")
    st.close()


def test_a_governor_config_whose_accounting_is_not_its_own_is_skipped_not_fatal(
        tmp_path: Path) -> None:
    """The governor registers (q, σ, T) with RDP values below what that
    mechanism spends. Old main: the peer's ConfigError ended the daemon (a
    governor could stop every peer); now each peer sits the round out with
    the reason, commits nothing, and is still up for the next round."""
    from dataclasses import replace

    chain, fed, store, learners, _ = _federation()
    with chain:
        honest = dp_config(config_id=2, q=0.5, sigma=1.0, steps=2)
        fed.register_config(replace(honest, rdp_micro=tuple(v // 2 for v in honest.rdp_micro)))
        driver = RoundDriver(fed, store, aggregator=chain.account(1).address, dp_config=2,
                             vector_length=learners[0].parameters, rounds=1)
        nodes = [_node(fed, store, learners, i, tmp_path / f"p{i}.sqlite") for i in range(4)]
        r = int(driver.tick().split()[-1])
        drive(fed, driver, nodes, r)  # raised ConfigError out of step on old main
        for nd in nodes:
            reason = nd.state.get(r, "abandoned")
            assert reason is not None and b"DP configuration 2" in reason, reason
        assert not fed.events("FedRounds", "UpdateCommitted", 0)
        assert fed.round_info(r).phase == Phase.FAILED
