"""The deterministic aggregation of a round from public data: the one
implementation the aggregator runs and auditors re-run (DESIGN §3.6–3.7).

Public data is what the chain's events and the content store hold: the
participants, their keys, share commitments and bundles (leaf hashes in
clear), commitments, the revealed shares, and the masked vectors. Nothing
here uses a peer's private state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import _encoding as enc
from . import _secagg as sa
from ..store._cid import CID, DAG_PB, RAW, AddOptions
from ..chain._contracts import Federation, Phase, RoundInfo
from .._errors import AggregationError, ContentMismatchError, FedLedgerError, IpfsError
from ..store._store import ContentStore
from ._wire import AdapterBlob, ShareBundle

log = logging.getLogger("fedledger.aggregate")



def cid_for(digest: bytes, size: int, opts: AddOptions) -> CID:
    """The CID of content of ``size`` bytes with this sha2-256 root digest."""
    return CID(RAW if size <= opts.chunk_size else DAG_PB, digest)


def cat_digest(store: ContentStore, digest: bytes) -> bytes:
    """The blob of unknown size whose root has this sha2-256 digest: a raw
    leaf or a dag-pb root. Block stores key blocks by multihash, so asking
    for the wrong codec still finds the root block; the content check of
    ``cat`` then tells which codec it was. Works over the network too."""
    last: Exception | None = None
    # dag-pb first: the root block of a dag-pb file also hashes to the digest,
    # so reading it as a raw leaf would "verify" and return the node bytes.
    # Reading a raw leaf as dag-pb fails (or yields bytes whose re-layout
    # differs), so this order never accepts the wrong thing.
    for codec in (DAG_PB, RAW):
        try:
            return store.cat(CID(codec, digest))
        except FedLedgerError as exc:
            last = exc
    raise ContentMismatchError(f"no content with root digest 0x{digest.hex()} can be fetched: "
                               f"{last}")


@dataclass
class RoundPublic:
    """Everything public about one round."""

    info: RoundInfo
    ctx: sa.RoundContext
    participants: list[str]
    enc_pk: dict[int, bytes] = field(default_factory=dict)
    mask_pk: dict[int, bytes] = field(default_factory=dict)
    share_root: dict[int, bytes] = field(default_factory=dict)
    bundle_digest: dict[int, bytes] = field(default_factory=dict)
    commits: dict[int, tuple[bytes, bytes, int]] = field(default_factory=dict)
    reveals: dict[int, dict[int, int]] = field(default_factory=dict)

    @property
    def u1(self) -> list[int]:
        return sorted(self.enc_pk)

    @property
    def u2(self) -> list[int]:
        return sorted(self.share_root)

    @property
    def u3(self) -> list[int]:
        return sorted(self.commits)


def collect(fed: Federation, round_id: int) -> RoundPublic:
    """Read a round's public data from events (narrow block range)."""
    info = fed.round_info(round_id)
    parts = fed.participants(round_id)
    index = {a: i for i, a in enumerate(parts)}
    ctx = sa.RoundContext(fed.chain.chain_id, fed.rounds.address, round_id, info.n, info.t,
                          info.vector_length, info.chunk_elems, info.seed)
    pub = RoundPublic(info, ctx, parts)
    for ev in fed.all_events("FedRounds", info.opened_block):
        a = ev.args
        if a.get("round") != round_id:
            continue
        if ev.name == "KeysPosted":
            i = index[a["peer"]]
            pub.enc_pk[i], pub.mask_pk[i] = bytes(a["encPk"]), bytes(a["maskPk"])
        elif ev.name == "SharesPosted":
            i = index[a["peer"]]
            pub.share_root[i] = bytes(a["shareRoot"])
            pub.bundle_digest[i] = bytes(a["bundleCid"])
        elif ev.name == "UpdateCommitted":
            pub.commits[index[a["peer"]]] = (bytes(a["cidDigest"]), bytes(a["chunksRoot"]),
                                             int(a["weight"]))
        elif ev.name == "SharesRevealed":
            pub.reveals[index[a["peer"]]] = dict(zip(
                (int(d) for d in a["dealers"]), (int(s) for s in a["shares"])))
    return pub


