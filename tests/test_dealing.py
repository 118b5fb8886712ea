"""A cheating dealer (issue 12 item 2), on the embedded chain.

Each test plays the attack as the dealer would and checks that it fails:

* (a) shares of one secret that are not on one polynomial (a committed leaf
  off the dealer's Feldman-committed polynomial) cannot make an honest
  aggregator's correct seed look wrong: seed proofs are decided from the
  commitments (value·G = C_0), the aggregator drops the bad share, and the
  bad share is itself a proof against the dealer, who is quarantined while
  the round finalizes;
* (a') a fake-holder leaf — a share for a holder that is not one of the
  dealer's neighbours in U1 (beyond n in the tree's padding, a peer that
  posted no keys, or a non-neighbour in a sparse graph) — cannot be used in a
  seed proof to make an honest aggregator's correct seed look wrong, and every
  receiver refuses a bundle that carries one;
* (b) a dropout whose key shares do not reconstruct its posted mask public key
  is caught off-chain (the aggregator and ``verify`` name the dealer) and
  proven on-chain by a dealer-fault proof: the dealer is quarantined, the
  aggregator is never blamed (its bond comes back), and no dealer-fault proof
  succeeds against an honest dealer.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from benchmarks.roundsim import STAKE, RoundSim, setup_federation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator import ContractRevertError, connect
from coordinator import _encoding as enc
from coordinator._errors import DealerFaultError, InvalidContentError
from coordinator.chain._contracts import (FailReason, Federation, LedgerPolicy, Phase, Policy,
                                          ShareProof, deploy_federation)
from coordinator.privacy._privacy import dp_config
from coordinator.protocol import _secagg as sa
from coordinator.protocol._agent import Aggregator, PeerAgent
from coordinator.protocol._aggregate import aggregate, collect, verify
from coordinator.protocol._wire import ShareBundle
from coordinator.protocol._challenge import find_fraud, prove_dealer_fault
from coordinator.store._store import EmbeddedStore

L = 200
CE = 64
OUTSIDER = 7
FAKE = 12345  # the value the dealer's fake leaf claims


# -- (a') fake-holder leaves in the share tree ------------------------------------

def _forged(sim: RoundSim, dealer: int, fake_holder: int) -> sa.DealtShares:
    """The dealer's honest dealing plus one leaf for ``fake_holder`` (any index
    the tree can hold, its padding included)."""
    p = sim.peers[dealer]
    honest = p.dealt
    assert honest is not None
    size = 1
    while size < max(len(honest.leaves), 2 * fake_holder + 1):
        size *= 2
    leaves = list(honest.leaves) + [bytes(32)] * (size - len(honest.leaves))
    leaves[2 * fake_holder] = enc.share_leaf(chain_id=sim.ctx.chain_id, rounds=sim.ctx.rounds,
                                             round_id=sim.round_id, dealer=p.address,
                                             holder=fake_holder, kind=0, share=FAKE)
    return sa.DealtShares(honest.shares, honest.commitments, tuple(leaves),
                          enc.merkle_root(leaves))


def _shares_with_forgery(sim: RoundSim, *, dealer: int, fake_holder: int) -> None:
    """Shares phase as RoundSim plays it, but ``dealer`` posts a forged root."""
    for i in sim.u1:
        p = sim.peers[i]
        holders = [h for h in sim.u1 if h == i or sim.graph.adjacent(i, h)]
        p.dealt = sa.deal(sim.ctx, dealer=p.address, self_seed=p.seed,
                          mask_secret=p.mask.secret, holders=holders)
        if i == dealer:
            p.dealt = _forged(sim, dealer, fake_holder)
        bundle = hashlib.sha256(b"bundle" + p.address.encode()).digest()
        sim.fed.post_shares(sim.round_id, bundle, p.dealt.root, sender=p.address)
        sim.u2.append(i)


def _frame(fed: Federation, sim: RoundSim, dealer: int, fake_holder: int) -> None:
    """Honest reveals and an honest result, then the dealer's attempts: a
    seed proof (decided from its commitments alone, so its fake leaf cannot
    enter it) and a bad-share proof with the fake leaf (refused: no such
    holder). The honest aggregator keeps its bond and the round finalizes."""
    if fed.round_info(sim.round_id).phase == Phase.SHARES:
        sim.run_to(Phase.COMMIT)
    sim.commit()
    sim.reveal()
    honest = next(p.address for p in sim.peers if p.index not in (dealer,) and p.index in sim.u3)
    sim.post_result(sender=honest)  # the correct seeds, from honest reveals
    seeds = sim.posted_seeds
    i = next(k for k, (u, v, _) in enumerate(seeds) if u == dealer and v == sa.SELF)
    dealt = sim.peers[dealer].dealt
    assert dealt is not None
    cheat = sim.peers[dealer].address
    with pytest.raises(ContractRevertError) as e:
        fed.challenge_seed(sim.round_id, seed_index=i, seeds=seeds,
                           commitments=sim.commitments(dealer), sender=cheat)
    assert e.value.name == "FraudNotProven"
    with pytest.raises(ContractRevertError) as e:
        fed.prove_bad_share(sim.round_id, dealer=dealer, kind=0,
                            share=ShareProof(fake_holder, FAKE, dealt.proof(fake_holder, 0)),
                            commitments=sim.commitments(dealer), sender=cheat)
    assert e.value.name == "FraudBadHolder"
    assert fed.is_eligible(honest), "the honest aggregator must not be quarantined"
    assert fed.round_info(sim.round_id).phase == Phase.CHALLENGE
    sim.run_to(Phase.FINAL)


def test_a_share_leaf_beyond_n_cannot_frame_an_honest_aggregator() -> None:
    """2n = 10 leaves pad to 16: holder 6 sits in the padding."""
    chain = connect("embedded")
    with chain:
        fed, cfg = setup_federation(chain, peers=5)
        sim = RoundSim(fed, cfg)
        sim.keys()
        _shares_with_forgery(sim, dealer=0, fake_holder=6)
        _frame(fed, sim, dealer=0, fake_holder=6)


def test_a_share_leaf_for_a_peer_outside_u1_cannot_frame_an_honest_aggregator() -> None:
    """Peer 4 posted no keys: it holds no shares, whatever the tree says."""
    chain = connect("embedded")
    with chain:
        fed, cfg = setup_federation(chain, peers=6)
        sim = RoundSim(fed, cfg)
        sim.keys(drop={4})
        sim.run_to(Phase.SHARES)
        _shares_with_forgery(sim, dealer=0, fake_holder=4)
        _frame(fed, sim, dealer=0, fake_holder=4)


def test_a_share_leaf_for_a_non_neighbour_cannot_frame_an_honest_aggregator() -> None:
    """n = 22 > 20: a sparse k-regular graph; the dealer names a non-neighbour."""
    chain = connect("embedded")
    with chain:
        pol = Policy(participants=22, threshold=3, keys_blocks=60, shares_blocks=60,
                     commit_blocks=60, reveal_blocks=60, aggregate_blocks=60, challenge_blocks=3,
                     bond=STAKE)
        fed, cfg = setup_federation(chain, peers=22, policy=pol)
        sim = RoundSim(fed, cfg)
        sim.keys()
        assert not sim.graph.complete
        far = next(h for h in range(sim.ctx.n) if h != 0 and not sim.graph.adjacent(0, h))
        _shares_with_forgery(sim, dealer=0, fake_holder=far)
        _frame(fed, sim, dealer=0, fake_holder=far)


def test_every_receiver_refuses_a_bundle_with_a_leaf_for_a_non_holder() -> None:
    """Off-chain: a bundle whose leaves name a holder outside the dealer's U1
    neighbourhood is refused when fetched (receivers, aggregator, auditors)."""
    chain, fed, store = _federation(participants=5)
    with chain:
        r, agents = _keyed_round(fed, store, keyed=4)  # agent 4 posts no keys
        chain.mine(fed.round_info(r).deadline - chain.block_number + 1)
        fed.advance(r)
        cheat = agents[0]
        bundle, _ = cheat.deal_bundle()
        sb = ShareBundle.from_bytes(bundle)
        leaves = list(sb.leaves)
        leaves[2 * 4] = enc.share_leaf(chain_id=chain.chain_id, rounds=fed.rounds.address,
                                       round_id=r, dealer=cheat.address, holder=4, kind=0,
                                       share=FAKE)
        forged = ShareBundle(sb.round_id, sb.dealer, tuple(leaves), sb.boxes,
                             sb.commitments).to_bytes()
        cheat.post_shares((forged, enc.merkle_root(leaves)))
        for a in agents[1:4]:
            a.post_shares()
        for a in agents[1:4]:
            a.receive_shares()
            assert 0 in a.faulty and 0 not in a.received
            assert "holder 4" in a.faulty[0]


# -- (b) a dropout's key shares that do not match its mask public key ---------------

def _federation(participants: int = 5, threshold: int = 3):
    chain = connect("embedded")
    chain.ensure_accounts(8)
    store = EmbeddedStore()
    pol = Policy(participants=participants, threshold=threshold, keys_blocks=30, shares_blocks=30,
                 commit_blocks=30, reveal_blocks=30, aggregate_blocks=30, challenge_blocks=3,
                 bond=STAKE)
    fed, _ = deploy_federation(chain, policy=pol, ledger_policy=LedgerPolicy(epsilon_cap=40))
    for i in range(1, participants + 1):
        fed.register(sender=i, stake=STAKE)
    fed.register_config(dp_config(config_id=1, q=0.2, sigma=1.0, steps=10))
    return chain, fed, store


def _keyed_round(fed: Federation, store: EmbeddedStore, dp_config: int = 1,
                 keyed: int | None = None) -> tuple[int, list[PeerAgent]]:
    """Open a round and let its first ``keyed`` participants (all: None) post keys."""
    r, _ = fed.open_round(dp_config=dp_config, vector_length=L, chunk_elems=CE)
    agents = [PeerAgent(fed, store, a, r) for a in fed.participants(r)]
    for a in agents[:keyed]:
        a.post_keys()
    return r, agents


def _round_with_wrong_key_dropout(fed: Federation, store: EmbeddedStore, *, cheat: int = 2,
                                  honest: bool = False) -> tuple[int, list[PeerAgent]]:
    """Dealer ``cheat`` posts its real mask public key but deals shares of
    another key (unless ``honest``), then drops before committing."""
    r, agents = _keyed_round(fed, store)
    for a in agents:
        if a.index == cheat and not honest:
            real = a.mask
            a.mask = sa.X25519Pair.generate()  # shares of a key it never posted
            dealt = a.deal_bundle()
            a.mask = real
            a.post_shares(dealt)
        else:
            a.post_shares()
    for a in agents:
        a.receive_shares()
    rng = np.random.default_rng(r)
    for a in agents:
        if a.index != cheat:
            x = enc.quantize(rng.normal(0, 0.01, L) * 10, frac_bits=16, clip=1.0)
            a.commit(x, weight=10 + a.index, dp_config=1)
    fed.chain.mine(fed.round_info(r).deadline - fed.chain.block_number + 1)
    fed.advance(r)
    assert fed.round_info(r).phase == Phase.REVEAL
    for a in agents:
        if a.index != cheat:
            a.reveal()
    assert fed.round_info(r).phase == Phase.AGGREGATE
    return r, agents


def test_a_dropout_dealing_a_key_that_is_not_its_posted_key_is_caught_and_proven() -> None:
    chain, fed, store = _federation()
    with chain:
        r, agents = _round_with_wrong_key_dropout(fed, store)
        cheat = agents[2].address
        # Off-chain: the aggregator refuses to use the key and names the dealer.
        with pytest.raises(DealerFaultError) as e:
            Aggregator(fed, store, agents[0].address).run(r)
        assert e.value.dealer == 2
        assert fed.round_info(r).phase == Phase.AGGREGATE  # nothing was posted
        # On-chain: anyone proves it; the dealer is quarantined, the round
        # fails with a reason that names the dealer's fault, nobody else pays.
        auditor = chain.account(OUTSIDER).address
        rcpt = prove_dealer_fault(fed, store, r, 2, sender=auditor)
        ev = {e.name: e.args for e in fed.receipt_events(rcpt)}
        assert ev["DealerFaultProven"]["dealer"] == cheat
        assert ev["DealerFaultProven"]["challenger"] == auditor
        assert fed.peer_info(cheat)["quarantined"]
        info = fed.round_info(r)
        assert info.phase == Phase.FAILED and info.fail_reason == FailReason.DEALER_FAULT
        for a in agents:
            if a.index != 2:
                assert fed.is_eligible(a.address)


def test_a_result_posted_from_a_wrong_key_is_voided_without_blaming_the_aggregator() -> None:
    """An aggregator that did not check (or an old one) posted the garbage
    sum the mismatched key gives: no seed or chunk proof applies (the sum is
    "right" for the shares), but the dealer-fault proof voids it and returns
    the aggregator's bond in full."""
    chain, fed, store = _federation()
    with chain:
        r, agents = _round_with_wrong_key_dropout(fed, store)
        pub = collect(fed, r)
        agg = aggregate(pub, store, check_mask_keys=False)  # what an unchecking aggregator posts
        from coordinator.protocol._aggregate import apply_update, blob_fixed, round_start
        new = apply_update(blob_fixed(round_start(fed, store, r)), agg)
        careless = agents[0].address
        Aggregator(fed, store, careless).post(r, agg, new)
        fraud = find_fraud(fed, store, r)  # no seed or chunk proof: a dealer fault
        assert fraud is not None and (fraud.kind, fraud.index) == ("dealer", 2)
        fails = [c for c in verify(fed, store, r) if not c.ok]
        assert any("dealer 2" in c.detail for c in fails), fails
        rcpt = prove_dealer_fault(fed, store, r, 2, sender=chain.account(OUTSIDER).address)
        names = [e.name for e in fed.receipt_events(rcpt)]
        assert "DealerFaultProven" in names and "ResultVoided" not in names
        assert fed.withdrawable(careless) == fed.policy().bond
        assert fed.is_eligible(careless)
        assert fed.round_info(r).fail_reason == FailReason.DEALER_FAULT


