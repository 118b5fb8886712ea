"""The protocol roles of one round: a peer's side and the aggregator's.

:class:`PeerAgent` holds one peer's per-round secrets (X25519 keys, the
self-mask seed, its dealt shares, the shares it received) and performs each
phase against the chain and the content store. :class:`Aggregator` unmasks
with :func:`coordinator.protocol._aggregate.aggregate` — the function auditors re-run —
and posts the result with its bond. Training is not here: a peer passes its
quantized update to :meth:`PeerAgent.commit`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from .. import _encoding as enc
from .. import _feldman as fd
from . import _secagg as sa
from ._aggregate import (Aggregate, RoundPublic, adapter_bytes, aggregate, apply_update, blob_fixed,
                         collect, fetch_bundle, fetch_masked, round_start)
from .._errors import AggregationError, FedLedgerError, InvalidContentError
from ..chain._contracts import Federation, Phase
from .._errors import ConfigError
from ..store._store import ContentStore
from ._wire import ShareBundle

#: Bundles fetched at once by one peer (each a blocking store request).
_FETCH_WORKERS = 16

log = logging.getLogger("fedledger.agent")


@dataclass
class PeerAgent:
    """One peer in one round."""

    fed: Federation
    store: ContentStore
    address: str
    round_id: int
    enc: sa.X25519Pair = field(default_factory=sa.X25519Pair.generate)
    mask: sa.X25519Pair = field(default_factory=sa.X25519Pair.generate)
    seed: int = field(default_factory=sa.random_seed)
    received: dict[int, tuple[int, int]] = field(default_factory=dict)  # dealer -> (b, k)
    faulty: dict[int, str] = field(default_factory=dict)  # dealer -> why its shares are skipped
    # dealer -> (kind, value): a committed share off the dealer's committed
    # polynomial, the evidence of a bad-share proof (FraudProofs.proveBadShare)
    bad_shares: dict[int, tuple[int, int]] = field(default_factory=dict)
    index: int = -1
    ctx: sa.RoundContext | None = None

    def __post_init__(self) -> None:
        idx, _ = self.fed.status(self.round_id, self.address)
        if idx is None:
            raise ConfigError(f"{self.address} is not a participant of round {self.round_id}")
        self.index = idx
        info = self.fed.round_info(self.round_id)
        self.ctx = sa.RoundContext(self.fed.chain.chain_id, self.fed.rounds.address,
                                   self.round_id, info.n, info.t, info.vector_length,
                                   info.chunk_elems, info.seed)

    def __repr__(self) -> str:  # keys and seeds stay out of logs
        return f"PeerAgent(round={self.round_id}, index={self.index}, address={self.address})"

    def post_keys(self) -> int:
        rcpt = self.fed.post_keys(self.round_id, self.enc.public, self.mask.public,
                                  sender=self.address)
        log.info("round %d: peer %s posted keys tx=%s", self.round_id, self.address, rcpt.tx_hash)
        return rcpt.gas_used

    def deal_bundle(self) -> tuple[bytes, bytes]:
        """Deal shares to U1 and seal them: (encoded bundle, share root).
        Dealing draws fresh polynomials, so a peer that must survive a crash
        stores this before publishing it and publishes only the stored one."""
        assert self.ctx is not None
        pub = collect(self.fed, self.round_id)
        g = self.ctx.graph
        holders = [h for h in pub.u1 if h == self.index or g.adjacent(self.index, h)]
        bad = [h for h in holders if h != self.index and not sa.valid_public_key(pub.enc_pk[h])]
        if bad:  # no box can be sealed to them: they hold no shares of ours
            log.warning("round %d: peer %d deals no shares to %s: malformed encryption keys",
                        self.round_id, self.index, bad)
            holders = [h for h in holders if h not in bad]
        if len(holders) < self.ctx.t:
            raise AggregationError(f"only {len(holders)} of peer {self.index}'s neighbourhood "
                                   f"posted keys; {self.ctx.t} are needed to share its secrets")
        dealt = sa.deal(self.ctx, dealer=self.address, self_seed=self.seed,
                        mask_secret=self.mask.secret, holders=holders)
        bundle = sa.seal_bundle(self.ctx, dealer=self.index, dealt=dealt, enc=self.enc,
                                holder_keys={h: pub.enc_pk[h] for h in holders})
        return bundle, dealt.root

    def post_shares(self, dealt: tuple[bytes, bytes] | None = None) -> tuple[int, int]:
        """Publish the bundle, post its digest and the share root.
        Returns (gas, bytes uploaded)."""
        bundle, root = dealt or self.deal_bundle()
        cid = self.store.add(bundle)
        rcpt = self.fed.post_shares(self.round_id, cid.digest, root, sender=self.address)
        log.info("round %d: peer %s posted shares cid=%s tx=%s", self.round_id, self.address,
                 cid, rcpt.tx_hash)
        return rcpt.gas_used, len(bundle)

    def receive_shares(self) -> int:
        """Decrypt the shares U2's dealers sent this peer. Returns bytes read.

        The bundles are fetched concurrently: a dealer that posted a CID no
        one serves costs the store's timeout once per step, whatever the
        number of such dealers (sequentially, k sybil dealers cost k
        timeouts a step and could run honest peers past the window)."""
        assert self.ctx is not None
        pub = collect(self.fed, self.round_id)
        todo = [d for d in pub.u2 if d not in self.received and d not in self.faulty]
        fetched: dict[int, ShareBundle | FedLedgerError] = {}

        def fetch(dealer: int) -> ShareBundle | FedLedgerError:
            try:
                return fetch_bundle(pub, self.store, dealer)
            except FedLedgerError as exc:
                return exc

        if todo:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(_FETCH_WORKERS, len(todo)),
                                    thread_name_prefix="fetch-bundle") as pool:
                fetched = dict(zip(todo, pool.map(fetch, todo), strict=True))
        read = 0
        for dealer in todo:
            got = fetched[dealer]
            try:
                if isinstance(got, FedLedgerError):
                    raise got
                bundle = got
                read += len(bundle.to_bytes())
                box = bundle.box_for(self.index)
                if box is None:
                    raise InvalidContentError(f"dealer {dealer}'s bundle has no box for peer "
                                              f"{self.index}")
                got_b, got_k = sa.open_box(self.ctx, dealer=dealer, holder=self.index, box=box,
                                           holder_enc=self.enc, dealer_enc_pk=pub.enc_pk[dealer])
                # The shares must be the ones committed under the dealer's
                # root: a share that does not verify could never be used.
                for kind, value in ((0, got_b), (1, got_k)):
                    lf = enc.share_leaf(chain_id=self.ctx.chain_id, rounds=self.ctx.rounds,
                                        round_id=self.round_id, dealer=pub.participants[dealer],
                                        holder=self.index, kind=kind, share=value)
                    if bundle.leaves[2 * self.index + kind] != lf:
                        raise InvalidContentError(f"dealer {dealer}'s share for peer {self.index} "
                                                  "does not match its committed leaf")
                    # ...and on the dealer's committed polynomial (Feldman):
                    # otherwise it is evidence against the dealer, never a share.
                    if not fd.verify_share(sa.commitments_of(self.ctx, bundle.commitments, kind),
                                           self.index + 1, value, threshold=self.ctx.t):
                        self.bad_shares[dealer] = (kind, value)
                        raise InvalidContentError(f"dealer {dealer}'s share for peer {self.index} "
                                                  "is not on its committed polynomial")
                self.received[dealer] = (got_b, got_k)
            except InvalidContentError as exc:  # the dealer is at fault: skip it for good
                self.faulty[dealer] = str(exc)
                log.warning("round %d: peer %d skips dealer %d: %s", self.round_id, self.index,
                            dealer, exc)
            except FedLedgerError as exc:  # not fetchable (yet): try again next step
                log.warning("round %d: peer %d cannot fetch dealer %d's bundle yet: %s",
                            self.round_id, self.index, dealer, exc)
        return read

    def masked(self, update_q: np.ndarray) -> np.ndarray:
        """y_u: the quantized update plus the self mask and the pairwise masks of U2."""
        assert self.ctx is not None
        pub = collect(self.fed, self.round_id)
        if self.index not in pub.u2:
            raise AggregationError(f"peer {self.index} is not in U2 of round {self.round_id}")
        try:
            pairs = {v: sa.pair_seed(self.ctx, self.index, v, self.mask.secret, pub.mask_pk[v])
                     for v in self.ctx.graph.neighbours(self.index, pub.u2)}
        except InvalidContentError as exc:
            # No pairwise mask both sides and the seed proof agree on exists:
            # committing would make the round's sum wrong. Sit it out.
            raise AggregationError(f"round {self.round_id} cannot be masked: {exc}") from None
        return sa.mask(self.ctx, update_q, index=self.index, self_seed=self.seed, pair_seeds=pairs)

    def commit(self, update_q: np.ndarray | None = None, *, weight: int, dp_config: int,
               masked: np.ndarray | None = None) -> tuple[int, int]:
        """Publish the masked vector (``masked``, or made from ``update_q``) and
        commit to it. Returns (gas, bytes uploaded)."""
        assert self.ctx is not None
        if masked is None:
            if update_q is None:
                raise ValueError("commit needs the update or its masked vector")
            masked = self.masked(update_q)
        data = enc.to_bytes(masked)
        cid = self.store.add(data)
        rcpt = self.fed.commit(self.round_id, cid_digest=cid.digest,
                               chunks_root=enc.vector_root(masked, self.ctx.chunk_elems),
                               weight=weight, dp_config=dp_config, sender=self.address)
        log.info("round %d: peer %s committed cid=%s tx=%s", self.round_id, self.address, cid,
                 rcpt.tx_hash)
        return rcpt.gas_used, len(data)

    def answer_availability(self, masked: np.ndarray) -> int:
        """Post this peer's masked vector on-chain in answer to an
        availability challenge: the padded vector, which must be the one it
        committed (its chunk root). Returns the gas used."""
        assert self.ctx is not None
        pub = collect(self.fed, self.round_id)
        if self.index not in pub.commits:
            raise AggregationError(f"peer {self.index} has no commit in round {self.round_id} "
                                   "to answer for")
        digest, root, weight = pub.commits[self.index]
        padded = enc.pad(np.asarray(masked, dtype=np.uint32), self.ctx.chunk_elems)
        if enc.vector_root(padded, self.ctx.chunk_elems) != root:
            raise AggregationError(f"the stored masked vector of peer {self.index} is not the one "
                                   f"it committed in round {self.round_id}")
        rcpt = self.fed.answer_availability(self.round_id, self.address, cid_digest=digest,
                                            chunks_root=root, weight=weight,
                                            data=enc.to_bytes(padded), sender=self.address)
        log.info("round %d: peer %s answered an availability challenge on-chain tx=%s",
                 self.round_id, self.address, rcpt.tx_hash)
        return rcpt.gas_used

    def reveal(self) -> int:
        """Reveal, for every dealer in U2, the share of b_u if u committed and
        the share of u's mask key if it did not — never both for one dealer:
        U3 is fixed on-chain. Aborts if a survivor has too few surviving
        neighbours (fewer than t − 1; complete graph: fewer than t survivors)."""
        assert self.ctx is not None
        # U3 is final only once the round is in Reveal: read before a pending
        # Availability→Reveal transition, it would still hold a committer the
        # transition drops, whose self-seed share must then never be revealed.
        if self.fed.round_info(self.round_id).phase != Phase.REVEAL:
            raise AggregationError(f"round {self.round_id} is not in its reveal phase: U3 is "
                                   "not final yet")
        pub = collect(self.fed, self.round_id)
        u3 = set(pub.u3)
        sa.check_survivors(self.ctx, pub.u3)
        dealers, shares = [], []
        for dealer in pub.u2:
            if dealer not in self.received:
                continue
            b_share, k_share = self.received[dealer]
            dealers.append(dealer)
            shares.append(b_share if dealer in u3 else k_share)
        rcpt = self.fed.reveal(self.round_id, dealers, shares, sender=self.address)
        log.info("round %d: peer %s revealed %d shares tx=%s", self.round_id, self.address,
                 len(shares), rcpt.tx_hash)
        return rcpt.gas_used


def unavailable(pub: RoundPublic, store: ContentStore, among: list[int] | None = None) -> dict[int, str]:
    """The committers (of ``among``, default U3) whose masked vector cannot
    be fetched from ``store`` and was not answered on-chain, with why. The
    fetches run concurrently: k withholders cost one store timeout, not k."""
    todo = [u for u in (pub.u3 if among is None else among)
            if u in pub.commits and u not in pub.answered]
    if not todo:
        return {}
    from concurrent.futures import ThreadPoolExecutor

    def check(u: int) -> str | None:
        try:
            fetch_masked(pub, store, u)
        except FedLedgerError as exc:
            return str(exc)
        return None

    with ThreadPoolExecutor(max_workers=min(_FETCH_WORKERS, len(todo)),
                            thread_name_prefix="fetch-masked") as pool:
        got = dict(zip(todo, pool.map(check, todo), strict=True))
    return {u: why for u, why in got.items() if why is not None}


def challenge_unavailable(fed: Federation, store: ContentStore, round_id: int, *,
                          sender: str, skip: set[int] | frozenset[int] = frozenset()) -> dict[int, str]:
    """In a round's Availability phase: challenge, with the policy bond, every
    committer (not in ``skip``) whose masked vector ``store`` cannot fetch and
    nobody challenged yet. Returns {participant: why} for each one challenged.
    A challenge that reverts (too late, already challenged) is logged and skipped."""
    from ..chain._contracts import StatusFlag
    from .._errors import ContractRevertError

    pub = collect(fed, round_id)
    out: dict[int, str] = {}
    missing = unavailable(pub, store, [u for u in pub.u3 if u not in skip])
    for u, why in sorted(missing.items()):
        peer = pub.participants[u]
        if fed.status(round_id, peer)[1] & StatusFlag.CHALLENGED:
            continue
        digest, root, weight = pub.commits[u]
        try:
            rcpt = fed.challenge_availability(round_id, peer, cid_digest=digest, chunks_root=root,
                                              weight=weight, sender=sender)
        except ContractRevertError as exc:
            log.warning("round %d: availability of participant %d not challenged: %s", round_id,
                        u, exc)
            continue
        out[u] = why
        log.warning("round %d: challenged the availability of participant %d (%s) tx=%s",
                    round_id, u, why, rcpt.tx_hash)
    return out


@dataclass
class Aggregator:
    """Posts a round's result with a bond (any eligible registered account)."""

    fed: Federation
    store: ContentStore
    address: str

    def run(self, round_id: int) -> tuple[Aggregate, np.ndarray, int]:
        """Aggregate, publish the new adapter, post. Returns (aggregate,
        new fixed-point adapter (padded), gas). The adapter it starts from is
        the one whose root the chain records, whatever a CID points to."""
        pub = collect(self.fed, round_id)
        if self.fed.round_info(round_id).phase != Phase.AGGREGATE:
            raise AggregationError(f"round {round_id} is not in its aggregate phase")
        agg = aggregate(pub, self.store)
        start = blob_fixed(round_start(self.fed, self.store, round_id))
        new = apply_update(start, agg)
        return agg, new, self.post(round_id, agg, new)

    def post(self, round_id: int, agg: Aggregate, new: np.ndarray) -> int:
        """Publish the adapter blob (with Σx) and post the result with the
        bond; ``new`` is the padded fixed-point adapter, whose root becomes
        the result root. Separate from :meth:`run` so that tests and the
        dishonest-aggregator scenario can post what an honest aggregator
        would not."""
        info = self.fed.round_info(round_id)
        ce = info.chunk_elems
        blob = adapter_bytes(round_id, new, agg.total, frac_bits=info.frac_bits,
                             length=info.vector_length)
        cid = self.store.add(blob)
        rcpt = self.fed.post_result(round_id, new_adapter_cid=cid.digest,
                                    masked_sum_root=enc.vector_root(agg.masked_sum, ce),
                                    result_root=enc.vector_root(new, ce), seeds=agg.seeds,
                                    bond=self.fed.policy().bond, sender=self.address)
        log.info("round %d: result posted by %s tx=%s", round_id, self.address, rcpt.tx_hash)
        return rcpt.gas_used
