"""A committer that withholds its masked vector (issue 12 item 7), on the
embedded chain with real keys, shares, masks and the round driver.

Without an Availability phase the attack works: the withholder commits a CID
nobody can fetch, the aggregator cannot unmask, the round ends NoResult, and
the withholder keeps its stake and its eligibility — every round, for free.
With the phase, the driver's availability check challenges it (bonded); it
does not answer, so it leaves U3 before any share is revealed, is slashed
and quarantined, gets its ε back (its update is in no sum), and the round
finalizes with everyone else's exact sum. An honest committer whose vector
the aggregator cannot reach answers on-chain, stays in U3, and is paid its
calldata out of the challenger's bond; the aggregator and ``verify`` take the vector from the
chain.
"""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks.roundsim import STAKE

from coordinator import connect
from coordinator.cli import round_view
from coordinator import _encoding as enc
from coordinator.chain._contracts import (FailReason, Federation, LedgerPolicy, Phase, Policy,
                                          StatusFlag, deploy_federation)
from coordinator.privacy._privacy import dp_config
from coordinator.protocol import _secagg as sa
from coordinator.protocol._agent import PeerAgent
from coordinator.protocol._aggregate import collect, verify
from coordinator.protocol._driver import RoundDriver
from coordinator.store._store import EmbeddedStore

L = 200
CE = 64
WINDOW = 10


def _federation(availability_blocks: int):
    chain = connect("embedded")
    chain.ensure_accounts(8)
    store = EmbeddedStore()
    pol = Policy(participants=5, threshold=3, keys_blocks=30, shares_blocks=30, commit_blocks=30,
                 reveal_blocks=30, aggregate_blocks=30, challenge_blocks=3, bond=STAKE // 2,
                 availability_blocks=availability_blocks)
    fed, _ = deploy_federation(chain, policy=pol, ledger_policy=LedgerPolicy(epsilon_cap=40))
    for i in range(1, 6):
        fed.register(sender=i, stake=STAKE)
    fed.register_config(dp_config(config_id=1, q=0.2, sigma=1.0, steps=10))
    return chain, fed, store


def _committed_round(fed: Federation, store: EmbeddedStore, *, withhold: int
                     ) -> tuple[int, list[PeerAgent], dict[int, np.ndarray], np.ndarray]:
    """Everyone deals and commits; participant ``withhold`` commits to a
    masked vector it never publishes. Returns (round, agents, x_u, its y)."""
    r, _ = fed.open_round(dp_config=1, vector_length=L, chunk_elems=CE)
    agents = [PeerAgent(fed, store, a, r) for a in fed.participants(r)]
    for a in agents:
        a.post_keys()
    for a in agents:
        a.post_shares()
    for a in agents:
        a.receive_shares()
    rng = np.random.default_rng(r)
    xs: dict[int, np.ndarray] = {}
    hidden = np.zeros(0, np.uint32)
    for a in agents:
        xs[a.index] = enc.quantize(rng.normal(0, 0.01, L) * 10, frac_bits=16, clip=1.0)
        if a.index == withhold:
            hidden = a.masked(xs[a.index])
            # the CID of bytes that are never added to any store
            digest = EmbeddedStore().add(enc.to_bytes(hidden)).digest
            fed.commit(r, cid_digest=digest, chunks_root=enc.vector_root(hidden, CE),
                       weight=10 + a.index, dp_config=1, sender=a.address)
        else:
            a.commit(xs[a.index], weight=10 + a.index, dp_config=1)
    return r, agents, xs, hidden


def _to_deadline(fed: Federation, r: int) -> None:
    fed.chain.mine(max(1, fed.round_info(r).deadline - fed.chain.block_number + 1))


def _reveal_and_aggregate(fed: Federation, driver: RoundDriver, agents: list[PeerAgent],
                          r: int, out: set[int]) -> None:
    assert fed.round_info(r).phase == Phase.REVEAL
    for a in agents:
        if a.index not in out:
            a.reveal()
    assert fed.round_info(r).phase == Phase.AGGREGATE
    driver.tick()


