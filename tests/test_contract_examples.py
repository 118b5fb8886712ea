"""An example test for every custom error and every event, on Hardhat's node.

`test_every_error_and_event_has_an_example` keeps this complete: every
error and event in the compiled ABIs must have been *observed* by the
examples that ran before it in this module (a revert decoded from a
transaction's data by `expect`, an event decoded from a receipt or a log
query), not merely named in the source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from benchmarks.roundsim import STAKE, RoundSim, setup_federation

from coordinator import Chain, ContractRevertError, LocalNode, load_artifacts
from coordinator import _encoding as enc
from coordinator.chain._contracts import (Commitments, Federation, Phase, Policy, ShareProof,
                                          deploy_federation)
from coordinator.privacy._privacy import conversion_constants, dp_config

# One xdist worker runs the whole module: the completeness check at its end
# needs every example above it to have run in the same process.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("contract_examples")]
OUTSIDER = 15  # a funded account that never registers

# What the examples actually saw on the chain: custom errors decoded from
# revert data and events decoded from receipts or logs (filled as they run).
OBSERVED: set[str] = set()
RAN: set[str] = set()


@pytest.fixture(autouse=True)
def _record_run(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    RAN.add(request.node.name)


@pytest.fixture(scope="module")
def hh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    with LocalNode("hardhat", workdir=tmp_path_factory.mktemp("hh")) as node:
        yield node


def expect(name: str, fn: Callable[[], Any], **args: Any) -> ContractRevertError:
    with pytest.raises(ContractRevertError) as info:
        fn()
    assert info.value.name == name, info.value
    OBSERVED.add(info.value.name)
    for k, v in args.items():
        assert info.value.args_by_name[k] == v, (k, info.value.args_by_name)
    return info.value


def emitted(fed: Federation, rcpt: Any) -> dict[str, dict[str, Any]]:
    got = {e.name: e.args for e in fed.receipt_events(rcpt)}
    OBSERVED.update(got)
    return got


def events(fed: Federation, contract: str, name: str, start: int) -> list[Any]:
    """fed.events, recording the event as observed when a log was found."""
    got = fed.events(contract, name, start)
    if got:
        OBSERVED.add(name)
    return got


# -- registry ------------------------------------------------------------------

def test_registry_errors_and_events(hh: Chain) -> None:
    fed, _ = deploy_federation(hh, leave_delay=3)
    me = hh.account(1).address
    ev = emitted(fed, fed.register(sender=1, stake=STAKE, region=44, modalities=5, key=b"k" * 32))
    assert ev["PeerRegistered"] == {"peer": me, "stake": STAKE, "region": 44, "modalities": 5,
                                    "key": b"k" * 32}
    expect("RegistryAlreadyRegistered", lambda: fed.register(sender=1, stake=STAKE), peer=me)
    expect("RegistryStakeTooLow", lambda: fed.register(sender=2, stake=1), sent=1)
    expect("RegistryBadModalities", lambda: fed.register(sender=2, stake=STAKE, modalities=8),
           modalities=8)
    expect("RegistryNotRegistered", lambda: fed.request_leave(sender=OUTSIDER))
    expect("RegistryNotLeaving", lambda: fed.withdraw_stake(sender=1), peer=me)
    expect("RegistryUnauthorized", lambda: fed.quarantine(me, sender=3))
    expect("RegistrySlasherAlreadySet",
           lambda: hh.transact(fed.registry.functions.setSlasher(me)))
    ev = emitted(fed, fed.request_leave(sender=1))
    due = ev["PeerLeaveRequested"]["dueBlock"]
    expect("RegistryLeaveNotDue", lambda: fed.withdraw_stake(sender=1), dueBlock=due)
    hh.mine(3)
    assert emitted(fed, fed.withdraw_stake(sender=1))["PeerWithdrawn"] == {"peer": me, "stake": STAKE}
    assert fed.total_staked() == 0
    fed.register(sender=2, stake=STAKE)
    ev = emitted(fed, fed.quarantine(hh.account(2).address))
    assert ev["PeerQuarantined"]["by"] == fed.governor.address
    # SlasherSet was emitted at deployment wiring.
    assert events(fed, "PeerRegistry", "SlasherSet", 0)[0].args["slasher"] == fed.rounds.address


# -- ledger ----------------------------------------------------------------------

def test_ledger_errors_and_events(hh: Chain) -> None:
    gov = hh.account(0).address
    ledger, _ = hh.deploy("PrivacyLedger", gov, 1, 10_000_000, list(conversion_constants(1e-5)))
    rc = hh.transact(ledger.functions.setCharger(gov))
    assert decode(hh, ledger, "ChargerSet", rc)[0]["args"]["charger"] == gov
    expect("LedgerChargerAlreadySet", lambda: hh.transact(ledger.functions.setCharger(gov)))
    cfg = dp_config(config_id=3, q=0.02, sigma=1.0, steps=10)
    reg = lambda c=cfg, **kw: hh.transact(ledger.functions.registerConfig(  # noqa: E731
        kw.get("id", c.config_id), c.q_ppm, c.sigma_milli, c.steps, list(c.rdp_micro)),
        sender=kw.get("sender", 0))
    expect("LedgerUnauthorized", lambda: reg(sender=1))
    expect("LedgerBadConfig", lambda: reg(id=0), id=0)
    rc = reg()
    logs = decode(hh, ledger, "DPConfigRegistered", rc)
    assert tuple(logs[0]["args"]["rdpMicro"]) == cfg.rdp_micro
    expect("LedgerConfigExists", lambda: reg(), id=3)
    peer = hh.account(4).address
    expect("LedgerUnknownConfig", lambda: hh.transact(ledger.functions.charge(peer, 1, 9)), id=9)
    expect("LedgerBudgetExceeded", lambda: hh.transact(ledger.functions.charge(peer, 1, 3)),
           peer=peer, cap=1)
    big, _ = hh.deploy("PrivacyLedger", gov, 10**12, 10_000_000, list(conversion_constants(1e-5)))
    hh.transact(big.functions.setCharger(gov))
    hh.transact(big.functions.registerConfig(3, cfg.q_ppm, cfg.sigma_milli, cfg.steps,
                                             list(cfg.rdp_micro)))
    rc = hh.transact(big.functions.charge(peer, 7, 3))
    charged = decode(hh, big, "BudgetCharged", rc)[0]["args"]
    assert (charged["peer"], charged["round"], charged["configId"]) == (peer, 7, 3)
    assert charged["epsilonAfter"] > 0
    rc = hh.transact(big.functions.refund(peer, 7, 3))
    refunded = decode(hh, big, "BudgetRefunded", rc)[0]["args"]
    assert refunded["epsilonAfter"] == 0


def test_distributed_ledger_errors_and_events(hh: Chain) -> None:
    from coordinator.privacy import _noise as nz

    gov = hh.account(0).address
    ledger, _ = hh.deploy("PrivacyLedger", gov, 10**12, 10_000_000, list(conversion_constants(1e-5)))
    hh.transact(ledger.functions.setCharger(gov))
    cfg = nz.distributed_config(config_id=4, mode=nz.DPMode.DISTRIBUTED_RECORD, q=0.05, clip=1.0,
                                frac_bits=12, dim=64, sigma=1.0, k=1, floor_m=2, max_m=4)
    args = lambda c=cfg, **kw: [kw.get("id", c.config_id), kw.get("mode", int(c.mode)),  # noqa: E731
                                c.q_ppm, c.mu, c.delta2, c.delta1, c.k, c.floor_m,
                                kw.get("vecs", [list(v) for v in c.rdp_by_m])]
    reg = lambda **kw: hh.transact(  # noqa: E731
        ledger.functions.registerDistributedConfig(*args(**kw)), sender=kw.get("sender", 0))
    expect("LedgerUnauthorized", lambda: reg(sender=1))
    expect("LedgerBadConfig", lambda: reg(mode=0), id=4)
    # More noise must never cost more: an increasing vector is refused.
    expect("LedgerBadConfig", lambda: reg(vecs=[list(v) for v in reversed(cfg.rdp_by_m)]), id=4)
    rc = reg()
    ev = decode(hh, ledger, "DistributedConfigRegistered", rc)[0]["args"]
    assert (ev["id"], ev["mode"], ev["k"], ev["floorM"], ev["mu"]) == (4, 1, 1, 2, cfg.mu)
    assert [tuple(v) for v in ev["rdpMicro"]] == list(cfg.rdp_by_m)
    expect("LedgerConfigExists", lambda: reg(), id=4)
    peer = hh.account(4).address
    # The commit-time charge is refused for a distributed configuration, and
    # the survivor charge for a local one.
    expect("LedgerWrongMode", lambda: hh.transact(ledger.functions.charge(peer, 1, 4)), id=4, mode=1)
    local = dp_config(config_id=3, q=0.02, sigma=1.0, steps=10)
    hh.transact(ledger.functions.registerConfig(3, local.q_ppm, local.sigma_milli, local.steps,
                                                list(local.rdp_micro)))
    expect("LedgerWrongMode", lambda: hh.transact(ledger.functions.chargeSurvivor(peer, 1, 3, 5)),
           id=3, mode=0)
    expect("LedgerNoiseBelowFloor", lambda: hh.transact(ledger.functions.chargeSurvivor(peer, 1, 4, 2)),
           id=4, survivors=2, floorM=2)
    rc = hh.transact(ledger.functions.chargeSurvivor(peer, 9, 4, 3))
    charged = decode(hh, ledger, "BudgetCharged", rc)[0]["args"]
    assert (charged["round"], charged["configId"]) == (9, 4)
    assert tuple(hh.call(ledger.functions.rdpOf(peer))) == cfg.rdp_for(3)
    rc = hh.transact(ledger.functions.refundSurvivor(peer, 9, 4, 3))
    assert decode(hh, ledger, "BudgetRefunded", rc)[0]["args"]["epsilonAfter"] == 0


def decode(chain: Chain, contract: Any, event: str, rcpt: Any) -> Any:
    raw = chain.w3.eth.get_transaction_receipt(rcpt.tx_hash)
    got = getattr(contract.events, event)().process_receipt(raw)
    if got:
        OBSERVED.add(event)
    return got


# -- rounds ----------------------------------------------------------------------

def test_selection_errors_and_events(hh: Chain) -> None:
    """openRound freezes the pool and names the seed's block; selection
    before it is mined, and leaving while frozen, revert (issue 12 item 3)."""
    fed, cfg = setup_federation(hh, peers=5)
    got = emitted(fed, fed.set_eligibility_delay(0))
    assert got["EligibilityDelaySet"]["delay"] == 0
    r, rcpt = fed.open_round(dp_config=cfg.config_id, vector_length=64, chunk_elems=64, select=False)
    got = emitted(fed, rcpt)
    assert got["PoolFrozen"]["frozen"] is True and got["SelectionScheduled"]["poolSize"] == 5
    target = got["SelectionScheduled"]["targetBlock"]
    assert target == rcpt.block_number + 1
    expect("RoundsSelectionNotDue", lambda: hh.transact(fed.rounds.functions.selectParticipants(r)),
           round=r, targetBlock=target)
    expect("RegistryFrozen", lambda: fed.request_leave(sender=1))
    got = emitted(fed, fed.select_participants(r))
    assert got["PoolFrozen"]["frozen"] is False and len(got["ParticipantsSelected"]["participants"]) == 5


def test_round_events_in_a_full_round(hh: Chain) -> None:
    fed, cfg = setup_federation(hh, peers=5)
    start = hh.block_number
    sim = RoundSim(fed, cfg)
    sim.keys()
    sim.shares()
    sim.commit()
    sim.reveal()
    sim.post_result(sender=1)
    sim.run_to(Phase.FINAL)
    fed.withdraw(sender=1)
    names = {e.name for n in ("FedRounds",) for e in _all_events(fed, n, start)}
    for want in ("RoundOpened", "ParticipantsSelected", "KeysPosted", "SharesPosted",
                 "UpdateCommitted", "SharesRevealed", "PhaseAdvanced", "ResultPosted",
                 "RoundFinalized", "Withdrawn", "QuantFixed"):
        assert want in names, want
    fixed = events(fed, "FedRounds", "QuantFixed", start)
    assert len(fixed) == 1 and (fixed[0].args["vectorLength"], fixed[0].args["chunkElems"],
                                fixed[0].args["fracBits"]) == (300, 64, 16)
    opened = events(fed, "FedRounds", "RoundOpened", start)[0].args
    assert (opened["round"], opened["n"], opened["t"], opened["dpConfig"]) == (1, 5, 3, 1)
    committed = events(fed, "FedRounds", "UpdateCommitted", start)
    assert len(committed) == 5 and all(c.args["dpConfig"] == 1 for c in committed)
    charged = events(fed, "PrivacyLedger", "BudgetCharged", start)
    assert {c.args["peer"] for c in charged} == {p.address for p in sim.peers}
    assert events(fed, "FedRounds", "FraudProofsSet", 0)[0].args["fraudProofs"] == fed.fraud.address


def _all_events(fed: Federation, contract: str, start: int) -> list[Any]:
    abi = {"FedRounds": fed.rounds}[contract].abi
    out = []
    for item in abi:
        if item["type"] == "event":
            out += events(fed, contract, item["name"], start)
    return out


def test_round_errors(hh: Chain) -> None:
    pol = Policy(participants=5, threshold=3, keys_blocks=20, shares_blocks=20, commit_blocks=20,
                 reveal_blocks=20, aggregate_blocks=20, challenge_blocks=3, bond=STAKE)
    fed, cfg = setup_federation(hh, peers=5, policy=pol)
    quant = (300, 64, 16)
    expect("RoundsUnauthorized", lambda: hh.transact(fed.rounds.functions.openRound(1, quant),
                                                     sender=3))
    expect("RoundsBadQuant",
           lambda: hh.transact(fed.rounds.functions.openRound(1, (300, 7, 16))))
    expect("LedgerUnknownConfig", lambda: hh.transact(fed.rounds.functions.openRound(9, quant)))
    expect("RoundsFraudProofsAlreadySet",
           lambda: hh.transact(fed.rounds.functions.setFraudProofs(fed.fraud.address)))
    expect("RoundsNothingToWithdraw", lambda: fed.withdraw(sender=2))
    sim = RoundSim(fed, cfg)
    r = sim.round_id
    expect("RoundsRoundActive", lambda: RoundSim(fed, cfg), active=r)
    outsider = hh.account(OUTSIDER).address
    expect("RoundsNotParticipant", lambda: fed.post_keys(r, bytes(32), bytes(32), sender=outsider))
    p0, p4 = sim.peers[0], sim.peers[4]
    fed.post_keys(r, p0.enc.public, p0.mask.public, sender=p0.address)
    expect("RoundsAlreadyActed", lambda: fed.post_keys(r, bytes(32), bytes(32), sender=p0.address))
    sim.u1.append(0)
    for p in sim.peers[1:4]:
        fed.post_keys(r, p.enc.public, p.mask.public, sender=p.address)
        sim.u1.append(p.index)
    sim.run_to(Phase.SHARES)
    expect("RoundsWrongPhase", lambda: fed.post_keys(r, bytes(32), bytes(32), sender=p4.address),
           expected=Phase.KEYS, actual=Phase.SHARES)
    expect("RoundsMissedStep", lambda: fed.post_shares(r, bytes(32), bytes(32), sender=p4.address))
    sim.shares()
    expect("RoundsWrongDPConfig", lambda: fed.commit(r, cid_digest=bytes(32), chunks_root=bytes(32),
                                                     weight=1, dp_config=2, sender=p0.address),
           given=2, expected=1)
    expect("RoundsZeroWeight", lambda: fed.commit(r, cid_digest=bytes(32), chunks_root=bytes(32),
                                                  weight=0, dp_config=1, sender=p0.address))
    expect("RoundsWeightTooLarge", lambda: fed.commit(r, cid_digest=bytes(32), chunks_root=bytes(32),
                                                      weight=2**64 - 1, dp_config=1,
                                                      sender=p0.address),
           weight=2**64 - 1, cap=pol.max_weight)
    sim.commit(drop={3})
    expect("RoundsAlreadyCommitted",
           lambda: fed.commit(r, cid_digest=bytes(32), chunks_root=bytes(32), weight=1,
                              dp_config=1, sender=p0.address))
    sim.run_to(Phase.REVEAL)
    expect("RoundsBadDealer", lambda: fed.reveal(r, [0, 4], [1, 1], sender=p0.address), index=1)
    sim.reveal()
    expect("RoundsBondTooLow", lambda: fed.post_result(
        r, new_adapter_cid=bytes(32), masked_sum_root=bytes(32), result_root=bytes(32), seeds=[],
        bond=1, sender=1), sent=1, required=STAKE)
    expect("RoundsNotRegistered", lambda: fed.post_result(
        r, new_adapter_cid=bytes(32), masked_sum_root=bytes(32), result_root=bytes(32), seeds=[],
        bond=STAKE, sender=OUTSIDER))
    seeds = sim.reconstruct_seeds()  # U3 = {0, 1, 2}, U2 \ U3 = {3}: 3 self + 3 pair seeds
    assert len(seeds) == 6
    # A dishonest aggregator leaving out a dropped peer's pairwise seed (whose
    # mask would then stay in the "sum") or reordering the list is refused.
    expect("RoundsBadSeeds", lambda: sim.post_result(sender=1, seeds=seeds[:-1]),
           given=5, expected=6, firstBad=5)
    expect("RoundsBadSeeds", lambda: sim.post_result(sender=1, seeds=[seeds[1], seeds[0], *seeds[2:]]),
           given=6, expected=6, firstBad=0)
    expect("RoundsBadSeeds", lambda: sim.post_result(
        sender=1, seeds=[*seeds[:3], (0, 1, seeds[3][2]), *seeds[4:]]), given=6, expected=6, firstBad=3)
    sim.post_result(sender=1)
    expect("RoundsChallengeOpen", lambda: fed.finalize(r), round=r)
    expect("RoundsUnauthorized", lambda: hh.transact(fed.rounds.functions.voidResult(r, outsider)))
    # A policy with threshold above participants cannot be deployed.
    expect("RoundsBadPolicy", lambda: hh.deploy(
        "FedRounds", hh.account(0).address, fed.registry.address, fed.ledger.address,
        (3, 4, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0), bytes(32), bytes(32)))
    # Fewer eligible peers than the threshold.
    fed2, cfg2 = setup_federation(hh, peers=2, policy=Policy(participants=5, threshold=3))
    expect("RoundsNotEnoughEligible", lambda: RoundSim(fed2, cfg2), eligible=2, needed=3)


SPENT_SLOT = 2  # PrivacyLedger storage: charger (0), _configs (1), _spent (2)


def _set_spent(hh: Chain, ledger: Any, peer: str, lanes: list[int]) -> None:
    """Write a peer's packed cumulative RDP straight into the ledger's storage
    (Hardhat's hardhat_setStorageAt): seven 32-bit lanes and the prepared flag."""
    from eth_utils import keccak

    slot = keccak(bytes(12) + bytes.fromhex(peer[2:]) + SPENT_SLOT.to_bytes(32, "big"))
    packed = (1 << 224) | sum(v << (32 * i) for i, v in enumerate(lanes))
    resp = hh.w3.provider.make_request("hardhat_setStorageAt", [
        ledger.address, hex(int.from_bytes(slot, "big")), "0x" + packed.to_bytes(32, "big").hex()])
    assert "error" not in resp, resp


def test_over_budget_commit_reverts_through_fedrounds_commit(hh: Chain) -> None:
    """FedRounds.commit charges the ledger last and reverts with the ledger's
    LedgerBudgetExceeded when the charge would pass the cap: the commit is
    undone whole (no commitment, no event, no charge) and the round goes on
    without that peer.

    Selection applies canAfford, so through the contracts alone a selected
    peer can always afford its commit; the guard is defence in depth. To reach
    it the peer's spent budget is raised between selection and commit by a
    storage write, which the check below confirms landed (rdpOf)."""
    fed, cfg = setup_federation(hh, peers=5)
    sim = RoundSim(fed, cfg)
    r = sim.round_id
    sim.keys()
    sim.shares()
    peer = sim.peers[0]
    cap = int(hh.call(fed.ledger.functions.capMicro()))
    _set_spent(hh, fed.ledger, peer.address, [cap] * 7)
    assert list(hh.call(fed.ledger.functions.rdpOf(peer.address))) == [cap] * 7
    spent = fed.epsilon_micro(peer.address)
    assert spent > cap and not fed.can_afford(peer.address, cfg.config_id)
    start = hh.block_number
    expect("LedgerBudgetExceeded", lambda: fed.commit(
        r, cid_digest=b"\x01" * 32, chunks_root=b"\x02" * 32, weight=7, dp_config=cfg.config_id,
        sender=peer.address), peer=peer.address, cap=cap)
    # Nothing of the commit survived its revert.
    assert fed.commit_hash(r, peer.address) == bytes(32)
    assert not [e for e in events(fed, "FedRounds", "UpdateCommitted", start)]
    assert not [e for e in events(fed, "PrivacyLedger", "BudgetCharged", start)]
    assert fed.epsilon_micro(peer.address) == spent
    # The others commit and the round completes with U3 = the other four.
    sim.commit(drop={0})
    sim.run_to(Phase.REVEAL)
    sim.reveal()
    sim.post_result(sender=2)
    sim.run_to(Phase.FINAL)
    charged = {e.args["peer"] for e in events(fed, "PrivacyLedger", "BudgetCharged", start)}
    assert charged == {p.address for p in sim.peers[1:]}
    assert fed.epsilon_micro(peer.address) == spent


def test_data_schema_is_declared_once_by_the_governor(hh: Chain) -> None:
    fed, _ = deploy_federation(hh)
    assert fed.data_schema() == bytes(32)
    schema = bytes.fromhex("ab" * 32)
    expect("RoundsUnauthorized", lambda: fed.set_data_schema(schema, sender=hh.account(2).address),
           caller=hh.account(2).address)
    expect("RoundsDataSchemaAlreadySet", lambda: fed.set_data_schema(bytes(32)), current=bytes(32))
    assert emitted(fed, fed.set_data_schema(schema))["DataSchemaSet"]["schemaHash"] == schema
    assert fed.data_schema() == schema
    expect("RoundsDataSchemaAlreadySet", lambda: fed.set_data_schema(bytes.fromhex("cd" * 32)),
           current=schema)


def test_round_failed_event_names_the_reason(hh: Chain) -> None:
    fed, cfg = setup_federation(hh, peers=5)
    sim = RoundSim(fed, cfg)
    sim.keys(drop={0, 1, 2})
    start = hh.block_number
    sim.run_to(Phase.FAILED)
    assert events(fed, "FedRounds", "RoundFailed", start)[0].args["reason"] == 1


# -- fraud proofs -------------------------------------------------------------------

def test_fraud_errors_and_events(hh: Chain) -> None:
    fed, cfg = setup_federation(hh, peers=5)
    fed.register(sender=7, stake=STAKE)
    sim = RoundSim(fed, cfg)
    sim.keys()
    sim.shares()
    sim.commit(drop={2})
    sim.run_to(Phase.REVEAL)
    sim.reveal()
    r = sim.round_id
    wrong = sim.true_sum().copy()
    wrong[0] += 1 << 20
    sim.post_result(sender=sim.peers[0].address, result=wrong)
    seeds = sim.posted_seeds
    pair = next(i for i, (_, v, _) in enumerate(seeds) if v != 0xFFFF)
    u, v, _ = seeds[pair]
    u0 = seeds[0][0]
    good = sim.commitments(u0)
    expect("FraudSeedsMismatch", lambda: fed.challenge_seed(r, seed_index=0, seeds=[],
                                                            commitments=good, sender=8))
    expect("FraudBadIndex", lambda: fed.challenge_seed(r, seed_index=len(seeds), seeds=seeds,
                                                       commitments=good, sender=8))
    short = Commitments(good.points[:-64], good.proof)
    expect("FraudBadCommitments", lambda: fed.challenge_seed(r, seed_index=0, seeds=seeds,
                                                             commitments=short, sender=8), index=u0)
    other = Commitments(good.points, sim.commitments(v).proof[:-1] + [bytes(32)])
    expect("FraudBadCommitments", lambda: fed.challenge_seed(r, seed_index=0, seeds=seeds,
                                                             commitments=other, sender=8), index=u0)
    key = sim.secret(v, 1)
    expect("FraudBadSecret", lambda: fed.challenge_seed(
        r, seed_index=pair, seeds=seeds, commitments=sim.commitments(v), secret=key ^ 1,
        enc_pk=sim.peers[u].enc.public, mask_pk=sim.peers[u].mask.public, sender=8), index=v)
    expect("FraudBadKeys", lambda: fed.challenge_seed(
        r, seed_index=pair, seeds=seeds, commitments=sim.commitments(v), secret=key,
        enc_pk=bytes(32), mask_pk=bytes(32), sender=8))
    expect("FraudNotProven", lambda: fed.challenge_seed(r, seed_index=0, seeds=seeds,
                                                        commitments=good, sender=8), round=r)
    expect("FraudNotProven", lambda: fed.challenge_seed(
        r, seed_index=pair, seeds=seeds, commitments=sim.commitments(v), secret=key,
        enc_pk=sim.peers[u].enc.public, mask_pk=sim.peers[u].mask.public, sender=8), round=r)
    args = sim.chunk_proof_args(0)
    expect("FraudBadMembers", lambda: fed.challenge_chunk(r, **{**args, "members": args["members"][1:]},
                                                          sender=8))
    bad_member = [type(m)(m.index, bytes(32), m.chunks_root, m.weight, m.chunk, m.proof)
                  for m in args["members"]]
    expect("FraudBadChunk", lambda: fed.challenge_chunk(r, **{**args, "members": bad_member},
                                                        sender=8), i=0)
    expect("FraudBadResultChunk", lambda: fed.challenge_chunk(
        r, **{**args, "result_chunk": args["result_chunk"][:-32]}, sender=8))
    # The round starts from the all-zero adapter (root 0): no previous chunk may be given.
    expect("FraudBadAdapterChunk", lambda: fed.challenge_chunk(
        r, **{**args, "prev_chunk": bytes(len(args["result_chunk"]))}, sender=8))
    ev = emitted(fed, fed.challenge_chunk(r, **args, sender=8))
    assert ev["FraudProven"] == {"round": r, "challenger": hh.account(8).address, "kind": 2,
                                 "detail": 0}
    assert ev["ResultVoided"]["aggregator"] == sim.peers[0].address


def test_dealer_fault_errors_and_events(hh: Chain) -> None:
    """Participant 2 deals shares of a key it never posted, then drops: its
    committed key proves it; a wrong key or another dealer's commitments prove nothing."""
    fed, cfg = setup_federation(hh, peers=5)
    sim = RoundSim(fed, cfg)
    sim.keys()
    cheat = sim.peers[2]
    real = cheat.mask
    cheat.mask = type(real).generate()  # deal shares of another key ...
    sim.shares()
    cheat.mask = real                   # ... while its posted key stays the real one
    sim.commit(drop={2})
    sim.run_to(Phase.REVEAL)
    sim.reveal()
    r = sim.round_id
    good, key = sim.commitments(2), sim.secret(2, 1)
    expect("FraudBadSecret", lambda: fed.prove_dealer_fault(
        r, dealer=2, commitments=good, secret=key ^ 1, enc_pk=cheat.enc.public,
        mask_pk=real.public, sender=8), index=2)
    expect("FraudBadCommitments", lambda: fed.prove_dealer_fault(
        r, dealer=2, commitments=sim.commitments(1), secret=key, enc_pk=cheat.enc.public,
        mask_pk=real.public, sender=8), index=2)
    ev = emitted(fed, fed.prove_dealer_fault(r, dealer=2, commitments=good, secret=key,
                                             enc_pk=cheat.enc.public, mask_pk=real.public,
                                             sender=8))
    assert ev["DealerFaultProven"] == {"round": r, "dealer": cheat.address,
                                       "challenger": hh.account(8).address,
                                       "aggregator": "0x" + "0" * 40, "bondReturned": 0}
    assert ev["FraudProven"]["kind"] == 3 and ev["FraudProven"]["detail"] == 2
    assert ev["RoundFailed"]["reason"] == 8


def test_quorum_grace_event(hh: Chain) -> None:
    """With a quorum grace, the quorum's key post pulls the keys deadline in."""
    pol = Policy(participants=5, threshold=3, keys_blocks=40, shares_blocks=40, commit_blocks=40,
                 reveal_blocks=40, aggregate_blocks=40, challenge_blocks=3, bond=STAKE,
                 quorum_grace_bps=5000)
    fed, cfg = setup_federation(hh, peers=5, policy=pol)
    sim = RoundSim(fed, cfg)
    start = hh.block_number
    full = fed.round_info(sim.round_id).deadline
    sim.keys(drop={4})  # 4 of 5: the quorum t + ceil((5 - t) / 2)
    got = events(fed, "FedRounds", "DeadlineShortened", start)
    assert [(e.args["round"], e.args["phase"]) for e in got] == [(sim.round_id, Phase.KEYS)]
    assert got[0].args["deadline"] == fed.round_info(sim.round_id).deadline < full


def test_bad_share_errors_and_events(hh: Chain) -> None:
    """Dealer 1 commits holder 0 a self-seed share one off its Feldman-committed
    polynomial: the share itself proves it, from Shares on; another holder or
    another value proves nothing. Proven before its commit, the dealer is
    slashed and excluded (its commit reverts); the governor sweeps the stake."""
    fed, cfg = setup_federation(hh, peers=5)
    expect("RegistryNothingSlashed", lambda: fed.sweep_slashed_stake(hh.account(9).address))
    sim = RoundSim(fed, cfg)
    sim.keys()
    sim.shares(off_polynomial=(1, 0))
    r = sim.round_id
    dealt = sim.peers[1].dealt
    assert dealt is not None
    share = ShareProof(0, dealt.shares[0][0], dealt.proof(0, 0))
    c = sim.commitments(1)
    expect("FraudBadHolder", lambda: fed.prove_bad_share(
        r, dealer=1, kind=0, share=ShareProof(7, share.value, share.proof), commitments=c,
        sender=8), i=0)
    expect("FraudBadShare", lambda: fed.prove_bad_share(
        r, dealer=1, kind=0, share=ShareProof(0, share.value ^ 1, share.proof), commitments=c,
        sender=8), i=0)
    ev = emitted(fed, fed.prove_bad_share(r, dealer=1, kind=0, share=share, commitments=c,
                                          sender=8))
    dealer = sim.peers[1].address
    assert ev["BadShareProven"] == {"round": r, "dealer": dealer,
                                    "challenger": hh.account(8).address, "excluded": True}
    assert ev["FraudProven"]["kind"] == 4 and ev["FraudProven"]["detail"] == 1
    assert ev["PeerSlashed"] == {"peer": dealer, "amount": STAKE}
    assert ev["PeerQuarantined"] == {"peer": dealer, "by": fed.rounds.address}
    expect("RoundsDealerExcluded", lambda: fed.commit(
        r, cid_digest=b"d" * 32, chunks_root=b"c" * 32, weight=1, dp_config=cfg.config_id,
        sender=dealer), round=r, dealer=dealer)
    ev = emitted(fed, fed.sweep_slashed_stake(hh.account(9).address))
    assert ev["SlashedStakeSwept"] == {"to": hh.account(9).address, "amount": STAKE}
    assert fed.slashed_stake() == 0


def test_stake_lock_and_slashed_sweep(hh: Chain) -> None:
    fed, cfg = setup_federation(hh, peers=5)
    expect("RoundsNothingSlashed", lambda: fed.sweep_slashed(hh.account(9).address))
    sim = RoundSim(fed, cfg)
    sim.keys()
    sim.shares()
    sim.commit()
    sim.reveal()
    wrong = sim.true_sum().copy()
    wrong[0] += 1 << 20
    liar = sim.peers[0].address
    ev = emitted(fed, sim.post_result(sender=liar, result=wrong))
    assert ev["StakeLockChanged"] == {"peer": liar, "locks": 1}
    fed.request_leave(sender=liar)
    hh.mine(12)
    expect("RegistryStakeLocked", lambda: fed.withdraw_stake(sender=liar), peer=liar)
    fed.challenge_chunk(sim.round_id, **sim.chunk_proof_args(0), sender=8)
    assert fed.stake_locks(liar) == 0
    ev = emitted(fed, fed.sweep_slashed(hh.account(9).address))
    pool = fed.policy().bond - fed.policy().bond * fed.policy().challenger_reward_bps // 10_000
    assert ev["SlashedSwept"] == {"to": hh.account(9).address, "amount": pool}


# -- completeness -----------------------------------------------------------------

def test_availability_errors_and_events(hh: Chain) -> None:
    """Availability (issue 12 item 7): a challenge needs the bond, the
    committer's fields and time left to answer; an answer needs the committed
    vector; the bond goes to the answerer, or back to the challenger once the
    committer was dropped unanswered."""
    pol = Policy(participants=5, threshold=3, keys_blocks=20, shares_blocks=20, commit_blocks=20,
                 reveal_blocks=20, aggregate_blocks=20, challenge_blocks=3, bond=STAKE,
                 availability_blocks=10)
    fed, cfg = setup_federation(hh, peers=5, policy=pol)
    sim = RoundSim(fed, cfg)
    sim.keys()
    sim.shares()
    sim.commit()
    r = sim.round_id
    assert fed.round_info(r).phase == Phase.AVAILABILITY
    p0, p1, p3 = sim.peers[0], sim.peers[1], sim.peers[3]

    def fields(p: Any, **kw: Any) -> dict[str, Any]:
        return {"cid_digest": p.cid_digest, "chunks_root": p.chunks_root, "weight": p.weight,
                **kw}

    def data(p: Any) -> bytes:
        return enc.to_bytes(enc.pad(p.y, sim.ctx.chunk_elems))

    expect("FraudWrongBond", lambda: fed.challenge_availability(
        r, p1.address, **fields(p1), bond=STAKE - 1, sender=8), sent=STAKE - 1, required=STAKE)
    expect("FraudBadCommitment", lambda: fed.challenge_availability(
        r, p1.address, **fields(p1, weight=p1.weight + 1), sender=8), peer=p1.address)
    ev = emitted(fed, fed.challenge_availability(r, p1.address, **fields(p1), sender=8))
    assert ev["AvailabilityChallenged"] == {"round": r, "peer": p1.address,
                                            "challenger": hh.account(8).address, "bond": STAKE}
    expect("FraudNotChallenged", lambda: fed.answer_availability(
        r, p3.address, **fields(p3), data=data(p3), sender=8), peer=p3.address)
    expect("FraudBadData", lambda: fed.answer_availability(
        r, p1.address, **fields(p1), data=data(p3), sender=8), peer=p1.address)
    expect("FraudStillAvailable", lambda: fed.reclaim_availability_bond(r, p1.address, sender=8))
    ev = emitted(fed, fed.answer_availability(r, p1.address, **fields(p1), data=data(p1),
                                              sender=p1.address))
    assert ev["AvailabilityAnswered"]["data"] == data(p1)
    fed.challenge_availability(r, p0.address, **fields(p0), sender=8)
    last = fed.round_info(r).deadline - pol.availability_blocks // 2
    hh.mine(last - hh.block_number)
    expect("RoundsChallengeTooLate", lambda: fed.challenge_availability(
        r, p3.address, **fields(p3), sender=8), lastBlock=last)
    start = hh.block_number
    sim.run_to(Phase.REVEAL)
    dropped = events(fed, "FedRounds", "CommitterDropped", start)
    assert [e.args["peer"] for e in dropped] == [p0.address]
    ev = emitted(fed, fed.reclaim_availability_bond(r, p0.address, sender=9))
    assert ev["AvailabilityBondReclaimed"] == {"round": r, "peer": p0.address,
                                               "challenger": hh.account(8).address, "bond": STAKE}


def declared_errors_and_events() -> set[str]:
    declared: set[str] = set()
    for name in ("PeerRegistry", "PrivacyLedger", "FedRounds", "FraudProofs"):
        for item in load_artifacts()[name].abi:
            if item["type"] in ("error", "event"):
                declared.add(item["name"])
    return declared


def test_every_error_and_event_has_an_example(request: pytest.FixtureRequest) -> None:
    """Checked against the compiled ABIs and what the examples above saw on
    the chain; a name in a comment or an unraised `expect` counts for nothing.
    Runs last in this module, after the examples (pytest keeps file order)."""
    examples = {n for n in vars(request.module) if n.startswith("test_")} - {request.node.name}
    if examples - RAN:
        pytest.fail("the completeness check needs every example in this module to run first "
                    f"(run the whole module); not run: {sorted(examples - RAN)}")
    missing = sorted(declared_errors_and_events() - OBSERVED)
    assert not missing, f"declared in an ABI but never observed in an example: {missing}"
