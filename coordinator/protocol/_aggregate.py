"""The deterministic aggregation of a round from public data: the one
implementation the aggregator runs and auditors re-run (DESIGN §3.6–3.7).

Public data is what the chain's events and the content store hold: the
participants, their keys, share commitments and bundles (leaf hashes in
clear), commitments, the revealed shares, and the masked vectors. Nothing
here uses a peer's private state.

All of it was written by other parties, so all of it is checked before use
(issue 11): every event field's type and range (a bad field drops that
event, logged), every fetch's size (bounded by what the round implies:
vector length, participant count), every bundle's shape against the round.
What fails a check is skipped with a logged reason or, where the round
cannot be unmasked without it, raises :class:`AggregationError` — never
anything else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import _encoding as enc
from .. import _feldman as fd
from . import _secagg as sa
from ..store._cid import CID, DAG_PB, RAW, AddOptions
from ..chain._contracts import Federation, Phase, RoundInfo
from .._errors import (AggregationError, ContentMismatchError, ContentTooLargeError,
                       DealerFaultError, FedLedgerError, InvalidContentError, IpfsError)
from ..store._store import ContentStore
from ._wire import AdapterBlob, ShareBundle

log = logging.getLogger("fedledger.aggregate")



def cid_for(digest: bytes, size: int, opts: AddOptions) -> CID:
    """The CID of content of ``size`` bytes with this sha2-256 root digest."""
    return CID(RAW if size <= opts.chunk_size else DAG_PB, digest)


def cat_digest(store: ContentStore, digest: bytes, *, max_bytes: int | None = None) -> bytes:
    """The blob of unknown size whose root has this sha2-256 digest: a raw
    leaf or a dag-pb root. Block stores key blocks by multihash, so asking
    for the wrong codec still finds the root block; the content check of
    ``cat`` then tells which codec it was. Works over the network too."""
    last: Exception | None = None
    small = max_bytes is not None and max_bytes <= store.opts.chunk_size
    # dag-pb first: the root block of a dag-pb file also hashes to the digest,
    # so reading it as a raw leaf would "verify" and return the node bytes.
    # Reading a raw leaf as dag-pb fails (or yields bytes whose re-layout
    # differs), so this order never accepts the wrong thing.
    # Content that fits one chunk is always a raw leaf: dag-pb is not tried.
    for codec in ((RAW,) if small else (DAG_PB, RAW)):
        try:
            return store.cat(CID(codec, digest), max_bytes=max_bytes)
        except ContentTooLargeError:
            raise
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
    # committers that left U3 unanswered at the end of Availability
    dropped: set[int] = field(default_factory=set)
    # masked vectors posted on-chain in answer to an availability challenge
    # (the padded vector's bytes; checked against the commitment when used)
    answered: dict[int, bytes] = field(default_factory=dict)

    @property
    def u1(self) -> list[int]:
        return sorted(self.enc_pk)

    @property
    def u2(self) -> list[int]:
        return sorted(self.share_root)

    @property
    def u3(self) -> list[int]:
        return sorted(self.commits)


def _b32(value: object) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise ValueError("not 32 bytes")
    return bytes(value)


def collect(fed: Federation, round_id: int) -> RoundPublic:
    """Read a round's public data from events (narrow block range). An event
    whose fields do not check (a non-participant, a wrong-length key or
    digest, a share outside the field, a zero weight) is dropped with a
    logged reason; the first event of each kind per participant counts."""
    info = fed.round_info(round_id)
    parts = fed.participants(round_id)
    index = {a: i for i, a in enumerate(parts)}
    ctx = sa.RoundContext(fed.chain.chain_id, fed.rounds.address, round_id, info.n, info.t,
                          info.vector_length, info.chunk_elems, info.seed)
    pub = RoundPublic(info, ctx, parts)
    events = fed.all_events("FedRounds", info.opened_block)
    if info.phase >= Phase.AVAILABILITY:  # answers exist only from Availability on
        # By name over the round's blocks, never cached: each answer carries a
        # whole vector, and a daemon lives for many rounds.
        events += fed.events("FraudProofs", "AvailabilityAnswered", info.opened_block)
    for ev in events:
        a = ev.args
        if a.get("round") != round_id:
            continue
        try:
            _take(pub, index, ev.name, a)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("round %d: %s event %s ignored: %s", round_id, ev.name,
                        getattr(ev, "tx_hash", ""), exc)
    for i in pub.dropped:  # CommitterDropped comes after its commit, in any order of reading
        pub.commits.pop(i, None)
    return pub


def _take(pub: RoundPublic, index: dict[str, int], name: str, a: dict[str, object]) -> None:
    if name not in ("KeysPosted", "SharesPosted", "UpdateCommitted", "SharesRevealed",
                    "CommitterDropped", "AvailabilityAnswered"):
        return
    peer = a.get("peer")
    if peer not in index:
        raise ValueError(f"{peer!r} is not a participant")
    i = index[str(peer)]
    if name == "CommitterDropped":
        pub.dropped.add(i)
        return
    if name == "AvailabilityAnswered":
        data = a["data"]
        if not isinstance(data, (bytes, bytearray)) or len(data) != 4 * pub.ctx.padded_length:
            raise ValueError(f"answered vector is not {4 * pub.ctx.padded_length} bytes")
        pub.answered.setdefault(i, bytes(data))
        return
    if name == "KeysPosted" and i not in pub.enc_pk:
        e, m = _b32(a["encPk"]), _b32(a["maskPk"])
        pub.enc_pk[i], pub.mask_pk[i] = e, m
    elif name == "SharesPosted" and i not in pub.share_root:
        root, digest = _b32(a["shareRoot"]), _b32(a["bundleCid"])
        pub.share_root[i], pub.bundle_digest[i] = root, digest
    elif name == "UpdateCommitted" and i not in pub.commits:
        weight = a["weight"]
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 < weight < 2**64:
            raise ValueError(f"weight {weight!r} is not a positive 64-bit integer")
        pub.commits[i] = (_b32(a["cidDigest"]), _b32(a["chunksRoot"]), weight)
    elif name == "SharesRevealed" and i not in pub.reveals:
        dealers, shares = list(a["dealers"]), list(a["shares"])  # type: ignore[call-overload]
        if len(dealers) != len(shares):
            raise ValueError("dealers and shares differ in length")
        got: dict[int, int] = {}
        for d, v in zip(dealers, shares):
            if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d < len(index):
                raise ValueError(f"dealer {d!r} is out of range")
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < enc.FIELD_P:
                raise ValueError("a share is outside the field")
            if d in got:
                raise ValueError(f"dealer {d} revealed twice")
            got[d] = v
        pub.reveals[i] = got


@dataclass(frozen=True)
class Aggregate:
    """The outcome of unmasking a round."""

    seeds: list[tuple[int, int, bytes]]
    masked_sum: np.ndarray
    total: np.ndarray  # Σ x_u in Z_2^32, padded
    weight_sum: int
    rejected_shares: list[tuple[int, int, int]]  # (dealer, holder, kind)
    masked: dict[int, np.ndarray]
    bad_shares: list[BadShare] = field(default_factory=list)  # provable dealer faults


def fetch_masked(pub: RoundPublic, store: ContentStore, u: int) -> np.ndarray:
    """Survivor ``u``'s masked vector: the one it answered a challenge with
    on-chain if any (the contract checked it against the committed root), else
    from the store; checked against the committed root either way."""
    digest, root, _ = pub.commits[u]
    size = 4 * pub.ctx.padded_length
    cid = cid_for(digest, size, store.opts)
    try:
        data = pub.answered[u] if u in pub.answered else store.cat(cid, max_bytes=size)
    except ContentMismatchError as exc:
        raise AggregationError(f"masked vector of participant {u} ({cid}) is corrupt: {exc}") from None
    except IpfsError as exc:
        raise AggregationError(f"masked vector of participant {u} ({cid}) cannot be fetched: {exc}") from None
    if len(data) != size:  # checked before decoding: a ragged blob is no ValueError
        raise AggregationError(f"masked vector of participant {u} has {len(data)} bytes, "
                               f"expected {size}")
    y = enc.from_bytes(data)
    if enc.vector_root(y, pub.ctx.chunk_elems) != root:
        raise AggregationError(f"masked vector of participant {u} does not match its committed "
                               f"Merkle root")
    return y


def fetch_bundle(pub: RoundPublic, store: ContentStore, dealer: int) -> ShareBundle:
    """Dealer's bundle, size-bounded, decoded, checked against the round and
    against its on-chain share root; InvalidContentError (or an IpfsError
    when it cannot be fetched) otherwise."""
    data = cat_digest(store, pub.bundle_digest[dealer], max_bytes=ShareBundle.max_bytes(pub.ctx.n))
    bundle = ShareBundle.from_bytes(data)
    ctx = pub.ctx
    bundle.check(round_id=ctx.round_id, dealer=dealer, n=ctx.n, t=ctx.t)
    if enc.merkle_root(bundle.leaves) != pub.share_root[dealer]:
        raise InvalidContentError(f"share bundle of participant {dealer} does not match its "
                                  "on-chain share root")
    # The commitments are the ones under the root (leaf 2n), and G1 points:
    # otherwise no share or secret of this dealer can ever be checked.
    if bundle.leaves[2 * ctx.n] != enc.commitment_leaf(
            chain_id=ctx.chain_id, rounds=ctx.rounds, round_id=ctx.round_id,
            dealer=pub.participants[dealer], commitments=bundle.commitments):
        raise InvalidContentError(f"share bundle of participant {dealer} has commitments that "
                                  "are not the ones under its share root")
    try:
        for kind in (0, 1):
            for c in sa.commitments_of(ctx, bundle.commitments, kind):
                fd.decode_point(c)
    except fd.CommitmentError as exc:
        raise InvalidContentError(f"share bundle of participant {dealer} has a commitment that "
                                  f"is not a G1 point: {exc}") from None
    # Holders are bounded to the dealer's neighbours in U1: a leaf for anyone
    # else could only serve to "prove" a correct seed wrong.
    allowed = set(sa.holders_of(ctx, dealer, pub.u1))
    zero = bytes(32)
    for i, lf in enumerate(bundle.leaves[:2 * ctx.n]):
        if lf != zero and i // 2 not in allowed:
            raise InvalidContentError(f"share bundle of participant {dealer} has a share leaf for "
                                      f"holder {i // 2}, which is not its neighbour in U1")
    for h, _ in bundle.boxes:
        if h not in allowed:
            raise InvalidContentError(f"share bundle of participant {dealer} has a box for "
                                      f"holder {h}, which is not its neighbour in U1")
    return bundle


def bundle_of(pub: RoundPublic, store: ContentStore, dealer: int) -> ShareBundle:
    try:
        return fetch_bundle(pub, store, dealer)
    except FedLedgerError as exc:
        raise AggregationError(f"share bundle of participant {dealer} is unusable: {exc}") from None


def revealed_shares(pub: RoundPublic, store: ContentStore, dealer: int, kind: int
                    ) -> Iterator[tuple[int, int, bool, ShareBundle]]:
    """(holder, share, matches its leaf, bundle) for each revealed share of
    ``dealer``'s secret of ``kind``, in holder order; the third field says
    whether it is the share the dealer committed to for that holder (whether
    it lies on the committed polynomial is a separate check)."""
    bundle = bundle_of(pub, store, dealer)
    leaves = bundle.leaves
    for holder in sorted(pub.reveals):
        value = pub.reveals[holder].get(dealer)
        if value is None:
            continue
        leaf = enc.share_leaf(chain_id=pub.ctx.chain_id, rounds=pub.ctx.rounds,
                              round_id=pub.ctx.round_id, dealer=pub.participants[dealer],
                              holder=holder, kind=kind, share=value)
        yield holder, value, leaves[2 * holder + kind] == leaf, bundle


@dataclass(frozen=True)
class BadShare:
    """A share the dealer committed to (its leaf) that is not on its committed
    polynomial: public evidence against the dealer (``proveBadShare``)."""

    dealer: int
    holder: int
    kind: int
    value: int


def reconstruct(pub: RoundPublic, store: ContentStore, dealer: int, kind: int,
                rejected: list[tuple[int, int, int]] | None = None,
                bad: list[BadShare] | None = None) -> int:
    """The committed secret of ``kind`` of ``dealer`` from revealed shares.

    Fast path: t shares that match their leaves are interpolated and the
    result checked against C_0 (one multiplication). If it is not the
    committed secret, the dealer dealt a share off its polynomial: each share
    is then checked on its own, those off the polynomial are dropped (and
    reported in ``bad``), and more are taken. The result always equals the
    dealer's commitment; no choice of shares by anyone changes it."""
    rejected = [] if rejected is None else rejected
    points: dict[int, int] = {}
    commitments: tuple[bytes, ...] = ()
    for holder, value, ok, bundle in revealed_shares(pub, store, dealer, kind):
        commitments = sa.commitments_of(pub.ctx, bundle.commitments, kind)
        if not ok:
            rejected.append((dealer, holder, kind))
            log.warning("round %d: share of dealer %d revealed by %d does not match its leaf; "
                        "excluded", pub.ctx.round_id, dealer, holder)
            continue
        points[holder + 1] = value
        if len(points) < pub.ctx.t:
            continue
        secret = enc.shamir_reconstruct(points)
        if fd.secret_matches(commitments, secret, threshold=pub.ctx.t):
            return secret
        for x in sorted(points):
            if not fd.verify_share(commitments, x, points[x], threshold=pub.ctx.t):
                rejected.append((dealer, x - 1, kind))
                if bad is not None:
                    bad.append(BadShare(dealer, x - 1, kind, points[x]))
                log.warning("round %d: dealer %d's committed share for %d is off its committed "
                            "polynomial; excluded (provable)", pub.ctx.round_id, dealer, x - 1)
                del points[x]
    raise AggregationError(f"only {len(points)} verifying shares of participant {dealer}'s "
                           f"{'self-mask seed' if kind == 0 else 'mask key'}; {pub.ctx.t} needed")