def test_without_the_availability_phase_a_withholder_forces_no_result_unpunished() -> None:
    """The attack, on a federation whose policy has no Availability phase."""
    chain, fed, store = _federation(availability_blocks=0)
    with chain:
        r, agents, _, _ = _committed_round(fed, store, withhold=1)
        cheat = agents[1].address
        assert fed.round_info(r).phase == Phase.REVEAL  # straight from Commit
        driver = RoundDriver(fed, store, aggregator=agents[0].address, dp_config=1,
                             vector_length=L, chunk_elems=CE)
        _reveal_and_aggregate(fed, driver, agents, r, out=set())
        assert "cannot be fetched" in driver.unaggregatable[r]
        _to_deadline(fed, r)
        fed.advance(r)
        info = fed.round_info(r)
        assert info.phase == Phase.FAILED and info.fail_reason == FailReason.NO_RESULT
        assert fed.peer_info(cheat)["stake"] == STAKE and fed.is_eligible(cheat)


def test_an_unanswered_withholder_leaves_u3_slashed_and_the_round_finalizes() -> None:
    chain, fed, store = _federation(availability_blocks=WINDOW)
    with chain:
        r, agents, xs, _ = _committed_round(fed, store, withhold=1)
        cheat = agents[1].address
        assert fed.round_info(r).phase == Phase.AVAILABILITY
        driver = RoundDriver(fed, store, aggregator=agents[0].address, dp_config=1,
                             vector_length=L, chunk_elems=CE)
        before = chain.w3.eth.get_balance(agents[0].address)
        said = driver.tick()
        assert said == f"round {r}: challenged the availability of [1]"
        assert fed.status(r, cheat)[1] & StatusFlag.CHALLENGED
        assert fed.round_info(r).n_commits == 4
        assert driver.tick() is None  # checked once per round
        _to_deadline(fed, r)
        driver.tick()  # the deadline passes: the withholder is dropped, before any reveal
        info = fed.round_info(r)
        assert info.phase == Phase.REVEAL and info.n_commits == 4
        assert info.weight_sum == sum(10 + i for i in (0, 2, 3, 4))
        pub = collect(fed, r)
        assert pub.u3 == [0, 2, 3, 4] and pub.dropped == {1}
        assert fed.peer_info(cheat)["stake"] == 0 and not fed.is_eligible(cheat)
        assert fed.epsilon(cheat) == 0, "a dropped committer's update is in no sum: refunded"
        view = round_view(fed, r)  # what `fedledger round status` shows an operator
        assert view["withheld"] == [1] and view["U3"] == [0, 2, 3, 4]
        assert view["late"]["COMMIT"] == [], "it committed: withheld, not late"
        _reveal_and_aggregate(fed, driver, agents, r, out={1})
        agg = driver.results[r]
        want = sa.sum_vectors(xs[i] for i in (0, 2, 3, 4))
        assert np.array_equal(agg.total[:L], want), "the exact sum of everyone else"
        assert fed.availability_challenge(r, cheat) == (None, 0), "the bond was reclaimed"
        # it holds the result's bond now, and paid gas: not the challenge's bond
        spent = before - chain.w3.eth.get_balance(agents[0].address)
        assert spent - fed.policy().bond < fed.policy().bond // 10, "challenge bond back"
        assert all(c.ok for c in verify(fed, store, r)), [c for c in verify(fed, store, r)
                                                         if not c.ok]
        chain.mine(fed.policy().challenge_blocks + 1)
        driver.tick()
        assert fed.round_info(r).phase == Phase.FINAL
        assert all(fed.epsilon(a.address) > 0 for a in agents if a.index != 1)


