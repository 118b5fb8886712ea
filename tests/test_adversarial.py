"""Active adversaries on the embedded chain (issue 12): each test plays the
attack and checks that it now fails.

* a wrong adapter posted with a correct Σx (item 1) is proven wrong by the
  chunk proof, which recomputes f(previous adapter, Σx, Σn) on-chain; peers
  only start from an adapter whose root the chain records;
* rounds opened with hostile parameters (item 4) revert, and the opener is
  restricted after round 1.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from coordinator import ContractRevertError, connect
from coordinator import _encoding as enc
from coordinator._errors import AggregationError
from coordinator.chain._contracts import Federation, LedgerPolicy, Phase, Policy, deploy_federation
from coordinator.privacy._privacy import dp_config
from coordinator.protocol._agent import Aggregator, PeerAgent
from coordinator.protocol._aggregate import (aggregate, apply_update, blob_fixed, collect,
                                             round_start, verify)
from coordinator.protocol._challenge import adapter_chunk_proof, challenge, find_fraud
from coordinator.protocol._driver import initial_adapter, initial_adapter_args
from coordinator.store._store import EmbeddedStore

STAKE = 10**17
L = 200  # 4 chunks of 64
CE = 64
OUTSIDER = 7  # funded, never registers


def _federation(start: np.ndarray | None = None, *, participants: int = 5, threshold: int = 3):
    chain = connect("embedded")
    chain.ensure_accounts(8)
    store = EmbeddedStore()
    start = np.random.default_rng(5).normal(0, 0.05, L).astype(np.float32) if start is None else start
    pol = Policy(participants=participants, threshold=threshold, keys_blocks=30, shares_blocks=30,
                 commit_blocks=30, reveal_blocks=30, aggregate_blocks=30, challenge_blocks=3,
                 bond=STAKE)
    fed, _ = deploy_federation(chain, policy=pol, ledger_policy=LedgerPolicy(epsilon_cap=40),
                               **initial_adapter_args(store, start, chunk_elems=CE))
    for i in range(1, 6):
        fed.register(sender=i, stake=STAKE)
    fed.register_config(dp_config(config_id=1, q=0.2, sigma=1.0, steps=10))
    return chain, fed, store


def _round_to_aggregate(fed: Federation, store: EmbeddedStore) -> int:
    r, _ = fed.open_round(dp_config=1, vector_length=L, chunk_elems=CE)
    agents = [PeerAgent(fed, store, a, r) for a in fed.participants(r)]
    for step in ("post_keys", "post_shares", "receive_shares"):
        for a in agents:
            getattr(a, step)()
    rng = np.random.default_rng(r)
    for a in agents:
        x = enc.quantize(rng.normal(0, 0.01, L) * 10, frac_bits=16, clip=1.0)
        a.commit(x, weight=10 + a.index, dp_config=1)
    for a in agents:
        a.reveal()
    assert fed.round_info(r).phase == Phase.AGGREGATE
    return r


def _finalize(chain, fed: Federation, r: int) -> None:
    chain.mine(fed.round_info(r).deadline - chain.block_number + 1)
    fed.finalize(r)
    assert fed.round_info(r).phase == Phase.FINAL


# -- item 1: the adapter is bound to the sum ----------------------------------------

def test_a_correct_sum_with_a_wrong_adapter_is_proven_wrong_and_slashed() -> None:
    chain, fed, store = _federation()
    with chain:
        r = _round_to_aggregate(fed, store)
        agg = aggregate(collect(fed, r), store)  # the correct Σx and seeds
        start = blob_fixed(round_start(fed, store, r))
        wrong = apply_update(start, agg)
        wrong[CE * 2 + 7] += 1 << 14  # chunk 2 of the adapter, Σx untouched
        liar = chain.account(1).address
        Aggregator(fed, store, liar).post(r, agg, wrong)
        fails = {c.name: c.detail for c in verify(fed, store, r) if not c.ok}
        assert fails == {"new adapter = f(global, Σx, Σn), chunk by chunk": "first wrong chunk: 2"}
        fraud = find_fraud(fed, store, r)
        assert fraud is not None and (fraud.kind, fraud.index) == ("chunk", 2)
        auditor = chain.account(OUTSIDER).address
        rcpt = challenge(fed, store, r, fraud, sender=auditor)
        voided = [e for e in fed.receipt_events(rcpt) if e.name == "ResultVoided"]
        assert voided and voided[0].args["aggregator"] == liar
        assert fed.round_info(r).phase == Phase.AGGREGATE and fed.peer_info(liar)["quarantined"]
        # An honest re-aggregation cannot be challenged on any chunk.
        Aggregator(fed, store, chain.account(2).address).run(r)
        assert find_fraud(fed, store, r) is None
        for k in range(enc.num_chunks(L, CE)):
            with pytest.raises(ContractRevertError) as e:
                challenge(fed, store, r, dataclasses.replace(fraud, index=k), sender=auditor)
            assert e.value.name == "FraudNotProven"
        _finalize(chain, fed, r)


def test_every_final_adapter_equals_f_of_previous_sum_and_weights() -> None:
    chain, fed, store = _federation()
    with chain:
        for _ in range(2):
            r = _round_to_aggregate(fed, store)
            prev = blob_fixed(round_start(fed, store, r))
            agg = aggregate(collect(fed, r), store)
            Aggregator(fed, store, chain.account(1).address).run(r)
            _finalize(chain, fed, r)
            want = enc.next_adapter(enc.pad(prev, CE), agg.total, fed.round_info(r).weight_sum)
            assert fed.global_adapter_root() == enc.vector_root(want, CE)
            assert fed.result_of(r).result_root == fed.global_adapter_root()
        # Round 3 starts from round 2's adapter, checked against the chain.
        r3, _ = fed.open_round(dp_config=1, vector_length=L, chunk_elems=CE)
        assert fed.round_info(r3).adapter_root == fed.global_adapter_root()
        assert np.array_equal(blob_fixed(round_start(fed, store, r3)), want)


def test_a_forged_previous_adapter_chunk_is_refused() -> None:
    chain, fed, store = _federation()
    with chain:
        r = _round_to_aggregate(fed, store)
        agg = aggregate(collect(fed, r), store)
        start = blob_fixed(round_start(fed, store, r))
        wrong = apply_update(start, agg)
        wrong[5] ^= 1
        Aggregator(fed, store, chain.account(1).address).post(r, agg, wrong)
        fraud = find_fraud(fed, store, r)
        assert fraud is not None and fraud.index == 0
        # The challenger cannot pick the "previous adapter" to make an honest
        # chunk look wrong (or a wrong one right): it is bound to the round's root.
        prev_chunk, prev_proof = adapter_chunk_proof(fed, store, r, 1)
        forged = bytearray(prev_chunk)
        forged[0] ^= 1
        from coordinator.protocol import _challenge as ch

        real = ch.adapter_chunk_proof
        try:
            ch.adapter_chunk_proof = lambda *a: (bytes(forged), prev_proof)  # type: ignore[assignment]
            with pytest.raises(ContractRevertError) as e:
                challenge(fed, store, r, dataclasses.replace(fraud, index=1), sender=OUTSIDER)
        finally:
            ch.adapter_chunk_proof = real
        assert e.value.name == "FraudBadAdapterChunk"


def test_a_peer_refuses_an_adapter_whose_cid_does_not_match_the_chain_root() -> None:
    # The governor's record names one adapter's CID but another's root, as a
    # lying aggregator's CID would: the round's start cannot be loaded.
    store = EmbeddedStore()
    a = np.zeros(L, np.float32)
    b = np.full(L, 0.5, np.float32)
    cid_a, _ = initial_adapter(store, a, chunk_elems=CE)
    _, root_b = initial_adapter(store, b, chunk_elems=CE)
    chain = connect("embedded")
    chain.ensure_accounts(8)
    with chain:
        fed, _ = deploy_federation(chain, policy=Policy(participants=5, threshold=3),
                                   initial_adapter_cid=cid_a, initial_adapter_root=root_b)
        for i in range(1, 6):
            fed.register(sender=i, stake=STAKE)
        fed.register_config(dp_config(config_id=1, q=0.2, sigma=1.0, steps=10))
        r, _ = fed.open_round(dp_config=1, vector_length=L, chunk_elems=CE)
        with pytest.raises(AggregationError, match="does not match the adapter root on-chain"):
            round_start(fed, store, r)


# -- item 4: hostile round parameters --------------------------------------------

@pytest.mark.parametrize("quant", [(L, CE, 0), (L, CE, 7), (L, CE, 25), (L, CE, 31), (L, 7, 16),
                                   (L, 0, 16), (0, CE, 16), (L, 4104, 16), (L, 65528, 16)])
def test_round_one_with_hostile_quantization_reverts(quant: tuple[int, int, int]) -> None:
    chain, fed, _ = _federation()
    with chain:
        with pytest.raises(ContractRevertError) as e:
            chain.transact(fed.rounds.functions.openRound(1, quant), sender=0)
        assert e.value.name == "RoundsBadQuant"


def test_the_chunk_cap_keeps_the_worst_case_proof_bounded_at_n50() -> None:
    # n = 50, t = 34: 578 seeds + 50 member chunks in the worst surviving round;
    # 256-element chunks fit the 15M target, 272 do not.
    chain, fed, _ = _federation(participants=50, threshold=34)
    with chain:
        for ce, why in ((512, "RoundsBadQuant"), (272, "RoundsBadQuant"),
                        (256, "RoundsNotEnoughEligible")):  # 256 passes; 5 peers < t
            with pytest.raises(ContractRevertError) as e:
                chain.transact(fed.rounds.functions.openRound(1, (L, ce, 16)), sender=0)
            assert e.value.name == why, ce


@pytest.mark.parametrize("n,t", [(50, 26), (50, 34), (36, 19), (12, 7)])
def test_the_drivers_chunk_size_is_the_largest_the_contract_accepts(n: int, t: int) -> None:
    """A federation of 50 at t = 26 used to open with the default 256 and
    revert RoundsBadQuant: the driver now picks ``chunk_elems_for(n, t)``,
    which the contract accepts while 8 more elements it refuses."""
    from coordinator.protocol._secagg import chunk_elems_for

    ce = chunk_elems_for(n, t)
    chain, fed, _ = _federation(participants=n, threshold=t)
    with chain:
        bigger = [ce + 8] if ce < enc.DEFAULT_CHUNK_ELEMS else []
        for size, why in [(ce, "RoundsNotEnoughEligible")] + [(b, "RoundsBadQuant") for b in bigger]:
            with pytest.raises(ContractRevertError) as e:
                chain.transact(fed.rounds.functions.openRound(1, (L, size, 16)), sender=0)
            assert e.value.name == why, size
        # The driver opens with that size (before: 256, RoundsBadQuant at n = 50).
        from coordinator.protocol._driver import RoundDriver

        with pytest.raises(ContractRevertError) as e:
            RoundDriver(fed, EmbeddedStore(), aggregator=chain.account(1).address, dp_config=1,
                        vector_length=L).open()
        assert e.value.name == "RoundsNotEnoughEligible"
    assert (n, t) != (50, 26) or ce == 240


def test_after_round_one_outsiders_cannot_open_and_peers_cannot_change_quantization() -> None:
    chain, fed, store = _federation()
    with chain:
        r, _ = fed.open_round(dp_config=1, vector_length=L, chunk_elems=CE)
        assert fed.quantization() == (L, CE, 16)
        chain.mine(fed.round_info(r).deadline - chain.block_number + 1)
        fed.advance(r)
        assert fed.round_info(r).phase == Phase.FAILED
        with pytest.raises(ContractRevertError) as e:  # unregistered: may not open
            fed.open_round(dp_config=1, vector_length=L, chunk_elems=CE, sender=OUTSIDER)
        assert e.value.name == "RoundsUnauthorized"
        for q in ((L + 8, CE, 16), (L, 128, 16), (L, CE, 31), (L, CE, 0), (L, CE, 8)):
            with pytest.raises(ContractRevertError) as e:  # a registered peer, other parameters
                chain.transact(fed.rounds.functions.openRound(1, q), sender=2)
            assert e.value.name == "RoundsBadQuant", q
        with pytest.raises(ContractRevertError) as e:  # a configuration the governor never registered
            fed.open_round(dp_config=9, vector_length=L, chunk_elems=CE, sender=2)
        assert e.value.name == "LedgerUnknownConfig"
        r2, _ = fed.open_round(dp_config=1, vector_length=L, chunk_elems=CE, sender=2)
        assert r2 == 2 and fed.round_info(r2).frac_bits == 16


# -- item 5: bounded weights --------------------------------------------------------

def test_a_huge_self_reported_weight_is_refused_and_cannot_block_later_commits() -> None:
    # Old main: 2^64 − 1 was accepted and overflowed the uint64 weight sum, so
    # every later commit of the round reverted; 2^63 drowned everyone else.
    chain, fed, store = _federation()
    with chain:
        r, _ = fed.open_round(dp_config=1, vector_length=L, chunk_elems=CE)
        agents = [PeerAgent(fed, store, a, r) for a in fed.participants(r)]
        for step in ("post_keys", "post_shares", "receive_shares"):
            for a in agents:
                getattr(a, step)()
        cap = fed.policy().max_weight
        x = np.zeros(L, np.uint32)
        for w in (2**64 - 1, 2**63, cap + 1):
            with pytest.raises(ContractRevertError) as e:
                agents[0].commit(x, weight=w, dp_config=1)
            assert e.value.name == "RoundsWeightTooLarge" and e.value.args_by_name["cap"] == cap
        agents[0].commit(x, weight=cap, dp_config=1)
        for a in agents[1:]:
            a.commit(x, weight=7, dp_config=1)  # the others still commit
        assert fed.round_info(r).weight_sum == cap + 7 * (len(agents) - 1)


# -- item 6: escaping the slash ------------------------------------------------------

def _sim_with_wrong_result(peers: int = 6, *, leave_delay_blocks: int = 2):
    from benchmarks.roundsim import RoundSim

    chain = connect("embedded")
    chain.ensure_accounts(peers + 4)
    pol = Policy(participants=5, threshold=3, keys_blocks=20, shares_blocks=20, commit_blocks=20,
                 reveal_blocks=20, aggregate_blocks=20, challenge_blocks=30, bond=STAKE)
    fed, _ = deploy_federation(chain, policy=pol, leave_delay=leave_delay_blocks)
    for i in range(1, peers + 1):
        fed.register(sender=i, stake=STAKE)
    cfg = dp_config(config_id=1, q=0.05, sigma=1.1, steps=20)
    fed.register_config(cfg)
    sim = RoundSim(fed, cfg)
    sim.keys()
    sim.shares()
    sim.commit()
    if fed.round_info(sim.round_id).phase != Phase.REVEAL:
        sim.run_to(Phase.REVEAL)
    sim.reveal()
    return chain, fed, sim


def _post_wrong(sim, who: str) -> None:
    wrong = sim.true_sum().copy()
    wrong[1] += 1 << 22
    sim.post_result(sender=who, result=wrong)


def test_an_aggregator_cannot_leave_with_its_stake_while_its_fraud_is_pending() -> None:
    # Old main: request leave, withdraw after the delay, and voidResult then
    # reverted (RegistryNotRegistered), so the fraud finalized.
    chain, fed, sim = _sim_with_wrong_result()
    with chain:
        liar = sim.peers[0].address
        _post_wrong(sim, liar)
        assert fed.stake_locks(liar) == 1
        fed.request_leave(sender=liar)
        chain.mine(3)
        with pytest.raises(ContractRevertError) as e:
            fed.withdraw_stake(sender=liar)
        assert e.value.name == "RegistryStakeLocked"
        rcpt = fed.challenge_chunk(sim.round_id, **sim.chunk_proof_args(0), sender=OUTSIDER + 2)
        assert "ResultVoided" in {ev.name for ev in fed.receipt_events(rcpt)}
        assert fed.stake_locks(liar) == 0 and fed.peer_info(liar)["quarantined"]


def test_self_challenge_earns_nothing_and_a_slashed_bond_never_returns_to_the_slashed() -> None:
    chain, fed, sim = _sim_with_wrong_result()
    with chain:
        liar = sim.peers[0].address
        _post_wrong(sim, liar)
        rcpt = fed.challenge_chunk(sim.round_id, **sim.chunk_proof_args(0), sender=liar)
        voided = next(e for e in fed.receipt_events(rcpt) if e.name == "ResultVoided")
        assert voided.args["reward"] == 0 and fed.withdrawable(liar) == 0
        assert fed.slashed_pool() == STAKE
        treasury = chain.account(OUTSIDER + 1).address
        with pytest.raises(ContractRevertError) as e:
            fed.sweep_slashed(treasury, sender=liar)
        assert e.value.name == "RoundsUnauthorized"
        fed.sweep_slashed(treasury)
        assert fed.withdrawable(treasury) == STAKE and fed.slashed_pool() == 0
        assert fed.withdrawable(liar) == 0


def test_after_five_proven_frauds_the_round_fails_instead_of_waiting_for_one_to_stand() -> None:
    # Old main: a uint8 attempt counter and no bound; after 255 voids it wrapped.
    chain, fed, sim = _sim_with_wrong_result(peers=6)
    with chain:
        for k in range(5):
            _post_wrong(sim, sim.peers[k].address)
            fed.challenge_chunk(sim.round_id, **sim.chunk_proof_args(0), sender=OUTSIDER + 2)
        info = fed.round_info(sim.round_id)
        assert info.phase == Phase.FAILED and info.fail_reason.name == "TOO_MANY_FRAUDS"
        assert info.attempt == 5


# -- item 7: refunds only when no one can compute the sum ------------------------------

@pytest.mark.parametrize("reveals", [0, 2])
def test_a_round_short_of_reveals_refunds_only_if_nobody_revealed(reveals: int) -> None:
    # Old main refunded in both cases, although t−1 colluders plus one public
    # reveal hold t shares of every seed.
    from benchmarks.roundsim import RoundSim

    chain = connect("embedded")
    chain.ensure_accounts(10)
    pol = Policy(participants=5, threshold=3, keys_blocks=20, shares_blocks=20, commit_blocks=20,
                 reveal_blocks=20, aggregate_blocks=20, challenge_blocks=3, bond=STAKE)
    fed, _ = deploy_federation(chain, policy=pol)
    for i in range(1, 6):
        fed.register(sender=i, stake=STAKE)
    cfg = dp_config(config_id=1, q=0.05, sigma=1.1, steps=20)
    fed.register_config(cfg)
    with chain:
        sim = RoundSim(fed, cfg)
        sim.keys()
        sim.shares()
        sim.commit()
        charged = {p.address: fed.epsilon(p.address) for p in sim.peers}
        assert all(v > 0 for v in charged.values())
        sim.reveal(drop={p.index for p in sim.peers[reveals:]})
        sim.run_to(Phase.FAILED)
        assert fed.round_info(sim.round_id).fail_reason.name == "INSUFFICIENT_REVEALS"
        after = {p.address: fed.epsilon(p.address) for p in sim.peers}
        if reveals == 0:
            assert all(v == 0 for v in after.values())
        else:
            assert after == charged


# -- item 8: openRound costs O(participants) -----------------------------------------

def test_open_round_gas_does_not_grow_with_the_registry() -> None:
    # Old main: ≈16k gas per registered peer (every one read and checked).
    gas = {}
    for registered in (40, 120):
        chain = connect("embedded")
        chain.ensure_accounts(registered + 2)
        with chain:
            fed, _ = deploy_federation(chain, policy=Policy(participants=5, threshold=3))
            for i in range(1, registered + 1):
                fed.register(sender=i, stake=STAKE)
            fed.register_config(dp_config(config_id=1, q=0.05, sigma=1.1, steps=20))
            r, rcpt = fed.open_round(dp_config=1, vector_length=L, chunk_elems=CE)
            assert fed.round_info(r).n == 5
            gas[registered] = rcpt.gas_used
    # 80 more registered peers would cost ≈1.3M gas at 16k each; allow 10%
    # (the number of draws varies with the seed).
    assert gas[120] < gas[40] * 1.10, gas


class _UntrainableLearner:
    """A fake Learner (not a named component: DP training is not reached
    here). It records whether training was attempted."""

    def __init__(self, parameters: int) -> None:
        self.parameters = parameters
        self.examples = 10
        self.trained = False

    def update(self, *_a, **_k):  # pragma: no cover - must not be called
        self.trained = True
        raise AssertionError("a peer trained on an adapter the chain does not vouch for")


def test_a_peer_skips_a_round_whose_adapter_does_not_match_and_says_why(tmp_path, caplog) -> None:
    from coordinator.chain._contracts import StatusFlag

    store = EmbeddedStore()
    cid_a, _ = initial_adapter(store, np.zeros(L, np.float32), chunk_elems=CE)
    _, root_b = initial_adapter(store, np.full(L, 0.5, np.float32), chunk_elems=CE)
    chain = connect("embedded")
    chain.ensure_accounts(8)
    with chain:
        fed, _ = deploy_federation(chain, policy=Policy(participants=5, threshold=3),
                                   initial_adapter_cid=cid_a, initial_adapter_root=root_b)
        r, me, learner, node = _one_round_one_peer(fed, store, tmp_path)
        with caplog.at_level("WARNING", logger="fedledger"):
            assert node.step(r) == []
        assert not learner.trained
        _, flags = fed.status(r, me)
        assert not flags & StatusFlag.KEYS  # it never joined U1
        assert node.state.get(r, "abandoned") is not None
        assert any("does not match the adapter root on-chain" in m for m in caplog.messages)
        assert node.step(r) == []  # and it stays out, without crashing


def _one_round_one_peer(fed, store, tmp_path):
    """Five registered peers, round 1 open; (round, the first participant, its
    learner that records whether it trained, its PeerNode)."""
    import secrets

    from nodes._peer import PeerNode
    from nodes._state import PeerState

    for i in range(1, 6):
        fed.register(sender=i, stake=STAKE)
    fed.register_config(dp_config(config_id=1, q=0.2, sigma=1.0, steps=10))
    r, _ = fed.open_round(dp_config=1, vector_length=L, chunk_elems=CE)
    me = fed.participants(r)[0]
    learner = _UntrainableLearner(L)
    state = PeerState(tmp_path / "p.sqlite", secrets.token_bytes(32),
                      deployment=(fed.chain.chain_id, fed.rounds.address))
    return r, me, learner, PeerNode(fed, store, me, state, learner)


def test_a_peer_skips_a_round_with_threshold_one_even_if_the_deployment_allowed_it(
        tmp_path, caplog, monkeypatch) -> None:
    """A governor deploying with its own tooling skips check_policy and sets
    t = 1 (found by the attack review: the contract accepts it): every share
    is then the secret, so one holder unmasks a peer. The peer refuses to join."""
    import coordinator.chain._contracts as contracts
    from coordinator.chain._contracts import StatusFlag

    monkeypatch.setattr(contracts, "check_policy", lambda *a, **k: [])
    store = EmbeddedStore()
    chain = connect("embedded")
    chain.ensure_accounts(8)
    with chain:
        fed, _ = contracts.deploy_federation(chain, policy=Policy(participants=5, threshold=1))
        r, me, learner, node = _one_round_one_peer(fed, store, tmp_path)
        with caplog.at_level("WARNING", logger="fedledger"):
            assert node.step(r) == []
        _, flags = fed.status(r, me)
        assert not flags & StatusFlag.KEYS and not learner.trained
        assert any("threshold t=1" in m for m in caplog.messages)