def aggregate(pub: RoundPublic, store: ContentStore,
              masked: dict[int, np.ndarray] | None = None, *,
              check_mask_keys: bool = True) -> Aggregate:
    """Unmask Σ x over U3 exactly, from public data only (``masked``: the
    vectors of U3 already fetched and checked with :func:`fetch_masked`).

    A dropped dealer's reconstructed mask key must be the key behind its
    posted mask public key; otherwise the survivors' pairwise masks with it
    cannot be removed and :class:`DealerFaultError` names the dealer (prove it
    with :func:`coordinator.protocol._challenge.prove_dealer_fault`).
    ``check_mask_keys=False`` is only for tests that play an aggregator that
    does not check."""
    u2, u3 = pub.u2, pub.u3
    sa.check_survivors(pub.ctx, u3)
    g = pub.ctx.graph
    rejected: list[tuple[int, int, int]] = []
    bad: list[BadShare] = []
    seeds: list[tuple[int, int, bytes]] = []
    for u in u3:
        seeds.append((u, sa.SELF, sa.seed_bytes(reconstruct(pub, store, u, 0, rejected, bad))))
    for v in sorted(set(u2) - set(u3)):
        key = reconstruct(pub, store, v, 1, rejected, bad)
        if check_mask_keys and not sa.mask_key_matches(key, pub.mask_pk.get(v, b"")):
            raise DealerFaultError(f"round {pub.ctx.round_id}: dealer {v}'s key shares do not "
                                   "reconstruct its posted mask public key; its pairwise masks "
                                   "cannot be removed", dealer=v, kind=1)
        sk_v = enc.int_to_scalar(key)
        for u in g.neighbours(v, u3):
            try:
                seeds.append((u, v, sa.pair_seed(pub.ctx, u, v, sk_v, pub.mask_pk[u])))
            except InvalidContentError as exc:
                raise AggregationError(f"round {pub.ctx.round_id}: {exc}") from None
    if masked is None or sorted(masked) != u3:
        masked = {u: fetch_masked(pub, store, u) for u in u3}
    ysum = sa.sum_vectors(masked.values())
    total = sa.unmask(pub.ctx, ysum, seeds)
    weight = sum(w for _, _, w in pub.commits.values())
    return Aggregate(seeds, ysum, total, weight, rejected, masked, bad)