def test_no_dealer_fault_proof_succeeds_against_an_honest_dropout() -> None:
    chain, fed, store = _federation()
    with chain:
        r, agents = _round_with_wrong_key_dropout(fed, store, honest=True)
        with pytest.raises(ContractRevertError) as e:
            prove_dealer_fault(fed, store, r, 2, sender=chain.account(OUTSIDER).address)
        assert e.value.name == "FraudNotProven"
        Aggregator(fed, store, chain.account(1).address).run(r)
        assert find_fraud(fed, store, r) is None
        assert fed.is_eligible(agents[2].address)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret=st.integers(1, enc.FIELD_P - 1), other=st.integers(1, enc.FIELD_P - 1))
def test_mask_key_check_accepts_exactly_the_posted_key(secret: int, other: int) -> None:
    """Property: X25519(reconstructed key) equals the posted public key iff the
    key is the posted one (up to clamping, which X25519 applies anyway)."""
    sk = enc.int_to_scalar(secret)
    pk = sa.X25519Pair(sk, sa.crypto_scalarmult_base(sk)).public
    assert sa.mask_key_matches(secret, pk)
    same = enc.clamp_scalar(enc.int_to_scalar(other)) == enc.clamp_scalar(sk)
    assert sa.mask_key_matches(other, pk) == same
    assert not sa.mask_key_matches(secret + enc.FIELD_P, pk)  # not a field element


