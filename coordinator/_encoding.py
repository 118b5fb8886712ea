"""Byte-exact encodings shared with the contracts (DESIGN §4).

The Solidity side is ``contracts/lib/MaskMath.sol``, ``ShamirField.sol`` and
``X25519.sol``; tests run both on the same inputs through
``contracts/testing/EncodingHarness.sol``.

* **Vectors** are uint32 elements of Z_2^32, little-endian, zero-padded to
  whole chunks of ``chunk_elems`` elements (a multiple of 8).
* **Leaf** of chunk c: keccak256(uint32 c big-endian ‖ chunk bytes).
* **Merkle tree**: index-based; leaves padded with 32 zero bytes to a power
  of two; parent = keccak256(left ‖ right); a one-leaf tree's root is the leaf.
* **PRG**: keccak256 in counter mode. Block j = keccak256(seed ‖ uint256 j);
  element g is the little-endian uint32 at bytes [4(g mod 8), +4) of block
  ⌊g/8⌋. Computable on-chain for one chunk; see docs/decisions.md for its
  off-chain throughput.
* **Shamir** over BN254's group order P (the scalar field of G1, so every
  dealing carries Feldman commitments the EVM can check:
  ``coordinator/_feldman.py``, ``contracts/lib/Feldman.sol``); share
  x-coordinates are participant index + 1. Mask secret keys are dealt as
  field elements below P, unclamped (X25519 clamps them itself).
* **Commitments** are keccak256 over ABI-encoded fields, domain-separated by
  a tag, the chain id, the rounds contract and the round.
"""

from __future__ import annotations

import importlib
import os
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np
from eth_abi.abi import encode as abi_encode
from eth_hash.auto import keccak

#: BN254's group order: Shamir shares, self-mask seeds and X25519 mask secrets
#: are below it (Feldman commitments over G1, coordinator/_feldman.py).
FIELD_P = 21888242871839275222246405745257275088548364400416034343698204186575808495617
DEFAULT_CHUNK_ELEMS = 256  # 1 KiB; bounds fraud-proof gas, see docs/decisions.md
SELF_SEED = 0xFFFF  # the `v` of a self-mask seed entry

COMMIT_DOMAIN = keccak(b"fedledger.commit.v1")
SHARE_DOMAIN = keccak(b"fedledger.share.v1")
PAIR_DOMAIN = keccak(b"fedledger.pair.v1")
KEYS_DOMAIN = keccak(b"fedledger.keys.v1")
FELDMAN_DOMAIN = keccak(b"fedledger.feldman.v1")


# -- vectors and chunks --------------------------------------------------------

