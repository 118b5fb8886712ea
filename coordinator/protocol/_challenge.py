"""Fraud proofs built from public data (DESIGN §3 step 7).

:func:`find_fraud` re-runs the round with the one aggregation function and
compares with what was posted: a dropped dealer whose key shares do not
give its posted mask key (a dealer-fault proof: the dealer's fault, the
aggregator is not blamed), the first posted seed that differs (a seed
proof), or else the first chunk of the posted new adapter that differs from
f(previous adapter, Σx, Σn) (a chunk proof: it covers a wrong Σx and a wrong
adapter with a correct Σx alike). :func:`challenge` builds the proof's calldata from chain events and
the content store and submits it; any account can.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _encoding as enc
from ._aggregate import (BadShare, RoundPublic, apply_update, aggregate, blob_fixed, bundle_of,
                         collect, load_blob, reconstruct, round_start)
from ..chain._chain import Receipt
from ..chain._contracts import Commitments, Federation, MemberChunk, Phase, ShareProof
from .._errors import AggregationError, DealerFaultError
from ._secagg import SELF
from ..store._store import ContentStore

Seed = tuple[int, int, bytes]


@dataclass(frozen=True)
class Fraud:
    kind: str  # "seed", "chunk" or "dealer"
    index: int  # seed position, chunk index or the faulty dealer's index
    detail: str


def posted_seeds(fed: Federation, round_id: int) -> list[Seed]:
    """The seed list of the round's current result, from its ResultPosted event."""
    info = fed.round_info(round_id)
    latest = None
    for ev in fed.all_events("FedRounds", info.opened_block):
        if ev.name == "ResultPosted" and ev.args["round"] == round_id:
            latest = ev
    if latest is None:
        raise AggregationError(f"round {round_id} has no posted result")
    return [(int(s["u"]), int(s["v"]), bytes(s["value"])) for s in latest.args["seeds"]]


def find_fraud(fed: Federation, store: ContentStore, round_id: int) -> Fraud | None:
    if fed.round_info(round_id).phase != Phase.CHALLENGE:
        raise AggregationError(f"round {round_id} is not in its challenge window")
    pub = collect(fed, round_id)
    try:
        agg = aggregate(pub, store)
    except DealerFaultError as exc:  # the dealer's fault, never the aggregator's
        return Fraud("dealer", exc.dealer, str(exc))
    seeds = posted_seeds(fed, round_id)
    for i, (mine, theirs) in enumerate(zip(agg.seeds, seeds, strict=True)):
        if mine != theirs:  # the contract checked the list's shape; a value differs
            return Fraud("seed", i, f"posted seed {i} ({theirs[0]}, {theirs[1]}) is wrong")
    posted = _posted_adapter(fed, store, round_id, pub)
    want = apply_update(blob_fixed(round_start(fed, store, round_id)), agg)
    ce = pub.ctx.chunk_elems
    a, b = enc.chunk_bytes(want, ce), enc.chunk_bytes(posted, ce)
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y:
            return Fraud("chunk", k, f"chunk {k} of the posted adapter is not f(global, Σx, Σn)")
    return None


def _posted_adapter(fed: Federation, store: ContentStore, round_id: int,
                    pub: RoundPublic) -> np.ndarray:
    res = fed.result_of(round_id)
    posted = blob_fixed(load_blob(store, res.new_adapter_cid))
    if (len(posted) != pub.ctx.padded_length
            or enc.vector_root(posted, pub.ctx.chunk_elems) != res.result_root):
        raise AggregationError("the posted adapter does not match the posted result root: the "
                               "data behind the result is unavailable")
    return posted