def test_an_honest_committer_out_of_reach_answers_on_chain_and_stays_in_u3() -> None:
    """Its vector never reached the aggregator's store (its IPFS node is
    down, say): it is challenged, answers with the stored vector, is paid
    its calldata from the bond, and the round's sum includes it; verify reads the vector from
    the chain."""
    chain, fed, store = _federation(availability_blocks=WINDOW)
    with chain:
        r, agents, xs, hidden = _committed_round(fed, store, withhold=3)
        honest = agents[3]
        driver = RoundDriver(fed, store, aggregator=agents[0].address, dp_config=1,
                             vector_length=L, chunk_elems=CE)
        assert driver.tick() == f"round {r}: challenged the availability of [3]"
        with pytest.raises(Exception, match="not the one it committed"):
            honest.answer_availability(hidden + np.uint32(1))
        start = chain.block_number
        assert honest.answer_availability(hidden) > 0
        (ev,) = fed.events("FraudProofs", "AvailabilityAnswered", start)
        basefee = int(chain.w3.eth.get_block(ev.block)["baseFeePerGas"])
        data = enc.to_bytes(enc.pad(hidden, CE))
        assert ev.args["data"] == data
        # paid its calldata at the base fee, not the bond: withholding until
        # challenged and then answering earns nothing
        assert ev.args["fee"] == min(fed.policy().bond, basefee * (40 * len(data) + 150_000))
        assert ev.args["fee"] < fed.policy().bond
        assert fed.round_info(r).n_commits == 5
        _to_deadline(fed, r)
        driver.tick()
        pub = collect(fed, r)
        assert pub.u3 == [0, 1, 2, 3, 4] and 3 in pub.answered and not pub.dropped
        _reveal_and_aggregate(fed, driver, agents, r, out=set())
        agg = driver.results[r]
        assert np.array_equal(agg.total[:L], sa.sum_vectors(xs.values()))
        assert all(c.ok for c in verify(fed, store, r))
        assert fed.peer_info(honest.address)["stake"] == STAKE and fed.is_eligible(honest.address)


@pytest.mark.parametrize("kwargs, why", [
    ({"availability_blocks": 3}, "at least 4"),
    ({"availability_blocks": 10, "bond": 0}, "bond > 0"),
])
def test_a_policy_where_no_one_could_answer_or_challenges_are_free_is_refused(kwargs, why) -> None:
    from coordinator import ConfigError

    with pytest.raises(ConfigError, match=why):
        Policy(participants=5, threshold=3, **kwargs)


def test_a_round_reveal_waits_for_the_final_u3() -> None:
    """A peer never reveals from a U3 read before the Availability→Reveal
    transition: that U3 still holds the committers the transition drops."""
    chain, fed, store = _federation(availability_blocks=WINDOW)
    with chain:
        r, agents, _, _ = _committed_round(fed, store, withhold=1)
        with pytest.raises(Exception, match="not in its reveal phase"):
            agents[0].reveal()


def test_a_dropped_withholder_in_a_distributed_round_is_charged_nothing_and_audits_clean() -> None:
    """Distributed charges follow |U3| after the drop, and the auditors'
    log (events alone) agrees: U3 without the withholder, its charge none,
    every recomputed ε matches the ledger's."""
    from benchmarks.roundsim import RoundSim, setup_federation
    from ledger_tools._inspect import build_log
    from ledger_tools._verify import verify_budgets

    from coordinator.privacy import _noise as nz

    chain = connect("embedded")
    with chain:
        pol = Policy(participants=5, threshold=3, keys_blocks=20, shares_blocks=20,
                     commit_blocks=20, reveal_blocks=20, aggregate_blocks=20, challenge_blocks=3,
                     bond=STAKE, availability_blocks=WINDOW)
        fed, _ = setup_federation(chain, peers=5, policy=pol)
        cfg = nz.distributed_config(config_id=6, mode=nz.DPMode.DISTRIBUTED_USER, q=1.0, clip=1.0,
                                    frac_bits=16, dim=64, sigma=2.0, k=1, floor_m=2, max_m=5)
        fed.register_distributed_config(cfg)
        sim = RoundSim(fed, cfg, vector_length=64, chunk_elems=64)  # type: ignore[arg-type]
        sim.keys()
        sim.shares()
        sim.commit()
        cheat = sim.peers[2]
        fed.challenge_availability(sim.round_id, cheat.address, cid_digest=cheat.cid_digest,
                                   chunks_root=cheat.chunks_root, weight=cheat.weight, sender=7)
        sim.run_to(Phase.REVEAL)
        u3 = [0, 1, 3, 4]
        assert fed.round_info(sim.round_id).n_commits == len(u3)
        assert fed.epsilon_micro(cheat.address) == 0
        for u in u3:
            assert fed.rdp_micro(sim.peers[u].address) == cfg.rdp_for(len(u3))
        log = build_log(fed)
        (r,) = log["rounds"]
        assert r["U3"] == u3 and r["withheld"] == [2]
        assert [a["event"] for a in r["availability"]] == ["AvailabilityChallenged"]
        verdicts = verify_budgets(fed, log)
        assert verdicts and all(v.ok for v in verdicts), [v for v in verdicts if not v.ok]


