"""Feldman commitments over BN254's G1 (issue 12 item 2, step 4: verifiable dealing).

A dealer that Shamir-shares a secret with the polynomial f(x) = a_0 + a_1 x + …
+ a_{t−1} x^{t−1} over BN254's scalar field (order :data:`R`) publishes
C_j = a_j·G. Anyone holding a share (x, s) can then check s·G = Σ_j x^j·C_j, and
anyone holding a claimed secret can check secret·G = C_0, without learning the
polynomial (discrete logarithm in G1). The EVM checks the same equations with
the ecAdd/ecMul precompiles (EIP-196, ``contracts/lib/Feldman.sol``), so a share
that fails its dealer's commitments is public evidence against the dealer, and a
secret reconstructed from shares that pass them is the committed one — however
the dealer chose its shares.

The group arithmetic is our own, Jacobian coordinates on plain integers with a
4-bit window: an order of magnitude faster than py_ecc's ``optimized_bn128``,
whose field objects cost more than the arithmetic (docs/decisions.md,
Dealing). The tests check every operation against py_ecc, the Ethereum
Foundation's reference, and against the EVM's precompiles. Points travel as
the precompiles' encoding: 64 bytes, x ‖ y big-endian, the point at infinity
as 64 zero bytes. Every decoder refuses a coordinate ≥ Q or a point off the
curve y² = x³ + 3 (G1 has cofactor 1, so on the curve means in the group).

Dealing (``coordinator/protocol/_secagg.deal``) commits to both of a dealer's
polynomials; holders, the aggregator and auditors check shares and secrets
against them, and the fraud-proof contract decides seed and dealer-fault
proofs from them (docs/decisions.md, Dealing).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

from . import _encoding as enc

#: BN254's scalar field order (the order of G1): shares and secrets live here
#: (the field of every Shamir dealing, :data:`coordinator._encoding.FIELD_P`).
R: int = enc.FIELD_P
#: BN254's base field prime: point coordinates live here.
Q: int = 21888242871839275222246405745257275088696311157297823662689037894645226208583
POINT_BYTES = 64

#: A point in Jacobian coordinates (X, Y, Z) ↦ (X/Z², Y/Z³); Z = 0 is infinity.
Point = tuple[int, int, int]
INF: Point = (1, 1, 0)
G: Point = (1, 2, 1)


class CommitmentError(ValueError):
    """A commitment that is not a point of G1 (wrong length, a coordinate
    ≥ Q, or off the curve). Public data: the message names no secret."""


def _double(p: Point) -> Point:
    x, y, z = p
    if z == 0 or y == 0:
        return INF
    a = x * x % Q
    b = y * y % Q
    c = b * b % Q
    d = 2 * ((x + b) * (x + b) - a - c) % Q
    e = 3 * a % Q
    x3 = (e * e - 2 * d) % Q
    return x3, (e * (d - x3) - 8 * c) % Q, 2 * y * z % Q


def add(p: Point, q: Point) -> Point:
    if p[2] == 0:
        return q
    if q[2] == 0:
        return p
    x1, y1, z1 = p
    x2, y2, z2 = q
    z1z1, z2z2 = z1 * z1 % Q, z2 * z2 % Q
    u1, u2 = x1 * z2z2 % Q, x2 * z1z1 % Q
    s1, s2 = y1 * z2 * z2z2 % Q, y2 * z1 * z1z1 % Q
    if u1 == u2:
        return _double(p) if s1 == s2 else INF
    h = (u2 - u1) % Q
    i = 4 * h * h % Q
    j = h * i % Q
    r = 2 * (s2 - s1) % Q
    v = u1 * i % Q
    x3 = (r * r - j - 2 * v) % Q
    y3 = (r * (v - x3) - 2 * s1 * j) % Q
    z3 = ((z1 + z2) * (z1 + z2) - z1z1 - z2z2) * h % Q
    return x3, y3, z3


def multiply(p: Point, k: int) -> Point:
    """k·p for any integer k (reduced mod R), a 4-bit fixed window."""
    k %= R
    if k == 0 or p[2] == 0:
        return INF
    table = [INF, p]
    for _ in range(14):
        table.append(add(table[-1], p))
    acc = INF
    for shift in range((k.bit_length() + 3) // 4 * 4 - 4, -1, -4):
        if acc[2]:
            for _ in range(4):
                acc = _double(acc)
        acc = add(acc, table[(k >> shift) & 15])
    return acc


def affine(p: Point) -> tuple[int, int] | None:
    """(x, y), or None for infinity."""
    x, y, z = p
    if z == 0:
        return None
    zi = pow(z, -1, Q)
    zi2 = zi * zi % Q
    return x * zi2 % Q, y * zi2 * zi % Q


def equal(p: Point, q: Point) -> bool:
    return affine(p) == affine(q)


def encode_point(p: Point) -> bytes:
    xy = affine(p)
    if xy is None:
        return bytes(POINT_BYTES)
    return xy[0].to_bytes(32, "big") + xy[1].to_bytes(32, "big")


def decode_point(raw: bytes) -> Point:
    """The G1 point of a 64-byte encoding; :class:`CommitmentError` otherwise."""
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != POINT_BYTES:
        raise CommitmentError(f"a G1 point is {POINT_BYTES} bytes")
    x, y = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    if x >= Q or y >= Q:
        raise CommitmentError("a G1 coordinate is not below the field prime")
    if x == 0 and y == 0:
        return INF
    if (y * y - x * x * x - 3) % Q:
        raise CommitmentError("not a point of BN254's G1")
    return x, y, 1


def split(secret: int, *, threshold: int, xs: Sequence[int],
          rng: secrets.SystemRandom | None = None) -> tuple[dict[int, int], tuple[bytes, ...]]:
    """Shares f(x) mod R for each x in ``xs`` of a random degree-(t−1)
    polynomial with f(0) = secret, and its commitments (C_0 … C_{t−1})."""
    if not 0 <= secret < R:
        raise ValueError("the secret must be below BN254's group order")
    if not 1 <= threshold <= len(xs):
        raise ValueError(f"threshold {threshold} must be between 1 and the number of shares {len(xs)}")
    if len(set(xs)) != len(xs) or any(not 0 < x < R for x in xs):
        raise ValueError("share x-coordinates must be distinct and non-zero")
    r = rng or secrets.SystemRandom()
    coeffs = [secret] + [r.randrange(R) for _ in range(threshold - 1)]
    shares = {x: _horner_int(coeffs, x) for x in xs}
    return shares, commit(coeffs)


def reconstruct(shares: Mapping[int, int]) -> int:
    """f(0) mod R from t shares (Lagrange at zero)."""
    return enc.shamir_reconstruct(dict(shares), modulus=R)


def _horner_int(coeffs: Sequence[int], x: int) -> int:
    acc = 0
    for c in reversed(coeffs):
        acc = (acc * x + c) % R
    return acc


def commit(coeffs: Sequence[int]) -> tuple[bytes, ...]:
    """C_j = a_j·G for each coefficient."""
    return tuple(encode_point(multiply(G, c)) for c in coeffs)


def _decode_all(commitments: Sequence[bytes], threshold: int) -> list[Point]:
    # Exactly t coefficients: a dealer committing to a polynomial of higher
    # degree could deal shares of which different t-subsets give different secrets.
    if len(commitments) != threshold or threshold < 1:
        raise CommitmentError(f"{len(commitments)} commitments for threshold {threshold}")
    return [decode_point(c) for c in commitments]


def _eval(points: Sequence[Point], x: int) -> Point:
    """Σ_j x^j·C_j by Horner: x is a share index (small), so each step is a
    short multiplication."""
    acc = points[-1]
    for p in reversed(points[:-1]):
        acc = add(multiply(acc, x), p)
    return acc


def verify_share(commitments: Sequence[bytes], x: int, share: int, *, threshold: int) -> bool:
    """Whether (x, share) lies on the committed polynomial: share·G = Σ x^j·C_j.
    False (never an exception) for a share outside [0, R), x outside (0, R)
    or commitments that are not t G1 points: each is the dealer's fault."""
    if not (isinstance(x, int) and isinstance(share, int) and 0 < x < R and 0 <= share < R):
        return False
    try:
        points = _decode_all(commitments, threshold)
    except CommitmentError:
        return False
    return equal(multiply(G, share), _eval(points, x))