def challenge(fed: Federation, store: ContentStore, round_id: int, fraud: Fraud, *,
              sender: str) -> Receipt:
    if fraud.kind == "dealer":
        return prove_dealer_fault(fed, store, round_id, fraud.index, sender=sender)
    pub = collect(fed, round_id)
    seeds = posted_seeds(fed, round_id)
    if fraud.kind == "seed":
        u, v, _ = seeds[fraud.index]
        if v == SELF:  # value·G against C_0: no secret needed
            return fed.challenge_seed(round_id, seed_index=fraud.index, seeds=seeds,
                                      commitments=commitments_proof(pub, store, u),
                                      sender=sender)
        return fed.challenge_seed(round_id, seed_index=fraud.index, seeds=seeds,
                                  commitments=commitments_proof(pub, store, v),
                                  secret=reconstruct(pub, store, v, 1),
                                  enc_pk=pub.enc_pk.get(u, bytes(32)),
                                  mask_pk=pub.mask_pk.get(u, bytes(32)), sender=sender)
    ce = pub.ctx.chunk_elems
    k = fraud.index
    agg = aggregate(pub, store)
    members = []
    for u in sorted(pub.u3):
        chunks = enc.chunk_bytes(agg.masked[u], ce)
        mleaves = [enc.leaf(i, c) for i, c in enumerate(chunks)]
        digest, root, weight = pub.commits[u]
        members.append(MemberChunk(u, digest, root, weight, chunks[k], enc.merkle_proof(mleaves, k)))
    posted = _posted_adapter(fed, store, round_id, pub)
    rchunks = enc.chunk_bytes(posted, ce)
    rleaves = [enc.leaf(i, c) for i, c in enumerate(rchunks)]
    prev_chunk, prev_proof = adapter_chunk_proof(fed, store, round_id, k)
    return fed.challenge_chunk(round_id, chunk_index=k, seeds=seeds, members=members,
                               result_chunk=rchunks[k], result_proof=enc.merkle_proof(rleaves, k),
                               prev_chunk=prev_chunk, prev_proof=prev_proof, sender=sender)


def commitments_proof(pub: RoundPublic, store: ContentStore, dealer: int) -> Commitments:
    """``dealer``'s Feldman commitments with the proof of their leaf (2n)."""
    bundle = bundle_of(pub, store, dealer)
    return Commitments(bundle.commitments, enc.merkle_proof(bundle.leaves, 2 * pub.ctx.n))


def prove_dealer_fault(fed: Federation, store: ContentStore, round_id: int, dealer: int, *,
                       sender: str) -> Receipt:
    """Prove on-chain that dropped ``dealer`` committed to a mask key that is
    not its posted one (what :class:`DealerFaultError` reports): the dealer is
    quarantined and the round fails; a result already posted is cleared and
    its bond returned in full. Anyone can send it."""
    pub = collect(fed, round_id)
    if dealer not in pub.u2 or dealer in pub.u3:
        raise AggregationError(f"participant {dealer} is not a dropped dealer of round {round_id}")
    return fed.prove_dealer_fault(round_id, dealer=dealer,
                                  commitments=commitments_proof(pub, store, dealer),
                                  secret=reconstruct(pub, store, dealer, 1),
                                  enc_pk=pub.enc_pk[dealer], mask_pk=pub.mask_pk[dealer],
                                  sender=sender)


def prove_bad_share(fed: Federation, store: ContentStore, round_id: int, bad: BadShare, *,
                    sender: str) -> Receipt:
    """Prove on-chain that ``bad.dealer`` committed to a share off its
    committed polynomial (a :class:`BadShare` from :func:`aggregate`, or one a
    holder decrypted): the dealer is quarantined and the round goes on."""
    pub = collect(fed, round_id)
    bundle = bundle_of(pub, store, bad.dealer)
    share = ShareProof(bad.holder, bad.value,
                       enc.merkle_proof(bundle.leaves, 2 * bad.holder + bad.kind))
    return fed.prove_bad_share(round_id, dealer=bad.dealer, kind=bad.kind, share=share,
                               commitments=commitments_proof(pub, store, bad.dealer),
                               sender=sender)


def adapter_chunk_proof(fed: Federation, store: ContentStore, round_id: int,
                        k: int) -> tuple[bytes, list[bytes]]:
    """Chunk ``k`` of the adapter the round started from, with its proof
    against the round's adapter root (empty for the all-zero adapter)."""
    info = fed.round_info(round_id)
    if not any(info.adapter_root):
        return b"", []
    chunks = enc.chunk_bytes(blob_fixed(round_start(fed, store, round_id)), info.chunk_elems)
    leaves = [enc.leaf(i, c) for i, c in enumerate(chunks)]
    return chunks[k], enc.merkle_proof(leaves, k)
