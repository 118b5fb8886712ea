"""A round driven by hand through the contract bindings, with real keys,
shares, masks and hand-made update vectors (no training, no IPFS). Tests use
it to put the contracts through full rounds, dropouts and fraud proofs; the
gas benchmark uses it to measure every function at n = 10, 20, 50."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coordinator import Chain
from coordinator import _encoding as enc
from coordinator.protocol import _secagg as sa
from coordinator.chain._contracts import (
    Federation,
    LedgerPolicy,
    MemberChunk,
    Phase,
    Policy,
    Commitments,
    ShareProof,
    deploy_federation,
)
from coordinator.privacy._noise import add_share, noise_rng, skellam_share
from coordinator.privacy._privacy import DPConfig, dp_config

STAKE = 10**17


@dataclass
class PeerState:
    address: str
    index: int
    enc: sa.X25519Pair = field(default_factory=sa.X25519Pair.generate)
    mask: sa.X25519Pair = field(default_factory=sa.X25519Pair.generate)
    seed: int = field(default_factory=sa.random_seed)
    dealt: sa.DealtShares | None = None
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    cid_digest: bytes = b""
    chunks_root: bytes = b""
    weight: int = 0
    signal: np.ndarray | None = None  # x before a distributed-DP noise share


def setup_federation(chain: Chain, *, peers: int = 5, policy: Policy | None = None,
                     ledger: LedgerPolicy | None = None,
                     cfg: DPConfig | None = None) -> tuple[Federation, DPConfig]:
    policy = policy or Policy(participants=peers, threshold=3, keys_blocks=20, shares_blocks=20,
                              commit_blocks=20, reveal_blocks=20, aggregate_blocks=20,
                              challenge_blocks=3, bond=STAKE)
    chain.ensure_accounts(peers + 4)
    fed, _ = deploy_federation(chain, policy=policy, ledger_policy=ledger or LedgerPolicy())
    for i in range(1, peers + 1):
        fed.register(sender=i, stake=STAKE, region=i, modalities=7)
    cfg = cfg or dp_config(config_id=1, q=0.05, sigma=1.1, steps=20)
    fed.register_config(cfg)
    return fed, cfg


class RoundSim:
    """Drives one round; ``drop_*`` name participant indices that drop there."""

    def __init__(self, fed: Federation, cfg: DPConfig, *, vector_length: int = 300,
                 chunk_elems: int = 64, seed: int = 0) -> None:
        self.fed = fed
        self.chain = fed.chain
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        self.round_id, _ = fed.open_round(dp_config=cfg.config_id, vector_length=vector_length,
                                          chunk_elems=chunk_elems)
        info = fed.round_info(self.round_id)
        self.info = info
        addrs = fed.participants(self.round_id)
        self.ctx = sa.RoundContext(self.chain.chain_id, fed.rounds.address, self.round_id,
                                   info.n, info.t, vector_length, chunk_elems, info.seed)
        self.graph = self.ctx.graph
        self.peers = [PeerState(a, i) for i, a in enumerate(addrs)]
        self.u1: list[int] = []
        self.u2: list[int] = []
        self.u3: list[int] = []
        self.revealed: dict[int, dict[int, int]] = {}  # revealer -> dealer -> share

    def keys(self, drop: set[int] = frozenset()) -> None:
        for p in self.peers:
            if p.index in drop:
                continue
            self.fed.post_keys(self.round_id, p.enc.public, p.mask.public, sender=p.address)
            self.u1.append(p.index)

    def shares(self, drop: set[int] = frozenset(),
               off_polynomial: tuple[int, int] | None = None) -> None:
        """``off_polynomial`` = (dealer, holder): that dealer commits (leaf and
        share alike) a self-seed share for that holder one off its
        Feldman-committed polynomial: a bad share a holder can prove."""
        for i in self.u1:
            if i in drop:
                continue
            p = self.peers[i]
            holders = [h for h in self.u1 if h == i or self.graph.adjacent(i, h)]
            p.dealt = sa.deal(self.ctx, dealer=p.address, self_seed=p.seed,
                              mask_secret=p.mask.secret, holders=holders)
            if off_polynomial is not None and off_polynomial[0] == i:
                h = off_polynomial[1]
                b, k = p.dealt.shares[h]
                bad = (b + 1) % enc.FIELD_P
                leaves = list(p.dealt.leaves)
                leaves[2 * h] = enc.share_leaf(chain_id=self.ctx.chain_id, rounds=self.ctx.rounds,
                                               round_id=self.round_id, dealer=p.address,
                                               holder=h, kind=0, share=bad)
                p.dealt = sa.DealtShares({**p.dealt.shares, h: (bad, k)}, p.dealt.commitments,
                                         tuple(leaves), enc.merkle_root(leaves))
            bundle = hashlib.sha256(b"bundle" + p.address.encode()).digest()
            self.fed.post_shares(self.round_id, bundle, p.dealt.root, sender=p.address)
            self.u2.append(i)

    def commit(self, drop: set[int] = frozenset(), *, noise_mu: float = 0.0) -> None:
        """``noise_mu`` > 0: each committer adds a Skellam(μ) share from the OS CSPRNG."""
        for i in self.u2:
            if i in drop:
                continue
            p = self.peers[i]
            p.x = self.rng.integers(0, 2**20, self.ctx.vector_length, dtype=np.uint32)
            p.signal = p.x
            if noise_mu > 0:
                p.x = add_share(p.x, skellam_share(mu=noise_mu, size=self.ctx.vector_length,
                                                   rng=noise_rng()))
            pairs = {v: sa.pair_seed(self.ctx, i, v, p.mask.secret, self.peers[v].mask.public)
                     for v in self.graph.neighbours(i, self.u2)}
            p.y = sa.mask(self.ctx, p.x, index=i, self_seed=p.seed, pair_seeds=pairs)
            p.cid_digest = hashlib.sha256(enc.to_bytes(p.y)).digest()
            p.chunks_root = enc.vector_root(p.y, self.ctx.chunk_elems)
            p.weight = 100 + i
            self.fed.commit(self.round_id, cid_digest=p.cid_digest, chunks_root=p.chunks_root,
                            weight=p.weight, dp_config=self.cfg.config_id, sender=p.address)
            self.u3.append(i)

    def reveal(self, drop: set[int] = frozenset()) -> None:
        for v in self.u3:
            if v in drop:
                continue
            # every dealer that dealt to it: its neighbours, and itself (its own self-seed share)
            dealers = [u for u in self.u2 if u == v or self.graph.adjacent(u, v)]
            shares = []
            for u in dealers:
                dealt = self.peers[u].dealt
                assert dealt is not None
                b_share, k_share = dealt.shares[v]
                shares.append(b_share if u in self.u3 else k_share)
            self.fed.reveal(self.round_id, dealers, shares, sender=self.peers[v].address)
            self.revealed[v] = dict(zip(dealers, shares))

    # -- the aggregator's view (public data only) -----------------------------
    def share_proofs(self, dealer: int, kind: int, holders: list[int] | None = None) -> list[ShareProof]:
        dealt = self.peers[dealer].dealt
        assert dealt is not None
        holders = holders or [h for h in sorted(self.revealed) if dealer in self.revealed[h]]
        return [ShareProof(h, self.revealed[h][dealer], dealt.proof(h, kind))
                for h in holders[: self.ctx.t]]

    def commitments(self, dealer: int) -> Commitments:
        """``dealer``'s Feldman commitments and the proof of their leaf (2n)."""
        dealt = self.peers[dealer].dealt
        assert dealt is not None
        return Commitments(dealt.commitments, enc.merkle_proof(dealt.leaves, 2 * self.ctx.n))

    def secret(self, dealer: int, kind: int) -> int:
        """``dealer``'s secret of ``kind`` from t revealed shares."""
        return enc.shamir_reconstruct({sp.holder + 1: sp.value
                                       for sp in self.share_proofs(dealer, kind)})

    def reconstruct_seeds(self) -> list[tuple[int, int, bytes]]:
        seeds: list[tuple[int, int, bytes]] = []
        for u in sorted(self.u3):
            pts = {sp.holder + 1: sp.value for sp in self.share_proofs(u, 0)}
            seeds.append((u, sa.SELF, sa.seed_bytes(enc.shamir_reconstruct(pts))))
        for v in sorted(set(self.u2) - set(self.u3)):
            pts = {sp.holder + 1: sp.value for sp in self.share_proofs(v, 1)}
            sk_v = enc.int_to_scalar(enc.shamir_reconstruct(pts))
            for u in self.graph.neighbours(v, sorted(self.u3)):
                seeds.append((u, v, sa.pair_seed(self.ctx, u, v, sk_v, self.peers[u].mask.public)))
        return seeds

    def masked_sum(self) -> np.ndarray:
        return sa.sum_vectors(self.peers[u].y for u in self.u3)  # type: ignore[misc]

    def true_sum(self) -> np.ndarray:
        return enc.pad(sa.sum_vectors(self.peers[u].x for u in self.u3), self.ctx.chunk_elems)  # type: ignore[misc]

    def weight_sum(self) -> int:
        return sum(self.peers[u].weight for u in self.u3)

    def true_adapter(self, xsum: np.ndarray | None = None) -> np.ndarray:
        """f(previous adapter (all zero: the sim deploys with a zero root), Σx, Σn)."""
        xsum = self.true_sum() if xsum is None else enc.pad(xsum, self.ctx.chunk_elems)
        return enc.next_adapter(np.zeros(len(xsum), np.uint32), xsum, self.weight_sum())

    def post_result(self, sender: int | str, *, result: np.ndarray | None = None,
                    seeds: list[tuple[int, int, bytes]] | None = None,
                    adapter: np.ndarray | None = None) -> Any:
        """Post Σx = ``result`` (default: unmasked with ``seeds``) and the new
        adapter = ``adapter`` (default: f(0, Σx, Σn)); the result root is the
        adapter's."""
        seeds = seeds if seeds is not None else self.reconstruct_seeds()
        ysum = self.masked_sum()
        xsum = result if result is not None else sa.unmask(self.ctx, ysum, seeds)
        new = adapter if adapter is not None else self.true_adapter(xsum)
        self.posted_seeds = seeds
        self.posted_result = xsum
        self.posted_adapter = new
        return self.fed.post_result(
            self.round_id, new_adapter_cid=hashlib.sha256(enc.to_bytes(new)).digest(),
            masked_sum_root=enc.vector_root(ysum, self.ctx.chunk_elems),
            result_root=enc.vector_root(new, self.ctx.chunk_elems), seeds=seeds,
            bond=self.fed.policy().bond, sender=sender)

    def chunk_proof_args(self, chunk_index: int) -> dict[str, Any]:
        ce = self.ctx.chunk_elems
        members = []
        for u in sorted(self.u3):
            p = self.peers[u]
            chunks = enc.chunk_bytes(p.y, ce)
            leaves = [enc.leaf(i, c) for i, c in enumerate(chunks)]
            members.append(MemberChunk(u, p.cid_digest, p.chunks_root, p.weight,
                                       chunks[chunk_index], enc.merkle_proof(leaves, chunk_index)))
        rchunks = enc.chunk_bytes(self.posted_adapter, ce)
        rleaves = [enc.leaf(i, c) for i, c in enumerate(rchunks)]
        return {"chunk_index": chunk_index, "seeds": self.posted_seeds, "members": members,
                "result_chunk": rchunks[chunk_index],
                "result_proof": enc.merkle_proof(rleaves, chunk_index)}

    def run_to(self, phase: Phase) -> None:
        """Mine blocks until the round's deadline passes, then advance."""
        info = self.fed.round_info(self.round_id)
        gap = info.deadline - self.chain.block_number + 1
        if gap > 0:
            self.chain.mine(gap)
        self.fed.advance(self.round_id)
        assert self.fed.round_info(self.round_id).phase == phase
