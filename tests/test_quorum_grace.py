"""Quorum grace of the keys, commit and reveal windows (Policy.quorum_grace_bps,
FedRounds._quorumGrace): once a quorum acted (halfway from the threshold t to
everyone who can act), a dead peer stalls the round only for a share of the
time the quorum took, not for the whole window (issue 19)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from benchmarks.roundsim import STAKE, RoundSim, setup_federation

from coordinator import Chain, ConfigError, ContractRevertError, connect
from coordinator.protocol import _secagg as sa
from coordinator.protocol._driver import RoundDriver, initial_adapter_args
from coordinator.chain._contracts import LedgerPolicy, Phase, Policy, deploy_federation
from coordinator.privacy._privacy import dp_config
from coordinator.store._store import EmbeddedStore
from nodes._peer import PeerNode, SyntheticLearner
from nodes._state import PeerState

COMMIT_BLOCKS = 400


def _policy(bps: int) -> Policy:
    return Policy(participants=5, threshold=3, keys_blocks=20, shares_blocks=20,
                  commit_blocks=COMMIT_BLOCKS, reveal_blocks=20, aggregate_blocks=20,
                  challenge_blocks=3, bond=STAKE, quorum_grace_bps=bps)


def test_quorum_commit_pulls_the_deadline_in_and_the_round_unmasks(
        embedded_chain: Chain) -> None:
    fed, cfg = setup_federation(embedded_chain, policy=_policy(2500))
    sim = RoundSim(fed, cfg)
    sim.keys()
    sim.shares()
    assert fed.round_info(sim.round_id).phase == Phase.COMMIT
    embedded_chain.mine(60)  # the peers train: the round takes a while
    full = fed.round_info(sim.round_id).deadline
    sim.commit(drop={3, 4})
    # t = 3 committed: the quorum is t + ceil((|U2| - t) / 2) = 4, so U3 keeps a
    # margin over t for the reveals; the deadline is unchanged
    assert fed.round_info(sim.round_id).deadline == full
    sim.commit(drop={0, 1, 2, 4})  # the quorum's commit
    at = embedded_chain.block_number
    took = at - sim.info.opened_block
    want = at + took * 2500 // 10_000 + 5
    info = fed.round_info(sim.round_id)
    assert info.phase == Phase.COMMIT
    assert info.deadline == want < full
    ev = fed.events("FedRounds", "DeadlineShortened", at, at)
    assert [(e.args["round"], e.args["phase"], e.args["deadline"]) for e in ev] == [
        (sim.round_id, Phase.COMMIT, want)]
    sim.run_to(Phase.REVEAL)  # the straggler is not waited for
    with pytest.raises(ContractRevertError) as e:
        fed.commit(sim.round_id, cid_digest=bytes(32), chunks_root=bytes(32), weight=1,
                   dp_config=cfg.config_id, sender=sim.peers[4].address)
    assert e.value.name == "RoundsWrongPhase"
    assert embedded_chain.block_number <= want + 3 < full  # long before the full window
    assert fed.epsilon_micro(sim.peers[4].address) == 0  # the dropped peer is not charged
    sim.reveal()
    assert fed.round_info(sim.round_id).phase == Phase.AGGREGATE
    seeds = sim.reconstruct_seeds()
    assert np.array_equal(sa.unmask(sim.ctx, sim.masked_sum(), seeds), sim.true_sum())


def test_without_grace_the_threshold_commit_changes_nothing(embedded_chain: Chain) -> None:
    fed, cfg = setup_federation(embedded_chain, policy=_policy(0))
    sim = RoundSim(fed, cfg)
    sim.keys()
    sim.shares()
    embedded_chain.mine(60)
    full = fed.round_info(sim.round_id).deadline
    sim.commit(drop={4})
    info = fed.round_info(sim.round_id)
    assert (info.phase, info.deadline) == (Phase.COMMIT, full)
    at = embedded_chain.block_number
    assert fed.events("FedRounds", "DeadlineShortened", sim.info.opened_block, at) == []
    assert fed.policy().quorum_grace_bps == 0


def test_grace_never_extends_the_window(embedded_chain: Chain) -> None:
    """A grace longer than what the window has left leaves the deadline alone."""
    fed, cfg = setup_federation(embedded_chain, policy=_policy(60_000))
    sim = RoundSim(fed, cfg)
    sim.keys()
    sim.shares()
    embedded_chain.mine(200)
    full = fed.round_info(sim.round_id).deadline
    sim.commit(drop={4})
    assert fed.round_info(sim.round_id).deadline == full
    assert fed.policy().quorum_grace_bps == 60_000


def test_quorum_with_a_dealer_missing_is_halfway_to_the_dealers(embedded_chain: Chain) -> None:
    """|U2| = 4, t = 3: the quorum is 3 + ceil(1 / 2) = 4, every dealer; the
    phase then advances early as it always did, with no grace needed."""
    fed, cfg = setup_federation(embedded_chain, policy=_policy(2500))
    sim = RoundSim(fed, cfg)
    sim.keys()
    sim.shares(drop={0})
    sim.run_to(Phase.COMMIT)
    full = fed.round_info(sim.round_id).deadline
    sim.commit(drop={4})
    assert fed.round_info(sim.round_id).deadline == full
    sim.commit(drop={1, 2, 3})
    assert fed.round_info(sim.round_id).phase == Phase.REVEAL


def test_keys_and_reveal_quorums_shorten_their_windows_too(embedded_chain: Chain) -> None:
    fed, cfg = setup_federation(embedded_chain, policy=_policy(5000))
    sim = RoundSim(fed, cfg)
    opened = sim.info.opened_block
    keys_end = fed.round_info(sim.round_id).deadline  # Keys starts at the selection
    sim.keys(drop={3, 4})
    assert fed.round_info(sim.round_id).deadline == keys_end  # t = 3 is not the quorum 4
    sim.keys(drop={0, 1, 2, 4})
    at = embedded_chain.block_number
    assert fed.round_info(sim.round_id).deadline == at + (at - opened) * 5000 // 10_000 + 5
    sim.run_to(Phase.SHARES)  # peer 4 (dead) is not waited for
    sim.shares()
    assert fed.round_info(sim.round_id).phase == Phase.COMMIT
    sim.commit()
    info = fed.round_info(sim.round_id)
    assert info.phase == Phase.REVEAL and info.n_commits == 4
    start = info.deadline - 20
    sim.reveal(drop={3})  # 3 reveals: t, but not the quorum 3 + ceil(1 / 2) = 4
    assert fed.round_info(sim.round_id).deadline == start + 20
    sim.reveal(drop={0, 1, 2})
    assert fed.round_info(sim.round_id).phase == Phase.AGGREGATE  # all of U3: early advance
    seeds = sim.reconstruct_seeds()
    assert np.array_equal(sa.unmask(sim.ctx, sim.masked_sum(), seeds), sim.true_sum())


def test_reveal_quorum_pulls_the_reveal_deadline_in(embedded_chain: Chain) -> None:
    fed, cfg = setup_federation(embedded_chain, policy=_policy(5000))
    sim = RoundSim(fed, cfg)
    sim.keys()
    sim.shares()
    sim.commit()
    start = fed.round_info(sim.round_id).deadline - 20
    sim.reveal(drop={3, 4})
    sim.reveal(drop={0, 1, 2, 4})  # the quorum 3 + ceil(2 / 2) = 4 of U3 = 5
    at = embedded_chain.block_number
    info = fed.round_info(sim.round_id)
    assert info.phase == Phase.REVEAL
    assert info.deadline == at + (at - start) * 5000 // 10_000 + 5 < start + 20
    sim.run_to(Phase.AGGREGATE)
    seeds = sim.reconstruct_seeds()
    assert np.array_equal(sa.unmask(sim.ctx, sim.masked_sum(), seeds), sim.true_sum())


def test_policy_refuses_a_grace_outside_uint16() -> None:
    with pytest.raises(ConfigError, match="quorum_grace_bps"):
        _policy(2**16)


class _Died(Exception):
    """Stands for the process dying in the middle of a training."""


class _CountingLearner(SyntheticLearner):
    def __init__(self, size: int, *, die: bool = False) -> None:
        super().__init__(size)
        self.calls, self.die = 0, die

    def update(self, global_flat, cfg, *, seed):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.die:
            raise _Died()
        return super().update(global_flat, cfg, seed=seed)


def test_a_peer_back_after_the_commit_deadline_does_not_train_for_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Phases move lazily: past the deadline the round still reads COMMIT
    until someone advances it. A restarted peer must not spend a whole
    training on a commit that can only revert (in the soak it then missed
    the next round's keys)."""
    size = 64
    chain = connect("embedded")
    with chain:
        chain.ensure_accounts(6)
        store = EmbeddedStore()
        pol = Policy(participants=4, threshold=3, keys_blocks=8, shares_blocks=8,
                     commit_blocks=30, reveal_blocks=8, aggregate_blocks=8, challenge_blocks=1,
                     bond=STAKE)
        fed, _ = deploy_federation(chain, policy=pol, ledger_policy=LedgerPolicy(epsilon_cap=50),
                                   **initial_adapter_args(store, np.zeros(size, np.float32)))
        fed.register_config(dp_config(config_id=1, q=0.5, sigma=1.0, steps=2))
        for i in range(1, 5):
            fed.register(sender=i, stake=STAKE)
        driver = RoundDriver(fed, store, aggregator=chain.account(1).address, dp_config=1,
                             vector_length=size, rounds=1)
        dep = (chain.chain_id, fed.rounds.address)

        def node(i: int, learner: SyntheticLearner) -> PeerNode:
            return PeerNode(fed, store, chain.account(i + 1).address,
                            PeerState(tmp_path / f"p{i}.sqlite", b"pass phrase", deployment=dep),
                            learner, secret_seed=False)

        victim = _CountingLearner(size, die=True)
        nodes = [node(0, victim)] + [node(i, _CountingLearner(size)) for i in range(1, 4)]
        r = int(driver.tick().split()[-1])
        dead = False
        for _ in range(3):  # keys, shares (then training: the victim dies in it), commits
            for nd in nodes:
                if nd is nodes[0] and dead:
                    continue
                try:
                    nd.step(r)
                except _Died:
                    dead = True
        assert fed.round_info(r).phase == Phase.COMMIT
        assert fed.round_info(r).n_commits == 3 and victim.calls == 1
        nodes[0].state.close()
        chain.mine(fed.round_info(r).deadline - chain.block_number + 1)
        assert fed.round_info(r).phase == Phase.COMMIT  # nobody advanced it yet
        back = _CountingLearner(size)
        restarted = node(0, back)
        with caplog.at_level(logging.WARNING, logger="fedledger.nodes"):
            restarted.step(r)
        assert back.calls == 0, "trained for a commit window that had closed"
        assert "commit window closed" in caplog.text
        assert "reverted" not in caplog.text
        restarted.state.close()
        for nd in nodes[1:]:
            nd.state.close()