def apply_update(prev_fixed: np.ndarray, agg: Aggregate) -> np.ndarray:
    """FedAvg in the round's fixed point: the new adapter (padded, uint32) =
    f(previous adapter, Σx, Σn) of :func:`enc.next_adapter`, the function the
    chunk proof recomputes on-chain. ``prev_fixed`` may be unpadded."""
    prev = np.zeros(len(agg.total), dtype=np.uint32)
    p = np.asarray(prev_fixed, dtype=np.uint32)
    if len(p) > len(prev):
        raise AggregationError(f"the previous adapter has {len(p)} elements, more than the "
                               f"round's {len(prev)}")
    prev[:len(p)] = p
    return enc.next_adapter(prev, agg.total, agg.weight_sum)


def adapter_cap(vector_length: int, chunk_elems: int = enc.DEFAULT_CHUNK_ELEMS) -> int:
    """The fetch bound of a round's adapter blob (values and Σx)."""
    return AdapterBlob.max_bytes(vector_length, enc.num_chunks(vector_length, chunk_elems)
                                 * chunk_elems)


def load_blob(store: ContentStore, digest: bytes, *, max_bytes: int | None = None) -> AdapterBlob:
    return AdapterBlob.from_bytes(cat_digest(store, digest, max_bytes=max_bytes))


