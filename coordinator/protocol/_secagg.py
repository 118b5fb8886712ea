"""Secure-aggregation arithmetic (DESIGN §3): keys, shares, masks, unmasking.

Pure functions over the encodings of :mod:`coordinator._encoding`; the round
driver, the peer daemon and the auditors all call these, so there is one
implementation of how a vector is masked and how a sum is unmasked.

Masking of survivor u with participant index i_u (all arithmetic in Z_2^32):

    y_u = x_u + PRG(b_u) + Σ_{v ∈ U2, v ≠ u} sign(u, v) · PRG(s_uv)

with sign(u, v) = +1 if i_u < i_v else −1, so pairwise masks cancel between
two survivors. Unmasking the sum over U3:

    Σ x_u = Σ y_u − Σ_{u ∈ U3} PRG(b_u) − Σ_{u ∈ U3, v ∈ U2 \\ U3} sign(u, v) · PRG(s_uv)
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from eth_abi.abi import encode as abi_encode
from eth_hash.auto import keccak
from nacl.bindings import crypto_scalarmult, crypto_scalarmult_base

from .. import _encoding as enc
from .._errors import ConfigError
from .. import _feldman as fd

SELF = enc.SELF_SEED


@dataclass(frozen=True, slots=True)
class RoundContext:
    """What domain-separates a round's commitments, shares and seeds."""

    chain_id: int
    rounds: str  # address of the rounds contract
    round_id: int
    n: int
    t: int
    vector_length: int
    chunk_elems: int = enc.DEFAULT_CHUNK_ELEMS
    seed: bytes = bytes(32)  # the round's on-chain seed: it also fixes the neighbour graph

    @property
    def padded_length(self) -> int:
        return enc.num_chunks(self.vector_length, self.chunk_elems) * self.chunk_elems

    @property
    def graph(self) -> Graph:
        return Graph.of(self.n, self.t, self.seed)


# -- the mask-neighbour graph ------------------------------------------------------

GRAPH_DOMAIN = keccak(b"fedledger.graph.v1")
COMPLETE_UP_TO = 20  # rounds this small use the complete graph


def degree(n: int, t: int) -> int:
    """Neighbours per participant: n − 1 (complete) for n ≤ 20, else the
    smallest even k ≥ max(2⌈log2 n⌉, 2(t − 1)) — O(log n) as in SecAgg+
    (Bell et al. 2020) while keeping t ≤ k/2 + 1, so reconstructing a
    secret needs a majority of a neighbourhood. Mirrors FedRounds._degree."""
    if n <= COMPLETE_UP_TO:
        return n - 1
    k = max(2 * (n - 1).bit_length(), 2 * (t - 1))
    return n - 1 if k >= n - 1 else k


#: Mirrors FedRounds.MAX_PROOF_WORK: chunk elements × (seeds + n) a chunk
#: proof may have to replay, so its worst case fits the gas target.
MAX_PROOF_WORK = 170_000