def verify_shares(commitments: Sequence[bytes], shares: Mapping[int, int], *, threshold: int,
                  rng: secrets.SystemRandom | None = None) -> bool:
    """All of ``shares`` (x → f(x)) at once, with one random linear combination:
    (Σ ρ_i s_i)·G = Σ_j (Σ_i ρ_i x_i^j)·C_j, t + 1 multiplications instead of
    t per share. A false batch is never accepted except with probability
    ≤ 2^−128 over ρ (fresh, secret randomness: a dealer cannot aim at it).
    Use :func:`verify_share` to find which share failed."""
    if not shares:
        return True
    if any(not (isinstance(x, int) and isinstance(s, int) and 0 < x < R and 0 <= s < R)
           for x, s in shares.items()):
        return False
    try:
        points = _decode_all(commitments, threshold)
    except CommitmentError:
        return False
    r = rng or secrets.SystemRandom()
    rho = {x: r.getrandbits(128) | 1 for x in shares}
    lhs = sum(rho[x] * s for x, s in shares.items()) % R
    coeff = [0] * len(points)
    for x, w in rho.items():
        xp = w
        for j in range(len(points)):
            coeff[j] = (coeff[j] + xp) % R
            xp = xp * x % R
    rhs = INF
    for c, p in zip(coeff, points, strict=True):
        rhs = add(rhs, multiply(p, c))
    return equal(multiply(G, lhs), rhs)


def secret_matches(commitments: Sequence[bytes], secret: int, *, threshold: int) -> bool:
    """Whether ``secret`` is the committed f(0): secret·G = C_0. How a seed
    posted by an aggregator is checked against the dealer's commitment
    without any share."""
    if not (isinstance(secret, int) and 0 <= secret < R):
        return False
    try:
        c0 = _decode_all(commitments, threshold)[0]
    except CommitmentError:
        return False
    return equal(multiply(G, secret), c0)