def blob_fixed(blob: AdapterBlob) -> np.ndarray:
    """The blob's padded fixed-point vector."""
    return np.frombuffer(blob.values, dtype="<u4").astype(np.uint32)


def blob_floats(blob: AdapterBlob) -> np.ndarray:
    """The model's float32 adapter from a blob (its first ``length`` elements)."""
    q = blob_fixed(blob)[:blob.model_length]
    return enc.dequantize(q, frac_bits=blob.frac_bits).astype(np.float32)


def load_adapter(store: ContentStore, digest: bytes, *, max_bytes: int | None = None) -> np.ndarray:
    """The float32 adapter at this digest, unchecked (a peer or aggregator
    starts from :func:`round_start`, which checks it against the chain)."""
    return blob_floats(load_blob(store, digest, max_bytes=max_bytes))


def round_start(fed: Federation, store: ContentStore, round_id: int) -> AdapterBlob:
    """The adapter round ``round_id`` starts from, checked against the chain:
    its padded fixed-point values must have the round's ``adapterRoot``
    (the root a proven-unchallenged result committed to, or the governor's
    initial one); a zero root is the all-zero adapter. The CID is only where
    to look, never trusted. Raises :class:`AggregationError` when they differ."""
    info = fed.round_info(round_id)
    padded = enc.num_chunks(info.vector_length, info.chunk_elems) * info.chunk_elems
    if not any(info.adapter_root):
        return AdapterBlob(0, bytes(4 * padded), b"", info.frac_bits, info.vector_length)
    try:
        blob = load_blob(store, info.adapter_cid,
                         max_bytes=adapter_cap(info.vector_length, info.chunk_elems))
    except FedLedgerError as exc:
        raise AggregationError(f"round {round_id}'s starting adapter cannot be fetched: {exc}") from None
    q = blob_fixed(blob)
    if (len(q) != padded or blob.model_length != info.vector_length
            or blob.frac_bits != info.frac_bits
            or enc.vector_root(q, info.chunk_elems) != info.adapter_root):
        raise AggregationError(f"round {round_id}'s adapter at 0x{info.adapter_cid.hex()} does not "
                               "match the adapter root on-chain; not training on it")
    return blob