def num_chunks(length: int, chunk_elems: int = DEFAULT_CHUNK_ELEMS) -> int:
    return max(1, -(-length // chunk_elems))


def pad(vec: np.ndarray, chunk_elems: int = DEFAULT_CHUNK_ELEMS) -> np.ndarray:
    """uint32 vector zero-padded to whole chunks."""
    v = np.asarray(vec, dtype=np.uint32)
    total = num_chunks(len(v), chunk_elems) * chunk_elems
    if len(v) == total:
        return v
    out = np.zeros(total, dtype=np.uint32)
    out[: len(v)] = v
    return out


def to_bytes(vec: np.ndarray) -> bytes:
    return np.asarray(vec, dtype="<u4").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    if len(data) % 4:
        raise ValueError(f"vector bytes length {len(data)} is not a multiple of 4")
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


def chunk_bytes(vec: np.ndarray, chunk_elems: int = DEFAULT_CHUNK_ELEMS) -> list[bytes]:
    v = pad(vec, chunk_elems)
    raw = to_bytes(v)
    size = 4 * chunk_elems
    return [raw[i:i + size] for i in range(0, len(raw), size)]


def leaf(index: int, chunk: bytes) -> bytes:
    return keccak(index.to_bytes(4, "big") + chunk)


def merkle_levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    size = 1
    while size < len(leaves):
        size *= 2
    level = list(leaves) + [bytes(32)] * (size - len(leaves))
    levels = [level]
    while len(level) > 1:
        level = [keccak(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    return merkle_levels(leaves)[-1][0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    proof = []
    for level in merkle_levels(leaves)[:-1]:
        proof.append(level[index ^ 1])
        index //= 2
    return proof


def merkle_verify(root: bytes, leaf_hash: bytes, index: int, proof: Sequence[bytes]) -> bool:
    h = leaf_hash
    for sib in proof:
        h = keccak(h + sib) if index % 2 == 0 else keccak(sib + h)
        index //= 2
    return index == 0 and h == root


def vector_root(vec: np.ndarray, chunk_elems: int = DEFAULT_CHUNK_ELEMS) -> bytes:
    return merkle_root([leaf(i, c) for i, c in enumerate(chunk_bytes(vec, chunk_elems))])


# -- PRG -----------------------------------------------------------------------

def prg(seed: bytes, n: int, start: int = 0) -> np.ndarray:
    """Elements [start, start + n) of PRG(seed) as uint32."""
    if len(seed) != 32:
        raise ValueError("PRG seeds are 32 bytes")
    if start % 8:
        raise ValueError("PRG reads start on a block boundary (multiple of 8)")
    first = start // 8
    blocks = -(-n // 8)
    if _NATIVE is not None and first + blocks <= 2**64:
        out = np.empty(n, np.uint32)
        _NATIVE.prg_apply(out, seed, first, 0)
        return out
    if _RAW_KECCAK is not None and blocks >= 16:
        buf = _prg_blocks_raw(seed, first, blocks)
    else:
        buf = b"".join(keccak(seed + (first + j).to_bytes(32, "big")) for j in range(blocks))
    return np.frombuffer(buf, dtype="<u4")[:n].astype(np.uint32)


def prg_accumulate(acc: np.ndarray, seed: bytes, sign: int, start: int = 0) -> None:
    """acc += sign · prg(seed, len(acc), start) (mod 2^32), in place; sign is
    +1 or −1. One pass over ``acc`` with the native PRG (no temporary mask)."""
    if sign not in (1, -1):
        raise ValueError("sign is +1 or -1")
    if acc.dtype != np.uint32 or acc.ndim != 1 or not acc.flags.c_contiguous or not acc.flags.writeable:
        raise ValueError("the accumulator is a writable, contiguous 1-D uint32 array")
    if len(seed) != 32:
        raise ValueError("PRG seeds are 32 bytes")
    if start % 8:
        raise ValueError("PRG reads start on a block boundary (multiple of 8)")
    n = len(acc)
    if _NATIVE is not None and start // 8 + -(-n // 8) <= 2**64:
        _NATIVE.prg_apply(acc, seed, start // 8, sign)
        return
    if sign > 0:
        acc += prg(seed, n, start)
    else:
        acc -= prg(seed, n, start)


def prg_path() -> str:
    """Which implementation ``prg`` runs here (for `fedledger doctor` and the benchmarks)."""
    if _NATIVE is not None:
        return f"native ({_NATIVE.default_kernel()} kernel)"
    why = ("native PRG off: FEDLEDGER_PRG=python" if os.environ.get("FEDLEDGER_PRG", "") == "python"
           else "no native PRG built: scripts/setup builds it with cargo")
    if _RAW_KECCAK is not None:
        return f"pycryptodome keccak via cffi ({why})"
    return f"eth_hash keccak ({why})"


def _load_native() -> Any:
    """The Rust keccak-CTR PRG ``coordinator/_prg_native`` that scripts/setup
    builds from scripts/prg (docs/decisions.md), or None: then the paths below
    run. FEDLEDGER_PRG=python turns it off (benchmarks compare both)."""
    if os.environ.get("FEDLEDGER_PRG", "") == "python":
        return None
    try:
        return importlib.import_module("coordinator._prg_native")
    except ImportError:
        return None


_NATIVE = _load_native()


def _load_raw_keccak() -> tuple[Any, Any] | None:
    """pycryptodome's C Keccak through cffi, called once per 64-byte block
    without Python hashing objects: 3.5× the throughput of eth_hash's keccak
    here (docs/decisions.md). It is a private API of pycryptodome, so any
    import problem falls back to eth_hash; tests compare both paths."""
    try:
        from Crypto.Hash.keccak import _raw_keccak_lib as lib  # type: ignore[attr-defined]
        from Crypto.Util._raw_api import backend, ffi

        if backend != "cffi":
            return None
        return lib, ffi
    except Exception:  # noqa: BLE001 - optional fast path
        return None


_RAW_KECCAK = _load_raw_keccak()


def _prg_blocks_raw(seed: bytes, first: int, blocks: int) -> bytes:
    assert _RAW_KECCAK is not None
    lib, ffi = _RAW_KECCAK
    msgs = np.zeros((blocks, 64), np.uint8)  # seed ‖ uint256 counter (big-endian)
    msgs[:, :32] = np.frombuffer(seed, np.uint8)
    msgs[:, 56:] = np.arange(first, first + blocks, dtype=">u8").view(np.uint8).reshape(blocks, 8)
    out = np.empty(32 * blocks, np.uint8)
    state = ffi.new("void**")
    if lib.keccak_init(state, 64, 24) != 0:  # capacity 512 bits: keccak256
        raise RuntimeError("keccak_init failed")
    st = state[0]
    src = ffi.cast("uint8_t*", ffi.from_buffer(msgs))
    dst = ffi.cast("uint8_t*", ffi.from_buffer(out))
    reset, absorb, digest = lib.keccak_reset, lib.keccak_absorb, lib.keccak_digest
    try:
        for j in range(blocks):
            reset(st)
            absorb(st, src + 64 * j, 64)
            digest(st, dst + 32 * j, 32, 1)  # padding 0x01: Keccak, as the EVM
    finally:
        lib.keccak_destroy(st)
    return out.tobytes()


# -- Shamir over FIELD_P -------------------------------------------------------

def shamir_split(secret: int, *, threshold: int, xs: Sequence[int],
                 rng: secrets.SystemRandom | None = None) -> dict[int, int]:
    """Shares f(x) for each x in ``xs`` of a random degree-(t−1) polynomial with f(0) = secret."""
    if not 0 <= secret < FIELD_P:
        raise ValueError("the secret must be a field element (0 <= s < P)")
    if not 1 <= threshold <= len(xs):
        raise ValueError(f"threshold {threshold} must be between 1 and the number of shares {len(xs)}")
    if len(set(xs)) != len(xs) or any(not 0 < x < FIELD_P for x in xs):
        raise ValueError("share x-coordinates must be distinct and non-zero")
    r = rng or secrets.SystemRandom()
    coeffs = [secret] + [r.randrange(FIELD_P) for _ in range(threshold - 1)]
    out = {}
    for x in xs:
        acc = 0
        for c in reversed(coeffs):
            acc = (acc * x + c) % FIELD_P
        out[x] = acc
    return out


def shamir_reconstruct(points: dict[int, int], *, modulus: int = FIELD_P) -> int:
    """f(0) by Lagrange interpolation (as ShamirField.interpolateAtZero), over
    the prime field of size ``modulus`` (FIELD_P; BN254's group order for
    Feldman-committed shares, coordinator/_feldman.py)."""
    xs = list(points)
    if len(set(xs)) != len(xs) or any(not 0 < x < modulus for x in xs):
        raise ValueError("share x-coordinates must be distinct and non-zero")
    acc = 0
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if i != j:
                num = num * xj % modulus
                den = den * (xj - xi) % modulus
        acc = (acc + points[xi] * num * pow(den, modulus - 2, modulus)) % modulus
    return acc


# -- commitments -----------------------------------------------------------------

def commitment_hash(*, chain_id: int, rounds: str, round_id: int, peer: str, cid_digest: bytes,
                    chunks_root: bytes, weight: int, dp_config: int) -> bytes:
    return keccak(abi_encode(
        ["bytes32", "uint256", "address", "uint256", "address", "bytes32", "bytes32", "uint64",
         "uint32"],
        [COMMIT_DOMAIN, chain_id, rounds, round_id, peer, cid_digest, chunks_root, weight,
         dp_config]))


def share_leaf(*, chain_id: int, rounds: str, round_id: int, dealer: str, holder: int, kind: int,
               share: int) -> bytes:
    return keccak(abi_encode(
        ["bytes32", "uint256", "address", "uint256", "address", "uint16", "uint8", "uint256"],
        [SHARE_DOMAIN, chain_id, rounds, round_id, dealer, holder, kind, share]))


def commitment_leaf(*, chain_id: int, rounds: str, round_id: int, dealer: str,
                    commitments: bytes) -> bytes:
    """The share tree's leaf 2n: the dealer's Feldman commitments (both
    polynomials, t points each, concatenated), bound to its share root."""
    return keccak(abi_encode(
        ["bytes32", "uint256", "address", "uint256", "address", "bytes32"],
        [FELDMAN_DOMAIN, chain_id, rounds, round_id, dealer, keccak(commitments)]))


def keys_hash(enc_pk: bytes, mask_pk: bytes) -> bytes:
    return keccak(abi_encode(["bytes32", "bytes32", "bytes32"], [KEYS_DOMAIN, enc_pk, mask_pk]))


def pair_seed(*, chain_id: int, rounds: str, round_id: int, a: int, b: int, shared: bytes) -> bytes:
    lo, hi = min(a, b), max(a, b)
    return keccak(abi_encode(
        ["bytes32", "uint256", "address", "uint256", "uint16", "uint16", "bytes32"],
        [PAIR_DOMAIN, chain_id, rounds, round_id, lo, hi, shared]))


def seeds_hash(seeds: Sequence[tuple[int, int, bytes]]) -> bytes:
    return keccak(abi_encode(["(uint16,uint16,bytes32)[]"], [list(seeds)]))


# -- X25519 scalars as field elements ---------------------------------------------

def clamp_scalar(sk: bytes) -> bytes:
    """RFC 7748 clamping; X25519 gives the same result for sk and clamp(sk)."""
    b = bytearray(sk)
    b[0] &= 248
    b[31] &= 127
    b[31] |= 64
    return bytes(b)


def scalar_to_int(sk: bytes) -> int:
    return int.from_bytes(clamp_scalar(sk), "little")


def key_to_int(sk: bytes) -> int:
    """A secret key's bytes as the little-endian integer, unclamped: the value
    a mask secret is dealt as (a field element; X25519 clamps it itself)."""
    return int.from_bytes(sk, "little")


def int_to_scalar(v: int) -> bytes:
    return v.to_bytes(32, "little")


# -- quantization --------------------------------------------------------------

def quantize(x: np.ndarray, *, frac_bits: int, clip: float,
             rng: np.random.Generator | None = None) -> np.ndarray:
    """float → fixed point with scale 2^frac_bits → Z_2^32 (two's complement).

    Values are clipped to [−clip, clip] first, then rounded stochastically
    (unbiased: E[q] = x·2^f) when ``rng`` is given, to nearest otherwise. The
    caller picks ``clip`` so that a sum over the largest round cannot wrap:
    n_max · clip · 2^f < 2^31 (see :func:`max_clip`).
    """
    if not 0 <= frac_bits <= 30:
        raise ValueError(f"frac_bits={frac_bits} must be between 0 and 30")
    if not clip > 0 or clip * 2.0**frac_bits >= 2**31:
        raise ValueError(f"clip={clip} must be positive and below 2^(31-frac_bits)")
    v = np.clip(np.asarray(x, dtype=np.float64), -clip, clip) * 2.0**frac_bits
    if rng is None:
        q = np.rint(v)
    else:
        q = np.floor(v + rng.random(v.shape))
    return q.astype(np.int64).astype(np.uint32)


def dequantize(q: np.ndarray, *, frac_bits: int) -> np.ndarray:
    """Z_2^32 → signed fixed point → float64."""
    return np.asarray(q, dtype=np.uint32).view(np.int32).astype(np.float64) / 2.0**frac_bits


def to_fixed(x: np.ndarray, *, frac_bits: int) -> np.ndarray:
    """A float adapter → the round's fixed point in Z_2^32, rounded to
    nearest and saturated to the int32 range (deterministic: the initial
    adapter every later one is derived from)."""
    if not 0 <= frac_bits <= 30:
        raise ValueError(f"frac_bits={frac_bits} must be between 0 and 30")
    v: np.ndarray = np.rint(np.asarray(x, dtype=np.float64) * 2.0**frac_bits)
    v = np.clip(np.nan_to_num(v, nan=0.0), -(2**31), 2**31 - 1)
    out: np.ndarray = v.astype(np.int64).astype(np.uint32)
    return out


def next_adapter(prev: np.ndarray, total: np.ndarray, weight_sum: int) -> np.ndarray:
    """The next global adapter in fixed point (DESIGN §3.6), element-wise
    (a + trunc(int32(s) / N)) mod 2^32 with a the previous adapter, s = Σx and
    N = Σ n_u. The one integer function the chunk proof recomputes on-chain
    (FraudProofs._nextAdapter); ``prev`` and ``total`` have equal length."""
    if weight_sum < 1:
        raise ValueError(f"weight_sum={weight_sum} must be at least 1")
    a = np.asarray(prev, dtype=np.uint32).astype(np.int64)
    s = np.asarray(total, dtype=np.uint32).view(np.int32).astype(np.int64)
    if a.shape != s.shape:
        raise ValueError(f"adapter has {a.size} elements but the aggregate {s.size}")
    if weight_sum > 2**31:  # |s| <= 2^31: every quotient truncates to 0 (and N may exceed int64)
        q = np.zeros_like(s)
    else:
        q = np.sign(s) * (np.abs(s) // weight_sum)  # truncation toward zero, like the EVM's sdiv
    return ((a + q) & 0xFFFFFFFF).astype(np.uint32)


def max_clip(*, frac_bits: int, participants: int) -> float:
    """The largest per-element clip for which a sum of ``participants``
    quantized values never wraps around in Z_2^32 (signed range). Each
    quantized magnitude is at most clip·2^f + 1 (rounding up by one step)."""
    return ((2**31 - 1) / participants - 1) / 2.0**frac_bits