# -- (a) shares of one secret that are not on one polynomial -------------------------

def test_an_inconsistent_dealer_cannot_frame_an_honest_aggregator_and_is_quarantined() -> None:
    """The attack Feldman commitments close. Dealer 0 commits a leaf for its
    own share that is off its polynomial and reveals it. Before, a seed proof
    interpolated t committed leaves of the dealer's choice (its bad one among
    them), "proved" the honest aggregator's correct self seed wrong, slashed
    it and paid the dealer the challenger's reward. Now the aggregator drops
    the bad share (its committed secret comes from the others), the seed proof
    checks value·G = C_0 and refuses, the bad share itself proves the dealer
    faulty, and the round finalizes with the exact sum."""
    from coordinator.protocol._aggregate import apply_update, blob_fixed, round_start
    from coordinator.protocol._challenge import Fraud, challenge, prove_bad_share

    chain, fed, store = _federation()
    with chain:
        r, agents = _keyed_round(fed, store)
        cheat = agents[0]
        bundle, _ = cheat.deal_bundle()
        sb = ShareBundle.from_bytes(bundle)
        bad = 424242
        leaves = list(sb.leaves)
        leaves[0] = enc.share_leaf(chain_id=chain.chain_id, rounds=fed.rounds.address, round_id=r,
                                   dealer=cheat.address, holder=0, kind=0, share=bad)
        forged = ShareBundle(sb.round_id, sb.dealer, tuple(leaves), sb.boxes, sb.commitments)
        cheat.post_shares((forged.to_bytes(), enc.merkle_root(leaves)))
        for a in agents[1:]:
            a.post_shares()
        for a in agents:
            a.receive_shares()
        assert all(0 in a.received for a in agents[1:])  # everyone else's shares are honest
        rng = np.random.default_rng(r)
        xs = {}
        for a in agents:
            xs[a.index] = enc.quantize(rng.normal(0, 0.01, L) * 10, frac_bits=16, clip=1.0)
            a.commit(xs[a.index], weight=10 + a.index, dp_config=1)
        assert fed.round_info(r).phase == Phase.REVEAL  # everyone committed
        b_honest = agents[1].received[0][0]
        cheat.received[0] = (bad, 0)  # it reveals the off-polynomial value it committed to
        for a in agents:
            a.reveal()
        assert fed.round_info(r).phase == Phase.AGGREGATE
        honest = agents[1].address
        agg, _, _ = Aggregator(fed, store, honest).run(r)
        assert [(b.dealer, b.holder, b.kind, b.value) for b in agg.bad_shares] == [(0, 0, 0, bad)]
        want = np.zeros(len(agg.total), dtype=np.uint32)
        for x in xs.values():
            want[:L] += x
        assert np.array_equal(agg.total, want), "the sum is exact despite the bad share"
        assert b_honest != bad
        # The frame: the dealer challenges its own (correct) self seed.
        seeds = [(u, v, val) for u, v, val in agg.seeds]
        i = next(k for k, (u, v, _) in enumerate(seeds) if (u, v) == (0, sa.SELF))
        with pytest.raises(ContractRevertError) as e:
            challenge(fed, store, r, Fraud("seed", i, "framing"), sender=cheat.address)
        assert e.value.name == "FraudNotProven"
        assert find_fraud(fed, store, r) is None
        checks = verify(fed, store, r)  # the dealer's fault is reported, the round is not failed
        assert all(c.ok for c in checks), [c for c in checks if not c.ok]
        assert "dealer 0 for holder 0" in next(c.detail for c in checks
                                               if c.name == "revealed shares verify")
        # The evidence against the dealer, from public data.
        rcpt = prove_bad_share(fed, store, r, agg.bad_shares[0],
                               sender=chain.account(OUTSIDER).address)
        assert "BadShareProven" in [e.name for e in fed.receipt_events(rcpt)]
        assert fed.peer_info(cheat.address)["quarantined"]
        assert fed.is_eligible(honest)
        assert fed.round_info(r).phase == Phase.CHALLENGE
        chain.mine(fed.round_info(r).deadline - chain.block_number + 1)
        fed.finalize(r)
        assert fed.round_info(r).phase == Phase.FINAL
        assert fed.withdrawable(honest) == fed.policy().bond
        new = apply_update(blob_fixed(round_start(fed, store, r)), agg)
        assert new is not None