@dataclass(frozen=True)
class Aggregate:
    """The outcome of unmasking a round."""

    seeds: list[tuple[int, int, bytes]]
    masked_sum: np.ndarray
    total: np.ndarray  # Σ x_u in Z_2^32, padded
    weight_sum: int
    rejected_shares: list[tuple[int, int, int]]  # (dealer, holder, kind)
    masked: dict[int, np.ndarray]


def fetch_masked(pub: RoundPublic, store: ContentStore, u: int) -> np.ndarray:
    digest, root, _ = pub.commits[u]
    size = 4 * pub.ctx.padded_length
    cid = cid_for(digest, size, store.opts)
    try:
        data = store.cat(cid)
    except ContentMismatchError as exc:
        raise AggregationError(f"masked vector of participant {u} ({cid}) is corrupt: {exc}") from None
    except IpfsError as exc:
        raise AggregationError(f"masked vector of participant {u} ({cid}) cannot be fetched: {exc}") from None
    y = enc.from_bytes(data)
    if len(y) != pub.ctx.padded_length:
        raise AggregationError(f"masked vector of participant {u} has {len(y)} elements, "
                               f"expected {pub.ctx.padded_length}")
    if enc.vector_root(y, pub.ctx.chunk_elems) != root:
        raise AggregationError(f"masked vector of participant {u} does not match its committed "
                               f"Merkle root")
    return y


def bundle_leaves(pub: RoundPublic, store: ContentStore, dealer: int) -> tuple[bytes, ...]:
    bundle = ShareBundle.from_bytes(cat_digest(store, pub.bundle_digest[dealer]))
    if enc.merkle_root(bundle.leaves) != pub.share_root[dealer]:
        raise AggregationError(f"share bundle of participant {dealer} does not match its commitment")
    return bundle.leaves


def _reconstruct(pub: RoundPublic, store: ContentStore, dealer: int, kind: int,
                 rejected: list[tuple[int, int, int]]) -> int:
    leaves = bundle_leaves(pub, store, dealer)
    points: dict[int, int] = {}
    for holder in sorted(pub.reveals):
        value = pub.reveals[holder].get(dealer)
        if value is None:
            continue
        leaf = enc.share_leaf(chain_id=pub.ctx.chain_id, rounds=pub.ctx.rounds,
                              round_id=pub.ctx.round_id, dealer=pub.participants[dealer],
                              holder=holder, kind=kind, share=value)
        if leaves[2 * holder + kind] != leaf:
            rejected.append((dealer, holder, kind))
            log.warning("round %d: share of dealer %d revealed by %d does not verify; excluded",
                        pub.ctx.round_id, dealer, holder)
            continue
        points[holder + 1] = value
        if len(points) == pub.ctx.t:
            return enc.shamir_reconstruct(points)
    raise AggregationError(f"only {len(points)} verifying shares of participant {dealer}'s "
                           f"{'self-mask seed' if kind == 0 else 'mask key'}; {pub.ctx.t} needed")


def aggregate(pub: RoundPublic, store: ContentStore) -> Aggregate:
    """Unmask Σ x over U3 exactly, from public data only."""
    u2, u3 = pub.u2, pub.u3
    sa.check_survivors(pub.ctx, u3)
    g = pub.ctx.graph
    rejected: list[tuple[int, int, int]] = []
    seeds: list[tuple[int, int, bytes]] = []
    for u in u3:
        seeds.append((u, sa.SELF, sa.seed_bytes(_reconstruct(pub, store, u, 0, rejected))))
    for v in sorted(set(u2) - set(u3)):
        sk_v = enc.int_to_scalar(_reconstruct(pub, store, v, 1, rejected))
        for u in g.neighbours(v, u3):
            seeds.append((u, v, sa.pair_seed(pub.ctx, u, v, sk_v, pub.mask_pk[u])))
    masked = {u: fetch_masked(pub, store, u) for u in u3}
    ysum = sa.sum_vectors(masked.values())
    total = sa.unmask(pub.ctx, ysum, seeds)
    weight = sum(w for _, _, w in pub.commits.values())
    return Aggregate(seeds, ysum, total, weight, rejected, masked)