class _LosesVectors:
    """Test double (a content store the mission does not name as such: it
    wraps the real embedded store): ``add`` of a masked vector of
    ``vector_bytes`` returns its CID but keeps nothing, as if the peer's IPFS
    node went away right after its commit. Everything else is the real store."""

    def __init__(self, inner: EmbeddedStore, vector_bytes: int) -> None:
        self.inner, self.vector_bytes = inner, vector_bytes

    def add(self, data: bytes):  # type: ignore[no-untyped-def]
        if len(data) == self.vector_bytes:
            return EmbeddedStore().add(data)  # the CID, in a store nobody reads
        return self.inner.add(data)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


def test_a_peer_daemon_answers_a_challenge_from_its_stored_vector_and_a_later_round_opens(
        tmp_path) -> None:
    """The peer loop (PeerNode) of a peer whose vector never reached IPFS
    answers the driver's challenge from the vector it stored before
    committing, first thing in Availability; everyone's sum is released. A
    quarantined peer (another round's withholder) does not stop the driver's
    ``min_peers`` gate from opening the next round (user trial)."""
    from nodes._peer import PeerNode, SyntheticLearner
    from nodes._state import PeerState

    from coordinator.protocol._driver import initial_adapter_args
    from coordinator.protocol._driver import WAITING

    size = 300
    chain = connect("embedded")
    chain.ensure_accounts(7)
    store = EmbeddedStore()
    pol = Policy(participants=4, threshold=3, keys_blocks=8, shares_blocks=8, commit_blocks=8,
                 reveal_blocks=8, aggregate_blocks=8, challenge_blocks=1, bond=STAKE,
                 availability_blocks=WINDOW)
    with chain:
        fed, _ = deploy_federation(chain, policy=pol, ledger_policy=LedgerPolicy(epsilon_cap=50),
                                   **initial_adapter_args(store, np.zeros(size, np.float32),
                                                          policy=(4, 3)))
        fed.register_config(dp_config(config_id=1, q=0.5, sigma=1.0, steps=2))
        for i in range(1, 6):
            fed.register(sender=i, stake=STAKE)
        driver = RoundDriver(fed, store, aggregator=chain.account(5).address, dp_config=1,
                             vector_length=size, rounds=2, min_peers=5)
        r = int(str(driver.tick()).split()[-1])
        padded = 4 * collect(fed, r).ctx.padded_length
        # Selection draws 4 of the 5 registered peers: the one that loses its
        # vector must be one of them (it was peer 0 always, which failed
        # whenever the draw left peer 0 out).
        selected = [i for i in range(5) if fed.status(r, chain.account(i + 1).address)[0] is not None]
        assert len(selected) == 4
        nodes = [PeerNode(fed, store if i != selected[0]
                          else _LosesVectors(store, padded),  # type: ignore[arg-type]
                          chain.account(i + 1).address,
                          PeerState(tmp_path / f"p{i}.sqlite", b"pass",
                                    deployment=(chain.chain_id, fed.rounds.address)),
                          SyntheticLearner(size)) for i in range(5)]
        lost = nodes[selected[0]]
        for _ in range(40):
            phase = fed.round_info(r).phase
            if phase not in WAITING:
                break
            acted = [a for nd in nodes if fed.status(r, nd.address)[0] is not None
                     for a in nd.step(r)]
            if fed.round_info(r).phase == phase and driver.tick() is None and not acted:
                chain.mine(max(1, fed.round_info(r).deadline - chain.block_number + 1))
                driver.tick()
        assert fed.round_info(r).phase == Phase.AGGREGATE
        pub = collect(fed, r)
        me = fed.status(r, lost.address)[0]
        assert me in pub.answered and me in pub.u3 and not pub.dropped
        driver.tick()
        assert all(c.ok for c in verify(fed, store, r))
        chain.mine(2)
        driver.tick()
        assert fed.round_info(r).phase == Phase.FINAL
        # One registered peer quarantined: 4 eligible < min_peers = 5, yet
        # round 2 opens (the gate is for the federation's first round).
        fed.quarantine(chain.account(5).address)
        assert driver.tick() == "opened round 2"