def test_no_bad_share_proof_succeeds_against_an_honest_dealer() -> None:
    from coordinator.protocol._aggregate import BadShare
    from coordinator.protocol._challenge import prove_bad_share

    chain, fed, store = _federation()
    with chain:
        r, agents = _round_with_wrong_key_dropout(fed, store, honest=True)
        for holder, kind in ((1, 1), (0, 1)):
            value = agents[holder].received[2][kind]
            with pytest.raises(ContractRevertError) as e:
                prove_bad_share(fed, store, r, BadShare(2, holder, kind, value),
                                sender=chain.account(OUTSIDER).address)
            assert e.value.name == "FraudNotProven"
        assert fed.is_eligible(agents[2].address)


# -- (c) a proven bad dealer loses its stake and, before its commit, its place ----

def _bad_bundle(cheat: PeerAgent, victim: int) -> tuple[bytes, bytes]:
    """``cheat``'s dealing with ``victim``'s self-seed share one off its
    committed polynomial, in the box and in the leaf alike (a "committed"
    share that only the Feldman commitments show wrong)."""
    assert cheat.ctx is not None
    pub = collect(cheat.fed, cheat.round_id)
    g = cheat.ctx.graph
    holders = [h for h in pub.u1 if h == cheat.index or g.adjacent(cheat.index, h)]
    dealt = sa.deal(cheat.ctx, dealer=cheat.address, self_seed=cheat.seed,
                    mask_secret=cheat.mask.secret, holders=holders)
    b, k = dealt.shares[victim]
    bad = (b + 1) % enc.FIELD_P
    leaves = list(dealt.leaves)
    leaves[2 * victim] = enc.share_leaf(chain_id=cheat.ctx.chain_id, rounds=cheat.ctx.rounds,
                                        round_id=cheat.round_id, dealer=cheat.address,
                                        holder=victim, kind=0, share=bad)
    forged = sa.DealtShares({**dealt.shares, victim: (bad, k)}, dealt.commitments,
                            tuple(leaves), enc.merkle_root(leaves))
    bundle = sa.seal_bundle(cheat.ctx, dealer=cheat.index, dealt=forged, enc=cheat.enc,
                            holder_keys={h: pub.enc_pk[h] for h in holders})
    return bundle, forged.root