def adapter_bytes(round_id: int, fixed: np.ndarray, total: np.ndarray | None = None, *,
                  frac_bits: int, length: int) -> bytes:
    """The blob of a padded fixed-point adapter (and the Σx it came from)."""
    agg = b"" if total is None else enc.to_bytes(total)
    return AdapterBlob(round_id, enc.to_bytes(np.asarray(fixed, dtype=np.uint32)), agg,
                       frac_bits, length).to_bytes()


@dataclass(frozen=True)
class Check:
    """One check of a round. ``checked`` is False when the check could not
    run (missing public data): it is then not a pass (``ok`` is False too)
    and auditors report it as "not checked"."""

    name: str
    ok: bool
    detail: str = ""
    checked: bool = True


def not_checked(name: str, why: str) -> Check:
    return Check(name, False, why, checked=False)


def verify(fed: Federation, store: ContentStore, round_id: int) -> list[Check]:
    """Re-run a round's aggregation from public data and compare it with the
    posted result, check by check; the first wrong chunk is named. Fails
    closed: a check that cannot run is returned as not checked, never as a
    pass, and every check here can fail."""
    checks: list[Check] = []
    info = fed.round_info(round_id)
    if info.phase not in (Phase.CHALLENGE, Phase.FINAL):
        return [not_checked("round has a result", f"phase is {info.phase.name}")]
    res = fed.result_of(round_id)
    pub = collect(fed, round_id)
    bad_vectors = []
    vectors: dict[int, np.ndarray] = {}
    for u in pub.u3:
        try:
            vectors[u] = fetch_masked(pub, store, u)
        except AggregationError as exc:
            bad_vectors.append(str(exc))
    checks.append(Check("masked vectors match CIDs and roots", not bad_vectors,
                        "; ".join(bad_vectors) if bad_vectors else f"{len(pub.u3)} vectors"))
    if bad_vectors:
        return checks + [not_checked("aggregate recomputes",
                                     "the masked vectors above cannot be used")]
    try:
        agg = aggregate(pub, store, vectors)
    except FedLedgerError as exc:
        return checks + [Check("aggregate recomputes", False, str(exc))]
    # A share off its dealer's committed polynomial is the dealer's fault, not
    # the result's: the secret used is the committed one. It is reported (and
    # provable with proveBadShare) but fails nothing; a revealed share that
    # does not match its leaf is a holder's and fails this check as before.
    off = {(b.dealer, b.holder, b.kind) for b in agg.bad_shares}
    mismatched = [r for r in agg.rejected_shares if r not in off]
    detail = f"{len(mismatched)} rejected" if mismatched else "all verify"
    if off:
        detail += ("; off their dealers' committed polynomials (provable, the dealer's fault): "
                   + ", ".join(f"dealer {d} for holder {h}" for d, h, _ in sorted(off)))
    checks.append(Check("revealed shares verify", not mismatched, detail))
    checks.append(Check("posted seeds", enc.seeds_hash(agg.seeds) == res.seeds_hash,
                        f"{len(agg.seeds)} seeds"))
    ce = pub.ctx.chunk_elems
    checks.append(Check("masked sum root", enc.vector_root(agg.masked_sum, ce) == res.masked_sum_root))
    try:
        blob = load_blob(store, res.new_adapter_cid,
                         max_bytes=adapter_cap(pub.ctx.vector_length, ce))
    except FedLedgerError as exc:
        return checks + [Check("posted adapter and aggregate fetch", False, str(exc))]
    posted = enc.from_bytes(blob.aggregate)
    ok_total = len(posted) == len(agg.total) and np.array_equal(posted, agg.total)
    checks.append(Check("posted Σx (informative) equals the recomputed one", ok_total))
    name = "starting adapter matches its on-chain root"
    info = fed.round_info(round_id)
    if any(info.adapter_root):
        try:  # content that cannot be had is "not checked", never a pass and never a fraud
            load_blob(store, info.adapter_cid, max_bytes=adapter_cap(info.vector_length, ce))
        except FedLedgerError as exc:
            return checks + [not_checked(name, f"the start adapter cannot be fetched: {exc}")]
    try:
        start = blob_fixed(round_start(fed, store, round_id))
    except FedLedgerError as exc:
        return checks + [Check(name, False, str(exc))]
    checks.append(Check(name, True, "zero root: the all-zero adapter" if not any(info.adapter_root)
                        else f"{len(start)} values"))
    want = apply_update(start, agg)
    new = blob_fixed(blob)
    ok_root = len(new) == len(want) and enc.vector_root(new, ce) == res.result_root
    checks.append(Check("posted adapter matches the result root", ok_root))
    first_bad = _first_bad_chunk(want, new, ce)
    checks.append(Check("new adapter = f(global, Σx, Σn), chunk by chunk", first_bad is None,
                        "" if first_bad is None else f"first wrong chunk: {first_bad}"))
    return checks


def _first_bad_chunk(ours: np.ndarray, posted: np.ndarray, chunk_elems: int) -> int | None:
    a, b = enc.chunk_bytes(ours, chunk_elems), enc.chunk_bytes(posted, chunk_elems)
    for i in range(max(len(a), len(b))):
        if i >= len(a) or i >= len(b) or a[i] != b[i]:
            return i
    return None
