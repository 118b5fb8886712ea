"""Quorum grace of the commit window (Policy.quorum_grace_bps, FedRounds._quorumGrace):
once threshold peers committed, a dead peer stalls the round only for a share
of the time the round took, not for the whole commit window (issue 19)."""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks.roundsim import STAKE, RoundSim, setup_federation

from coordinator import Chain, ConfigError, ContractRevertError
from coordinator.protocol import _secagg as sa
from coordinator.chain._contracts import Phase, Policy

COMMIT_BLOCKS = 400


def _policy(bps: int) -> Policy:
    return Policy(participants=5, threshold=3, keys_blocks=20, shares_blocks=20,
                  commit_blocks=COMMIT_BLOCKS, reveal_blocks=20, aggregate_blocks=20,
                  challenge_blocks=3, bond=STAKE, quorum_grace_bps=bps)


def test_threshold_commit_pulls_the_deadline_in_and_the_round_unmasks(
        embedded_chain: Chain) -> None:
    fed, cfg = setup_federation(embedded_chain, policy=_policy(2500))
    sim = RoundSim(fed, cfg)
    sim.keys()
    sim.shares()
    assert fed.round_info(sim.round_id).phase == Phase.COMMIT
    embedded_chain.mine(60)  # the peers train: the round takes a while
    full = fed.round_info(sim.round_id).deadline
    sim.commit(drop={2, 3, 4})
    assert fed.round_info(sim.round_id).deadline == full  # below the threshold: unchanged
    sim.commit(drop={0, 1, 3, 4})  # the threshold-th commit
    at = embedded_chain.block_number
    took = at - sim.info.opened_block
    want = at + took * 2500 // 10_000 + 5
    info = fed.round_info(sim.round_id)
    assert info.phase == Phase.COMMIT
    assert info.deadline == want < full
    ev = fed.events("FedRounds", "CommitDeadlineShortened", at, at)
    assert [(e.args["round"], e.args["deadline"]) for e in ev] == [(sim.round_id, want)]
    # A straggler inside the grace still gets in; after it, one is refused.
    sim.commit(drop={0, 1, 2, 4})
    sim.run_to(Phase.REVEAL)
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
    sim.commit(drop={3, 4})
    info = fed.round_info(sim.round_id)
    assert (info.phase, info.deadline) == (Phase.COMMIT, full)
    at = embedded_chain.block_number
    assert fed.events("FedRounds", "CommitDeadlineShortened", sim.info.opened_block, at) == []
    assert fed.policy().quorum_grace_bps == 0


def test_grace_never_extends_the_window(embedded_chain: Chain) -> None:
    """A grace longer than what the window has left leaves the deadline alone."""
    fed, cfg = setup_federation(embedded_chain, policy=_policy(60_000))
    sim = RoundSim(fed, cfg)
    sim.keys()
    sim.shares()
    embedded_chain.mine(200)
    full = fed.round_info(sim.round_id).deadline
    sim.commit(drop={3, 4})
    assert fed.round_info(sim.round_id).deadline == full
    assert fed.policy().quorum_grace_bps == 60_000


def test_policy_refuses_a_grace_outside_uint16() -> None:
    with pytest.raises(ConfigError, match="quorum_grace_bps"):
        _policy(2**16)