def _complaint(fed: Federation, store: EmbeddedStore, r: int, victim: PeerAgent, dealer: int):
    from coordinator.protocol._aggregate import BadShare
    from coordinator.protocol._challenge import prove_bad_share

    kind, value = victim.bad_shares[dealer]
    return prove_bad_share(fed, store, r, BadShare(dealer, victim.index, kind, value),
                           sender=victim.address)


def _update(r: int, i: int) -> np.ndarray:
    rng = np.random.default_rng(1000 * r + i)
    return enc.quantize(rng.normal(0, 0.01, L) * 10, frac_bits=16, clip=1.0)


@pytest.mark.parametrize("mode", ["local", "distributed"])
def test_a_dealer_proven_bad_before_its_commit_is_slashed_and_excluded_while_the_round_completes(
        mode: str) -> None:
    """The holder's complaint lands in Shares, before the dealer could commit:
    the dealer's whole stake moves to the registry's slashed stake, its commit
    reverts RoundsDealerExcluded, and the round does not wait for it: the
    last honest commit moves it to Reveal, the honest holders reveal the
    dealer's mask-key share (a dropout after shares), and the unmasked sum is
    exactly the honest peers' updates. The dealer pays no privacy budget; in
    a distributed mode each honest survivor is charged once, for |U3| = 4."""
    from coordinator.chain._contracts import StatusFlag
    from coordinator.privacy import _noise as nz

    chain, fed, store = _federation()
    with chain:
        cfg_id = 1
        if mode == "distributed":
            cfg_id = 2
            fed.register_distributed_config(nz.distributed_config(
                config_id=2, mode=nz.DPMode.DISTRIBUTED_RECORD, q=0.05, clip=1.0, frac_bits=16,
                dim=L, sigma=1.0, k=1, floor_m=2, max_m=5))
        r, agents = _keyed_round(fed, store, cfg_id)
        cheat, victim = agents[0], agents[1]
        cheat.post_shares(_bad_bundle(cheat, victim.index))
        for a in agents[1:4]:
            a.post_shares()
        assert fed.round_info(r).phase == Phase.SHARES  # agent 4 has not posted yet
        victim.receive_shares()
        assert 0 in victim.bad_shares and 0 not in victim.received
        staked, slashed = fed.total_staked(), 0  # nothing slashed yet on a fresh deployment
        rcpt = _complaint(fed, store, r, victim, 0)
        ev = {e.name: e.args for e in fed.receipt_events(rcpt)}
        assert fed.peer_info(cheat.address)["stake"] == 0, "the dealer's stake is slashed"
        assert fed.peer_info(cheat.address)["quarantined"]
        assert ev["BadShareProven"]["excluded"] is True
        assert ev["PeerSlashed"]["peer"] == cheat.address and ev["PeerSlashed"]["amount"] == STAKE
        assert fed.slashed_stake() == slashed + STAKE
        assert fed.total_staked() == staked - STAKE
        assert fed.status(r, cheat.address)[1] & StatusFlag.EXCLUDED
        assert fed.round_info(r).n_excluded == 1
        # Proving it again changes nothing: no double count, nothing left to slash.
        rcpt = _complaint(fed, store, r, victim, 0)
        ev = {e.name: e.args for e in fed.receipt_events(rcpt)}
        assert ev["BadShareProven"]["excluded"] is False and ev["PeerSlashed"]["amount"] == 0
        assert fed.slashed_stake() == slashed + STAKE and fed.round_info(r).n_excluded == 1
        agents[4].post_shares()
        assert fed.round_info(r).phase == Phase.COMMIT
        for a in agents:
            a.receive_shares()
        with pytest.raises(ContractRevertError) as e:
            cheat.commit(_update(r, 0), weight=10, dp_config=cfg_id)
        assert e.value.name == "RoundsDealerExcluded"
        deadline = fed.round_info(r).deadline
        xs = {a.index: _update(r, a.index) for a in agents[1:]}
        for a in agents[1:]:
            a.commit(xs[a.index], weight=10 + a.index, dp_config=cfg_id)
        info = fed.round_info(r)
        assert info.phase == Phase.REVEAL, "the round does not wait for the excluded dealer"
        assert chain.block_number <= deadline
        pub = collect(fed, r)
        assert 0 in pub.u2 and 0 not in pub.u3 and pub.u3 == [1, 2, 3, 4]
        for a in agents[1:]:
            a.reveal()
        assert fed.round_info(r).phase == Phase.AGGREGATE
        agg, _, _ = Aggregator(fed, store, agents[2].address).run(r)
        want = np.zeros(len(agg.total), dtype=np.uint32)
        for x in xs.values():
            want[:L] += x
        assert np.array_equal(agg.total, want), "exactly the honest peers' sum"
        assert find_fraud(fed, store, r) is None
        chain.mine(fed.round_info(r).deadline - chain.block_number + 1)
        fed.finalize(r)
        assert fed.round_info(r).phase == Phase.FINAL
        assert all(c.ok for c in verify(fed, store, r))
        assert fed.epsilon_micro(cheat.address) == 0, "the excluded dealer is charged nothing"
        spent = {fed.rdp_micro(a.address) for a in agents[1:]}
        assert len(spent) == 1, "each honest peer is charged alike"
        charged = [e for e in fed.all_events("PrivacyLedger", info.opened_block)
                   if e.name == "BudgetCharged"]
        assert sorted(e.args["peer"] for e in charged) == sorted(a.address for a in agents[1:])