def apply_update(global_flat: np.ndarray, agg: Aggregate, *, frac_bits: int) -> np.ndarray:
    """FedAvg: the new adapter = global + dequantize(Σ x) / Σ n_u."""
    n = len(global_flat)
    delta = enc.dequantize(agg.total[:n], frac_bits=frac_bits) / max(agg.weight_sum, 1)
    return (global_flat.astype(np.float64) + delta).astype(np.float32)


def load_blob(store: ContentStore, digest: bytes) -> AdapterBlob:
    return AdapterBlob.from_bytes(cat_digest(store, digest))


def load_adapter(store: ContentStore, digest: bytes) -> np.ndarray:
    return np.frombuffer(load_blob(store, digest).values, dtype="<f4").astype(np.float32)


def adapter_bytes(round_id: int, flat: np.ndarray, total: np.ndarray | None = None) -> bytes:
    agg = b"" if total is None else enc.to_bytes(total)
    return AdapterBlob(round_id, np.asarray(flat, dtype="<f4").tobytes(), agg).to_bytes()


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


def verify(fed: Federation, store: ContentStore, round_id: int) -> list[Check]:
    """Re-run a round's aggregation from public data and compare it with the
    posted result, check by check; the first wrong chunk is named."""
    checks: list[Check] = []
    info = fed.round_info(round_id)
    if info.phase not in (Phase.CHALLENGE, Phase.FINAL):
        return [Check("round has a result", False, f"phase is {info.phase.name}")]
    res = fed.result_of(round_id)
    pub = collect(fed, round_id)
    try:
        agg = aggregate(pub, store)
    except FedLedgerError as exc:
        return [Check("aggregate recomputes", False, str(exc))]
    checks.append(Check("masked vectors match CIDs and roots", True, f"{len(pub.u3)} vectors"))
    checks.append(Check("revealed shares verify", not agg.rejected_shares,
                        f"{len(agg.rejected_shares)} rejected" if agg.rejected_shares else "all verify"))
    checks.append(Check("posted seeds", enc.seeds_hash(agg.seeds) == res.seeds_hash,
                        f"{len(agg.seeds)} seeds"))
    ce = pub.ctx.chunk_elems
    checks.append(Check("masked sum root", enc.vector_root(agg.masked_sum, ce) == res.masked_sum_root))
    try:
        blob = load_blob(store, res.new_adapter_cid)
    except FedLedgerError as exc:
        return checks + [Check("posted adapter and aggregate fetch", False, str(exc))]
    posted = enc.from_bytes(blob.aggregate)
    ok_root = len(posted) == len(agg.total) and enc.vector_root(posted, ce) == res.result_root
    checks.append(Check("posted aggregate matches the result root", ok_root))
    first_bad = _first_bad_chunk(agg.total, posted, ce)
    checks.append(Check("aggregate, chunk by chunk", first_bad is None,
                        "" if first_bad is None else f"first wrong chunk: {first_bad}"))
    try:
        new = np.frombuffer(blob.values, dtype="<f4").astype(np.float32)
        if any(info.adapter_cid):
            want = apply_update(load_adapter(store, info.adapter_cid), agg, frac_bits=info.frac_bits)
            ok = new.shape == want.shape and np.array_equal(new, want)
            checks.append(Check("new adapter = global + Σx / Σn", ok,
                                "" if ok else f"max difference {np.max(np.abs(new - want)):.3g}"))
    except FedLedgerError as exc:
        checks.append(Check("new adapter", False, str(exc)))
    return checks


def _first_bad_chunk(ours: np.ndarray, posted: np.ndarray, chunk_elems: int) -> int | None:
    a, b = enc.chunk_bytes(ours, chunk_elems), enc.chunk_bytes(posted, chunk_elems)
    for i in range(max(len(a), len(b))):
        if i >= len(a) or i >= len(b) or a[i] != b[i]:
            return i
    return None