def chunk_elems_for(n: int, t: int, preferred: int = enc.DEFAULT_CHUNK_ELEMS) -> int:
    """The largest chunk size ≤ ``preferred`` (a multiple of 8) that
    FedRounds accepts for a round of ``n`` participants at threshold ``t``:
    the worst-case chunk proof replays t self seeds plus min(t, k) pairwise
    seeds per dropped peer and n masked chunks (FedRounds._checkQuant).
    The default 256 fits up to about 40 participants at t = n/2 + 1; at
    n = 50, t = 26 it is 240."""
    seeds = t + (n - t) * min(t, degree(n, t))
    ce = min(preferred, MAX_PROOF_WORK // (seeds + n)) // 8 * 8
    if ce < 8:
        raise ConfigError(f"a round of {n} participants at threshold {t} cannot bound its "
                          f"chunk proof (needs {seeds} seeds a chunk)",
                          hint="use fewer participants per round, or groups")
    return ce


@dataclass(frozen=True, slots=True)
class Graph:
    """A random k-regular circulant ("Harary") graph: participants are placed
    on a ring by a permutation drawn from the round seed, each adjacent to
    the k/2 nearest on either side. Everyone (and the contract) derives it."""

    n: int
    k: int
    pos: tuple[int, ...]

    @classmethod
    def of(cls, n: int, t: int, seed: bytes) -> Graph:
        k = degree(n, t)
        idx = list(range(n))
        if k < n - 1:
            for i in range(n):
                h = keccak(abi_encode(["bytes32", "bytes32", "uint256"], [seed, GRAPH_DOMAIN, i]))
                j = i + int.from_bytes(h, "big") % (n - i)
                idx[i], idx[j] = idx[j], idx[i]
        pos = [0] * n
        for p, who in enumerate(idx):
            pos[who] = p
        return cls(n, k, tuple(pos))

    @property
    def complete(self) -> bool:
        return self.k >= self.n - 1

    def adjacent(self, a: int, b: int) -> bool:
        if a == b:
            return False
        if self.complete:
            return True
        d = abs(self.pos[a] - self.pos[b])
        return min(d, self.n - d) <= self.k // 2

    def neighbours(self, a: int, among: Iterable[int] | None = None) -> list[int]:
        pool = range(self.n) if among is None else among
        return sorted(b for b in pool if self.adjacent(a, b))


@dataclass(frozen=True, slots=True)
class X25519Pair:
    """A per-round X25519 key pair. ``secret`` is a field element below
    :data:`enc.FIELD_P` (little-endian, unclamped): the value a mask secret is
    Shamir-shared and Feldman-committed as. X25519 clamps it itself, so the
    effective key keeps about 250 random bits."""

    secret: bytes
    public: bytes

    @classmethod
    def generate(cls) -> X25519Pair:
        sk = enc.int_to_scalar(secrets.randbelow(enc.FIELD_P))
        return cls(sk, crypto_scalarmult_base(sk))

    def __repr__(self) -> str:  # never show key material
        return f"X25519Pair(public={self.public.hex()[:16]}…)"


def check_survivors(ctx: RoundContext, u3: Sequence[int]) -> None:
    """Refuse to unmask (DESIGN §6) unless every survivor keeps at least
    t − 1 surviving neighbours — with a sparse graph a survivor whose
    neighbours all dropped would be unmasked alone; Flower's SecAgg+ aborts
    in the same situation. For the complete graph this is |U3| ≥ t."""
    from .._errors import AggregationError

    if len(u3) < ctx.t:
        raise AggregationError(f"only {len(u3)} survivors, {ctx.t} needed; unmasking could "
                            "expose individual updates")
    g = ctx.graph
    for u in u3:
        have = len(g.neighbours(u, u3))
        if have < ctx.t - 1:
            raise AggregationError(f"survivor {u} keeps {have} surviving neighbours, {ctx.t - 1} "
                                "needed; the round must not be unmasked")


def random_seed() -> int:
    """A fresh self-mask seed b_u, a field element."""
    return secrets.randbelow(enc.FIELD_P)


def seed_bytes(seed: int) -> bytes:
    return seed.to_bytes(32, "big")


@dataclass(frozen=True, slots=True)
class DealtShares:
    """Shares of one dealer's two secrets for every holder in U1, the Feldman
    commitments of both polynomials (t points each, self seed first) and the
    Merkle commitment to all of it: leaf 2·holder + kind (kind 0 = self seed,
    kind 1 = mask secret key) for i < 2n, leaf 2n the commitments."""

    shares: dict[int, tuple[int, int]]
    commitments: bytes
    leaves: tuple[bytes, ...]
    root: bytes

    def proof(self, holder: int, kind: int) -> list[bytes]:
        return enc.merkle_proof(self.leaves, 2 * holder + kind)


def deal(ctx: RoundContext, *, dealer: str, self_seed: int, mask_secret: bytes,
         holders: Sequence[int]) -> DealtShares:
    """Shamir-share b_u and the mask secret key t-of-|holders| (x = index + 1)
    with Feldman commitments to both polynomials."""
    xs = [h + 1 for h in holders]
    b_sh, b_c = fd.split(self_seed, threshold=ctx.t, xs=xs)
    k_sh, k_c = fd.split(enc.key_to_int(mask_secret), threshold=ctx.t, xs=xs)
    commitments = b"".join(b_c) + b"".join(k_c)
    shares = {h: (b_sh[h + 1], k_sh[h + 1]) for h in holders}
    leaves = [bytes(32)] * (2 * ctx.n + 1)
    for h, (sb, sk) in shares.items():
        for kind, value in ((0, sb), (1, sk)):
            leaves[2 * h + kind] = enc.share_leaf(chain_id=ctx.chain_id, rounds=ctx.rounds,
                                                  round_id=ctx.round_id, dealer=dealer, holder=h,
                                                  kind=kind, share=value)
    leaves[2 * ctx.n] = enc.commitment_leaf(chain_id=ctx.chain_id, rounds=ctx.rounds,
                                            round_id=ctx.round_id, dealer=dealer,
                                            commitments=commitments)
    return DealtShares(shares, commitments, tuple(leaves), enc.merkle_root(leaves))


def commitments_of(ctx: RoundContext, commitments: bytes, kind: int) -> tuple[bytes, ...]:
    """The t points of polynomial ``kind`` in a dealer's commitments."""
    t, w = ctx.t, fd.POINT_BYTES
    if len(commitments) != 2 * t * w or kind not in (0, 1):
        raise ValueError(f"commitments are {len(commitments)} bytes; a round of threshold {t} "
                         f"has {2 * t * w}")
    base = kind * t * w
    return tuple(commitments[base + j * w: base + (j + 1) * w] for j in range(t))


def holders_of(ctx: RoundContext, dealer: int, u1: Iterable[int]) -> list[int]:
    """Who may hold shares of ``dealer``: itself and its mask neighbours that
    posted keys (U1). The only holders an honest dealer deals to; a share
    leaf for anyone else is the dealer's forgery (receivers refuse the
    bundle, the contract refuses the leaf in a proof: ``FraudBadHolder``)."""
    g = ctx.graph
    return sorted(h for h in set(u1) if h == dealer or g.adjacent(dealer, h))


def mask_key_matches(key: int, public: bytes) -> bool:
    """Whether a reconstructed mask secret key (a field element, the
    unclamped little-endian value) is the key behind the posted mask public key:
    X25519(key, 9) == public. The check the aggregator and auditors run
    before using a dropped dealer's key, and the one the dealer-fault proof
    runs on-chain."""
    if not 0 <= key < enc.FIELD_P:
        return False
    return crypto_scalarmult_base(enc.int_to_scalar(key)) == public


def verify_share(ctx: RoundContext, *, dealer: str, root: bytes, holder: int, kind: int,
                 value: int, proof: Sequence[bytes]) -> bool:
    lf = enc.share_leaf(chain_id=ctx.chain_id, rounds=ctx.rounds, round_id=ctx.round_id,
                        dealer=dealer, holder=holder, kind=kind, share=value)
    return enc.merkle_verify(root, lf, 2 * holder + kind, proof)


_KEYCHECK = enc.clamp_scalar(keccak(b"fedledger.keycheck.v1"))


def valid_public_key(pk: object) -> bool:
    """True for 32 bytes that are not a small-order X25519 point (those make
    every shared secret zero: libsodium refuses them with a RuntimeError).
    Public and deterministic: every honest party reaches the same verdict."""
    if not isinstance(pk, bytes) or len(pk) != 32:
        return False
    try:
        crypto_scalarmult(_KEYCHECK, pk)  # clamped: zero iff pk has small order
    except RuntimeError:
        return False
    return True


def pair_seed(ctx: RoundContext, a: int, b: int, my_secret: bytes, their_public: bytes) -> bytes:
    from .._errors import InvalidContentError

    try:
        shared = crypto_scalarmult(my_secret, their_public)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidContentError(f"participant {b}'s mask public key is malformed or of small "
                                  "order; no pairwise seed with it exists") from None
    return enc.pair_seed(chain_id=ctx.chain_id, rounds=ctx.rounds, round_id=ctx.round_id,
                         a=a, b=b, shared=shared)


def mask(ctx: RoundContext, x: np.ndarray, *, index: int, self_seed: int,
         pair_seeds: Mapping[int, bytes]) -> np.ndarray:
    """y_u for survivor ``index``; ``pair_seeds`` maps each of its
    neighbours in U2 (every other U2 index in the complete graph) to s_uv."""
    n = ctx.padded_length
    y = enc.pad(np.asarray(x, dtype=np.uint32), ctx.chunk_elems).copy()
    if len(y) != n:
        raise ValueError(f"update has {len(x)} elements; the round expects {ctx.vector_length}")
    enc.prg_accumulate(y, seed_bytes(self_seed), +1)
    for v, s in pair_seeds.items():
        if v == index:
            continue
        enc.prg_accumulate(y, s, +1 if index < v else -1)
    return y


def unmask(ctx: RoundContext, masked_sum: np.ndarray,
           seeds: Iterable[tuple[int, int, bytes]]) -> np.ndarray:
    """Σ x from Σ y and the posted seeds: (u, SELF, b_u) and (u, v, s_uv)."""
    n = ctx.padded_length
    acc = np.asarray(masked_sum, dtype=np.uint32).copy()
    if acc.shape != (n,):
        raise ValueError(f"masked sum has shape {acc.shape}; the round expects ({n},)")
    for u, v, value in seeds:
        enc.prg_accumulate(acc, value, +1 if v != SELF and u > v else -1)
    return acc


def sum_vectors(vectors: Iterable[np.ndarray]) -> np.ndarray:
    total: np.ndarray | None = None
    for v in vectors:
        total = np.asarray(v, dtype=np.uint32).copy() if total is None else total + v
    if total is None:
        raise ValueError("no vectors to sum")
    return total


# -- share bundles (NaCl Box between per-round X25519 encryption keys) ------------

def _box_plaintext(round_id: int, dealer: int, holder: int, b_share: int, k_share: int) -> bytes:
    return (round_id.to_bytes(8, "big") + dealer.to_bytes(2, "big") + holder.to_bytes(2, "big")
            + b_share.to_bytes(32, "big") + k_share.to_bytes(32, "big"))


def seal_bundle(ctx: RoundContext, *, dealer: int, dealt: DealtShares, enc: X25519Pair,
                holder_keys: Mapping[int, bytes]) -> bytes:
    """The encoded :class:`ShareBundle` of ``dealer`` for the holders in ``holder_keys``
    (holder index → its per-round encryption public key)."""
    from nacl.public import Box, PrivateKey, PublicKey

    from ._wire import ShareBundle

    sk = PrivateKey(enc.secret)
    boxes = []
    for h in sorted(holder_keys):
        b_share, k_share = dealt.shares[h]
        box = Box(sk, PublicKey(holder_keys[h]))
        boxes.append((h, bytes(box.encrypt(_box_plaintext(ctx.round_id, dealer, h, b_share, k_share)))))
    return ShareBundle(ctx.round_id, dealer, dealt.leaves, tuple(boxes),
                       dealt.commitments).to_bytes()


def open_box(ctx: RoundContext, *, dealer: int, holder: int, box: bytes, holder_enc: X25519Pair,
             dealer_enc_pk: bytes) -> tuple[int, int]:
    """Decrypt the holder's two shares from a dealer's bundle; checks that the
    box was made for this round, dealer and holder (no replay across them)."""
    from nacl.exceptions import CryptoError
    from nacl.public import Box, PrivateKey, PublicKey

    from .._errors import InvalidContentError

    if not valid_public_key(dealer_enc_pk):
        raise InvalidContentError(f"dealer {dealer}'s encryption key is malformed or of small order")
    try:
        plain = Box(PrivateKey(holder_enc.secret), PublicKey(dealer_enc_pk)).decrypt(box)
    except (CryptoError, RuntimeError, TypeError, ValueError):
        raise InvalidContentError(f"share box from dealer {dealer} does not decrypt for holder "
                                  f"{holder}") from None
    want = _box_plaintext(ctx.round_id, dealer, holder, 0, 0)[:12]
    if len(plain) != 76 or plain[:12] != want:
        raise InvalidContentError(f"share box from dealer {dealer} is not for round "
                                  f"{ctx.round_id}, holder {holder}")
    b_share, k_share = int.from_bytes(plain[12:44], "big"), int.from_bytes(plain[44:76], "big")
    if not (b_share < enc.FIELD_P and k_share < enc.FIELD_P):
        raise InvalidContentError(f"share box from dealer {dealer} holds a value outside the field")
    return b_share, k_share