def test_a_dealer_proven_bad_after_its_commit_is_slashed_and_stays_in_the_round() -> None:
    """After its commit the dealer's contribution is well defined: it stays
    in U3 for this round (its self seed comes from the good shares) and
    loses its stake and its eligibility."""
    chain, fed, store = _federation()
    with chain:
        r, agents = _keyed_round(fed, store)
        cheat, victim = agents[0], agents[1]
        cheat.post_shares(_bad_bundle(cheat, victim.index))
        for a in agents[1:]:
            a.post_shares()
        assert fed.round_info(r).phase == Phase.COMMIT
        for a in agents:
            a.receive_shares()
        xs = {a.index: _update(r, a.index) for a in agents}
        cheat.commit(xs[0], weight=10, dp_config=1)
        slashed = 0  # nothing slashed yet on a fresh deployment
        rcpt = _complaint(fed, store, r, victim, 0)
        ev = {e.name: e.args for e in fed.receipt_events(rcpt)}
        assert fed.peer_info(cheat.address)["stake"] == 0
        assert fed.peer_info(cheat.address)["quarantined"]
        assert ev["BadShareProven"]["excluded"] is False
        assert fed.slashed_stake() == slashed + STAKE
        assert fed.round_info(r).n_excluded == 0
        for a in agents[1:]:
            a.commit(xs[a.index], weight=10 + a.index, dp_config=1)
        assert fed.round_info(r).phase == Phase.REVEAL
        assert collect(fed, r).u3 == [0, 1, 2, 3, 4]
        for a in agents:
            a.reveal()
        agg, _, _ = Aggregator(fed, store, agents[2].address).run(r)
        want = np.zeros(len(agg.total), dtype=np.uint32)
        for x in xs.values():
            want[:L] += x
        assert np.array_equal(agg.total, want), "the dealer's committed update is in the sum"
        chain.mine(fed.round_info(r).deadline - chain.block_number + 1)
        fed.finalize(r)
        assert fed.round_info(r).phase == Phase.FINAL
        assert not fed.is_eligible(cheat.address)
