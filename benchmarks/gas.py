"""Gas per contract function for rounds of n = 10, 20, 50 participants.

Each n runs one full round on a local anvil node (the embedded py-evm chain
when anvil is missing): registration, open, keys, shares, commit, reveal,
result, finalize, with one peer dropping after sharing (so pairwise seeds of a
dropped peer exist), then a wrong result and both fraud proofs against it, and
a correct Σx with a wrong adapter and the chunk proof (its adapter check)
against it. On a fresh deployment, a round whose dropped dealer dealt shares
of a key other than its posted mask key, and the dealer-fault proof of it
(the dealer's committed key checked against its Feldman commitment, one
on-chain X25519); and a dealer that committed a share off its polynomial,
and the bad-share proof of it (the complaint step).
Commit gas is also measured at two vector lengths to show it does not depend
on model size. Data availability (a policy with an Availability phase): a
challenge, an answer with the whole vector on-chain (at two vector lengths:
it grows with the vector, ~16 gas a calldata byte plus the log), the advance
that drops an unanswered committer, and the bond's reclaim.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from coordinator import connect
from coordinator.protocol import _secagg as sa
from coordinator.chain._contracts import Phase, Policy

from ._common import machine
from .roundsim import STAKE, RoundSim, setup_federation

TARGET_COMMIT = 80_000
TARGET_PROOF = 15_000_000


def _policy(n: int) -> Policy:
    blocks = 4 * n + 20
    return Policy(participants=n, threshold=(2 * n + 2) // 3, keys_blocks=blocks,
                  shares_blocks=blocks, commit_blocks=blocks, reveal_blocks=blocks,
                  aggregate_blocks=blocks, challenge_blocks=3, bond=STAKE)


def _stats(values: list[int]) -> dict[str, int]:
    return {"min": min(values), "median": int(statistics.median(values)), "max": max(values)}


def _dealer_fault(chain: Any, n: int, *, vector_length: int, chunk_elems: int) -> int:
    """Gas of proveDealerFault against dropped participant 0, whose key
    shares do not give its posted mask key."""
    fed, cfg = setup_federation(chain, peers=n, policy=_policy(n))
    sim = RoundSim(fed, cfg, vector_length=vector_length, chunk_elems=chunk_elems)
    sim.keys()
    cheat = sim.peers[0]
    real = cheat.mask
    cheat.mask = sa.X25519Pair.generate()  # deals shares of a key it never posted
    sim.shares()
    cheat.mask = real
    sim.commit(drop={0})
    sim.run_to(Phase.REVEAL)
    sim.reveal()
    rcpt = fed.prove_dealer_fault(sim.round_id, dealer=0, commitments=sim.commitments(0),
                                  secret=sim.secret(0, 1), enc_pk=cheat.enc.public,
                                  mask_pk=real.public, sender=n + 2)
    assert fed.round_info(sim.round_id).phase == Phase.FAILED
    return int(rcpt.gas_used)


def _bad_share(chain: Any, n: int, *, vector_length: int, chunk_elems: int) -> int:
    """Gas of proveBadShare (the complaint a holder files before Reveal):
    dealer 0 committed holder 1 a share off its Feldman-committed polynomial."""
    from coordinator.chain._contracts import ShareProof

    fed, cfg = setup_federation(chain, peers=n, policy=_policy(n))
    sim = RoundSim(fed, cfg, vector_length=vector_length, chunk_elems=chunk_elems)
    sim.keys()
    sim.shares(off_polynomial=(0, 1))
    dealt = sim.peers[0].dealt
    assert dealt is not None
    share = ShareProof(1, dealt.shares[1][0], dealt.proof(1, 0))
    rcpt = fed.prove_bad_share(sim.round_id, dealer=0, kind=0, share=share,
                               commitments=sim.commitments(0), sender=n + 2)
    assert fed.peer_info(sim.peers[0].address)["quarantined"]
    return int(rcpt.gas_used)


def _availability(chain: Any, n: int, *, vector_length: int, chunk_elems: int) -> dict[str, int]:
    """Gas of the data-availability steps in a round of ``n``: participant 0
    is challenged and answers, participant 1 is challenged and dropped."""
    from coordinator import _encoding as enc
    from dataclasses import replace

    fed, cfg = setup_federation(chain, peers=n,
                                policy=replace(_policy(n), availability_blocks=4 * n + 20))
    sim = RoundSim(fed, cfg, vector_length=vector_length, chunk_elems=chunk_elems)
    sim.keys()
    sim.shares()
    sim.commit()
    assert fed.round_info(sim.round_id).phase == Phase.AVAILABILITY
    r = sim.round_id
    gas: dict[str, int] = {}
    for p in sim.peers[:2]:
        gas["challenge"] = fed.challenge_availability(
            r, p.address, cid_digest=p.cid_digest, chunks_root=p.chunks_root, weight=p.weight,
            sender=n + 2).gas_used
    p = sim.peers[0]
    gas["answer"] = fed.answer_availability(
        r, p.address, cid_digest=p.cid_digest, chunks_root=p.chunks_root, weight=p.weight,
        data=enc.to_bytes(enc.pad(p.y, chunk_elems)), sender=p.address).gas_used
    info = fed.round_info(r)
    chain.mine(info.deadline - chain.block_number + 1)
    gas["drop_advance"] = fed.advance(r).gas_used  # drops participant 1, charges, enters Reveal
    gas["reclaim"] = fed.reclaim_availability_bond(r, sim.peers[1].address, sender=n + 2).gas_used
    assert fed.round_info(r).n_commits == n - 1
    return gas


def measure(n: int, *, backend: str, vector_length: int, chunk_elems: int,
            dropped: int = 1, dealer_fault: bool = True) -> dict[str, Any]:
    """One round of ``n`` with ``dropped`` peers leaving after the shares phase."""
    with connect(backend) as chain:
        fed, cfg = setup_federation(chain, peers=n, policy=_policy(n))
        register = fed.register(sender=n + 1, stake=STAKE).gas_used
        fed.register(sender=n + 2, stake=STAKE)
        sim = RoundSim(fed, cfg, vector_length=vector_length, chunk_elems=chunk_elems)
        gas: dict[str, list[int]] = {k: [] for k in ("keys", "shares", "commit", "reveal")}
        start = chain.block_number
        sim.keys()
        sim.shares()
        sim.commit(drop=set(range(n - dropped, n)))
        sim.run_to(Phase.REVEAL)
        sim.reveal()
        for name, event in (("keys", "KeysPosted"), ("shares", "SharesPosted"),
                            ("commit", "UpdateCommitted"), ("reveal", "SharesRevealed")):
            for ev in fed.events("FedRounds", event, start):
                gas[name].append(int(chain.w3.eth.get_transaction_receipt(ev.tx_hash)["gasUsed"]))
        # openRound (freezes the pool, names the seed's block), then
        # selectParticipants (draws and starts the round: RoundOpened).
        scheduled = fed.events("FedRounds", "SelectionScheduled", 0)[-1]
        open_gas_used = int(chain.w3.eth.get_transaction_receipt(scheduled.tx_hash)["gasUsed"])
        opened = fed.events("FedRounds", "RoundOpened", 0)[-1]
        select_gas_used = int(chain.w3.eth.get_transaction_receipt(opened.tx_hash)["gasUsed"])

        wrong = sim.true_sum().copy()
        wrong[5] += 1 << 20  # moves the adapter: Σx is only proven through it
        liar = sim.peers[0].address
        post_wrong = sim.post_result(sender=liar, result=wrong).gas_used
        chunk = fed.challenge_chunk(sim.round_id, **sim.chunk_proof_args(0), sender=n + 2)
        # Honest re-aggregation with a wrong pairwise seed, then the seed proof.
        seeds = sim.reconstruct_seeds()
        pair = next(i for i, (_, v, _) in enumerate(seeds) if v != sa.SELF)
        u, v, val = seeds[pair]
        seeds[pair] = (u, v, bytes(32))
        sim.post_result(sender=sim.peers[1].address, seeds=seeds)
        seed_pair = fed.challenge_seed(sim.round_id, seed_index=pair, seeds=seeds,
                                       commitments=sim.commitments(v),
                                       secret=sim.secret(v, 1),
                                       enc_pk=sim.peers[u].enc.public,
                                       mask_pk=sim.peers[u].mask.public, sender=n + 2)
        seeds = sim.reconstruct_seeds()
        u0 = seeds[0][0]
        seeds[0] = (u0, sa.SELF, bytes(32))
        sim.post_result(sender=sim.peers[2].address, seeds=seeds)
        seed_self = fed.challenge_seed(sim.round_id, seed_index=0, seeds=seeds,
                                       commitments=sim.commitments(u0), sender=n + 2)
        # Three aggregators were slashed (and quarantined) above; an honest one
        # is any registered peer still eligible (a round of n = 3 has no
        # fourth participant; the spare accounts n + 1, n + 2 are registered).
        def honest() -> str:
            return next(a for a in [p.address for p in sim.peers] + fed.peers() if fed.is_eligible(a))

        # The correct Σx with a wrong adapter: the chunk proof's adapter check.
        bad_adapter = sim.true_adapter().copy()
        bad_adapter[3] += 1
        sim.post_result(sender=honest(), adapter=bad_adapter)
        adapter = fed.challenge_chunk(sim.round_id, **sim.chunk_proof_args(0), sender=n + 2)
        post_right = sim.post_result(sender=honest()).gas_used
        info = fed.round_info(sim.round_id)
        chain.mine(info.deadline - chain.block_number + 1)
        finalize = fed.finalize(sim.round_id).gas_used
        assert np.array_equal(sim.posted_result, sim.true_sum())
        fault = (_dealer_fault(chain, n, vector_length=vector_length, chunk_elems=chunk_elems)
                 if dealer_fault else None)
        bad_share = (_bad_share(chain, n, vector_length=vector_length, chunk_elems=chunk_elems)
                     if dealer_fault else None)
        avail = (_availability(chain, n, vector_length=vector_length, chunk_elems=chunk_elems)
                 if dealer_fault else None)
        return {
            "n": n, "t": sim.ctx.t, "survivors": len(sim.u3), "dropped": dropped,
            "seeds": len(sim.posted_seeds), "backend": chain.backend,
            "vector_length": vector_length, "chunk_elems": chunk_elems,
            "register": register, "open": open_gas_used, "select": select_gas_used,
            "keys": _stats(gas["keys"]), "shares": _stats(gas["shares"]),
            "commit": _stats(gas["commit"]), "reveal": _stats(gas["reveal"]),
            "post_result_wrong": post_wrong, "post_result": post_right, "finalize": finalize,
            "chunk_proof": chunk.gas_used, "seed_proof_self": seed_self.gas_used,
            "seed_proof_pair": seed_pair.gas_used, "chunk_proof_wrong_adapter": adapter.gas_used,
            "dealer_fault_proof": fault, "bad_share_proof": bad_share,
            "availability": avail,
        }


def run(ns: tuple[int, ...] = (10, 20, 50), *, backend: str = "anvil",
        chunk_elems: int = 256) -> dict[str, Any]:
    rows = [measure(n, backend=backend, vector_length=4 * chunk_elems, chunk_elems=chunk_elems)
            for n in ns]
    # Worst case for the chunk proof: the most dropouts a round survives
    # (n − t after sharing), so the most pairwise seeds to expand on-chain.
    big = max(ns)
    worst = _policy(big).threshold
    rows.append(measure(big, backend=backend, vector_length=4 * chunk_elems,
                        chunk_elems=chunk_elems, dropped=big - worst))
    # Commit gas vs model size: same n, 25x longer vector.
    small = measure(ns[0], backend=backend, vector_length=chunk_elems, chunk_elems=chunk_elems,
                    dealer_fault=False)
    large = measure(ns[0], backend=backend, vector_length=25 * chunk_elems, chunk_elems=chunk_elems,
                    dealer_fault=False)
    worst_proof = max(max(r["chunk_proof"], r["seed_proof_pair"], r["seed_proof_self"],
                          r["chunk_proof_wrong_adapter"], r["dealer_fault_proof"],
                          r["bad_share_proof"]) for r in rows)
    worst_commit = max(r["commit"]["max"] for r in rows)
    # An answer carries the whole vector: its gas against the vector's size.
    with connect(backend) as chain:
        answer_large = _availability(chain, ns[0], vector_length=25 * chunk_elems,
                                     chunk_elems=chunk_elems)["answer"]
    return {
        "bench": "gas", "machine": machine(), "rows": rows,
        "commit_vs_model_size": {
            "vector_length": [small["vector_length"], large["vector_length"]],
            "commit_median": [small["commit"]["median"], large["commit"]["median"]],
        },
        "availability_answer_vs_model_size": {
            "vector_length": [4 * chunk_elems, 25 * chunk_elems],
            "answer": [rows[0]["availability"]["answer"], answer_large],
            "gas_per_kib": round((answer_large - rows[0]["availability"]["answer"])
                                 / (84 * chunk_elems / 1024)),
        },
        "targets": {
            "commit_max": worst_commit, "commit_target": TARGET_COMMIT,
            "commit_ok": worst_commit <= TARGET_COMMIT,
            "proof_max": worst_proof, "proof_target": TARGET_PROOF,
            "proof_ok": worst_proof <= TARGET_PROOF,
            "ok": worst_commit <= TARGET_COMMIT and worst_proof <= TARGET_PROOF,
        },
        "command": f"fedledger bench gas --sizes {','.join(map(str, ns))} --backend {backend}",
    }
