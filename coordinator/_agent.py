"""The protocol roles of one round: a peer's side and the aggregator's.

:class:`PeerAgent` holds one peer's per-round secrets (X25519 keys, the
self-mask seed, its dealt shares, the shares it received) and performs each
phase against the chain and the content store. :class:`Aggregator` unmasks
with :func:`coordinator._aggregate.aggregate` — the function auditors re-run —
and posts the result with its bond. Training is not here: a peer passes its
quantized update to :meth:`PeerAgent.commit`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from . import _encoding as enc
from . import _secagg as sa
from ._aggregate import Aggregate, AggregationError, adapter_bytes, aggregate, collect, find_cid
from ._contracts import Federation, Phase
from ._errors import ConfigError
from ._store import ContentStore
from ._wire import ShareBundle

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
                                   info.chunk_elems)

    def __repr__(self) -> str:  # keys and seeds stay out of logs
        return f"PeerAgent(round={self.round_id}, index={self.index}, address={self.address})"

    def post_keys(self) -> int:
        return self.fed.post_keys(self.round_id, self.enc.public, self.mask.public,
                                  sender=self.address).gas_used

    def post_shares(self) -> tuple[int, int]:
        """Deal shares to U1, publish the bundle, post its digest and the root.
        Returns (gas, bytes uploaded)."""
        assert self.ctx is not None
        pub = collect(self.fed, self.round_id)
        dealt = sa.deal(self.ctx, dealer=self.address, self_seed=self.seed,
                        mask_secret=self.mask.secret, holders=pub.u1)
        bundle = sa.seal_bundle(self.ctx, dealer=self.index, dealt=dealt, enc=self.enc,
                                holder_keys={h: pub.enc_pk[h] for h in pub.u1})
        cid = self.store.add(bundle)
        gas = self.fed.post_shares(self.round_id, cid.digest, dealt.root, sender=self.address).gas_used
        return gas, len(bundle)

    def receive_shares(self) -> int:
        """Decrypt the shares U2's dealers sent this peer. Returns bytes read."""
        assert self.ctx is not None
        pub = collect(self.fed, self.round_id)
        read = 0
        for dealer in pub.u2:
            data = self.store.cat(find_cid(self.store, pub.bundle_digest[dealer]))
            read += len(data)
            bundle = ShareBundle.from_bytes(data)
            box = bundle.box_for(self.index)
            if box is None or enc.merkle_root(bundle.leaves) != pub.share_root[dealer]:
                continue
            self.received[dealer] = sa.open_box(self.ctx, dealer=dealer, holder=self.index,
                                                box=box, holder_enc=self.enc,
                                                dealer_enc_pk=pub.enc_pk[dealer])
        return read

    def commit(self, update_q: np.ndarray, *, weight: int, dp_config: int) -> tuple[int, int]:
        """Mask the quantized update with the self mask and pairwise masks of
        U2, publish it, commit. Returns (gas, bytes uploaded)."""
        assert self.ctx is not None
        pub = collect(self.fed, self.round_id)
        pairs = {v: sa.pair_seed(self.ctx, self.index, v, self.mask.secret, pub.mask_pk[v])
                 for v in pub.u2 if v != self.index}
        y = sa.mask(self.ctx, update_q, index=self.index, self_seed=self.seed, pair_seeds=pairs)
        data = enc.to_bytes(y)
        cid = self.store.add(data)
        gas = self.fed.commit(self.round_id, cid_digest=cid.digest,
                              chunks_root=enc.vector_root(y, self.ctx.chunk_elems), weight=weight,
                              dp_config=dp_config, sender=self.address).gas_used
        return gas, len(data)

    def reveal(self) -> int:
        """Reveal, for every dealer in U2, the share of b_u if u committed and
        the share of u's mask key if it did not — never both for one dealer:
        U3 is fixed on-chain. Aborts if a survivor has too few surviving
        neighbours (complete graph: fewer than t survivors)."""
        assert self.ctx is not None
        pub = collect(self.fed, self.round_id)
        u3 = set(pub.u3)
        if len(u3) < self.ctx.t:
            raise AggregationError(f"only {len(u3)} survivors; revealing could expose a lone update")
        dealers, shares = [], []
        for dealer in pub.u2:
            if dealer not in self.received:
                continue
            b_share, k_share = self.received[dealer]
            dealers.append(dealer)
            shares.append(b_share if dealer in u3 else k_share)
        return self.fed.reveal(self.round_id, dealers, shares, sender=self.address).gas_used


@dataclass
class Aggregator:
    """Posts a round's result with a bond (any eligible registered account)."""

    fed: Federation
    store: ContentStore
    address: str

    def run(self, round_id: int, global_flat: np.ndarray) -> tuple[Aggregate, np.ndarray, int]:
        """Aggregate, publish the new adapter, post. Returns (aggregate,
        new adapter, gas)."""
        from ._aggregate import apply_update

        pub = collect(self.fed, round_id)
        if self.fed.round_info(round_id).phase != Phase.AGGREGATE:
            raise AggregationError(f"round {round_id} is not in its aggregate phase")
        agg = aggregate(pub, self.store)
        new = apply_update(global_flat, agg, frac_bits=pub.info.frac_bits)
        blob = adapter_bytes(round_id, new, agg.total)
        cid = self.store.add(blob)
        ce = pub.ctx.chunk_elems
        rcpt = self.fed.post_result(round_id, new_adapter_cid=cid.digest,
                                    masked_sum_root=enc.vector_root(agg.masked_sum, ce),
                                    result_root=enc.vector_root(agg.total, ce), seeds=agg.seeds,
                                    bond=self.fed.policy().bond, sender=self.address)
        log.info("round %d: result posted by %s tx=%s", round_id, self.address, rcpt.tx_hash)
        return agg, new, rcpt.gas_used
