"""Python and Solidity encodings agree byte for byte (DESIGN §4).

Each property runs the Python implementation and the Solidity library (through
contracts/testing/EncodingHarness.sol on the embedded EVM) on the same
hypothesis-generated inputs.
"""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_scalarmult

from coordinator import Chain, connect
from coordinator import _encoding as enc

FAST = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def harness():
    with connect("embedded") as chain:
        contract, _ = chain.deploy("EncodingHarness")
        yield chain, contract


u32s = st.lists(st.integers(0, 2**32 - 1), min_size=8, max_size=64).map(
    lambda xs: np.array(xs[: len(xs) // 8 * 8], dtype=np.uint32))


@FAST
@given(a=u32s, data=st.data())
def test_lane_add_and_sub_match_numpy(harness, a, data) -> None:
    _, c = harness
    b = np.array(data.draw(st.lists(st.integers(0, 2**32 - 1), min_size=len(a), max_size=len(a))),
                 dtype=np.uint32)
    s, d = c.functions.addSub(enc.to_bytes(a), enc.to_bytes(b)).call()
    assert enc.from_bytes(s).tolist() == (a + b).tolist()  # uint32 arithmetic wraps
    assert enc.from_bytes(d).tolist() == (a - b).tolist()


@FAST
@given(a=u32s, data=st.data(), n=st.one_of(st.integers(1, 5), st.integers(1, 2**64 - 1)))
def test_next_adapter_matches_the_chain(harness, a, data, n) -> None:
    # The one integer function the chunk proof recomputes: same bits on both sides,
    # including negative sums (truncation toward zero) and wrap-around.
    _, c = harness
    s = np.array(data.draw(st.lists(st.integers(0, 2**32 - 1), min_size=len(a), max_size=len(a))),
                 dtype=np.uint32)
    out = c.functions.nextAdapter(enc.to_bytes(a), enc.to_bytes(s), n).call()
    assert enc.from_bytes(out).tolist() == enc.next_adapter(a, s, n).tolist()


@given(s=st.integers(-(2**31), 2**31 - 1), n=st.integers(1, 2**20), a=st.integers(0, 2**32 - 1))
def test_next_adapter_is_truncating_fedavg(s, n, a) -> None:
    got = int(enc.next_adapter(np.array([a], np.uint32), np.array([s & 0xFFFFFFFF], np.uint32), n)[0])
    q = abs(s) // n * (1 if s >= 0 else -1)
    assert got == (a + q) % 2**32 and abs(q) <= abs(s / n) < abs(q) + 1


@FAST
@given(seed=st.binary(min_size=32, max_size=32), first=st.integers(0, 2**40),
       blocks=st.integers(1, 40))
def test_prg_matches(harness, seed, first, blocks) -> None:  # both Python paths (< and ≥ 16 blocks)
    _, c = harness
    out = c.functions.prg(seed, first, blocks).call()
    assert enc.from_bytes(out).tolist() == enc.prg(seed, 8 * blocks, start=8 * first).tolist()


@FAST
@given(n=st.integers(1, 9), data=st.data())
def test_merkle_leaf_and_proofs_match(harness, n, data) -> None:
    _, c = harness
    elems = 8
    chunks = [data.draw(st.binary(min_size=4 * elems, max_size=4 * elems)) for _ in range(n)]
    leaves = [enc.leaf(i, ch) for i, ch in enumerate(chunks)]
    for i, ch in enumerate(chunks):
        assert c.functions.leaf(i, ch).call() == leaves[i]
    root = enc.merkle_root(leaves)
    i = data.draw(st.integers(0, n - 1))
    proof = enc.merkle_proof(leaves, i)
    assert enc.merkle_verify(root, leaves[i], i, proof)
    assert c.functions.verify(root, leaves[i], i, proof).call()
    if n > 1:  # the same leaf at another index must not verify
        j = (i + 1) % n
        assert not c.functions.verify(root, leaves[i], j, proof).call()
        assert not enc.merkle_verify(root, leaves[i], j, proof)


@FAST
@given(secret=st.integers(0, enc.FIELD_P - 1), t=st.integers(1, 6), extra=st.integers(0, 4),
       data=st.data())
def test_shamir_any_t_shares_reconstruct(secret, t, extra, data) -> None:
    # On-chain, secrets are checked against Feldman commitments, never
    # interpolated (tests/test_feldman.py).
    n = t + extra
    shares = enc.shamir_split(secret, threshold=t, xs=list(range(1, n + 1)))
    subset = data.draw(st.lists(st.sampled_from(sorted(shares)), min_size=t, max_size=t, unique=True))
    points = {x: shares[x] for x in subset}
    assert enc.shamir_reconstruct(points) == secret


@pytest.mark.parametrize("t", [2, 3, 5])
def test_shamir_t_minus_one_shares_are_uniform_whatever_the_secret(t) -> None:
    """Any t−1 shares are uniform over the field and independent of the
    secret: for the secrets 0 and P−1, 600 splits each, every one of the t−1
    shares (and their pairwise sums, for the joint law) falls into 8 equal
    buckets of the field with a uniform χ² fit, and the two secrets' share
    histograms do not differ (χ² homogeneity). A split that leaked the secret
    (coefficients derived from it, a fixed polynomial) fails this."""
    from scipy.stats import chi2_contingency, chisquare

    buckets, runs = 8, 600
    hist = {}
    for secret in (0, enc.FIELD_P - 1):
        rows = []
        for _ in range(runs):
            shares = enc.shamir_split(secret, threshold=t, xs=list(range(1, t + 1)))
            vals = [shares[x] for x in range(1, t)]
            rows.append(vals + [(a + b) % enc.FIELD_P for a, b in zip(vals, vals[1:])])
        for col in range(len(rows[0])):
            counts = [0] * buckets
            for r in rows:
                counts[r[col] * buckets // enc.FIELD_P] += 1
            assert chisquare(counts).pvalue > 1e-6, (secret, col, counts)
            hist.setdefault(col, []).append(counts)
    for col, (a, b) in hist.items():
        assert chi2_contingency([a, b]).pvalue > 1e-6, (col, a, b)


class _ScriptedRng:
    """Stands in for the CSPRNG: returns the given values and records each
    randrange bound it was asked for."""

    def __init__(self, values: list[int]) -> None:
        self.values = list(values)
        self.bounds: list[int] = []

    def randrange(self, n: int) -> int:
        self.bounds.append(n)
        return self.values.pop(0)


def _poly_mul(a: list[int], b: list[int]) -> list[int]:
    out = [0] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i + j] = (out[i + j] + x * y) % enc.FIELD_P
    return out


@FAST
@given(t=st.integers(2, 6), s0=st.integers(0, enc.FIELD_P - 1), s1=st.integers(0, enc.FIELD_P - 1),
       data=st.data())
def test_shamir_t_minus_one_shares_have_the_same_law_for_any_two_secrets(t, s0, s1, data) -> None:
    """Exact, through shamir_split itself: its only randomness is t−1 draws
    of randrange(P), uniform on F^(t−1). For a fixed holder set H of t−1
    points and secrets s0, s1, the translation a ↦ a + d of those draws (d
    fixed by s0, s1, H: the coefficients of g with g(0) = 0, g = s0 − s1 on
    H) is a bijection of F^(t−1) with split(s0, a)|H = split(s1, a + d)|H.
    So the t−1 shares are the same uniform law whatever the secret. A split
    that draws fewer or narrower values, or derives a coefficient from the
    secret, breaks the equality; the t-th share still tells them apart."""
    P = enc.FIELD_P
    xs = data.draw(st.lists(st.integers(1, P - 1), min_size=t, max_size=t, unique=True))
    held, extra = xs[:-1], xs[-1]
    a = data.draw(st.lists(st.integers(0, P - 1), min_size=t - 1, max_size=t - 1))
    rng0 = _ScriptedRng(a)
    y0 = enc.shamir_split(s0, threshold=t, xs=xs, rng=rng0)
    assert rng0.bounds == [P] * (t - 1) and not rng0.values
    # g(x) = (s0 − s1)(1 − Π_{h∈H}(1 − x/h)): degree t−1, g(0) = 0, g(h) = s0 − s1.
    prod = [1]
    for h in held:
        prod = _poly_mul(prod, [1, (-pow(h, -1, P)) % P])
    d = [(-(s0 - s1) * c) % P for c in prod[1:]]
    rng1 = _ScriptedRng([(x + y) % P for x, y in zip(a, d)])
    y1 = enc.shamir_split(s1, threshold=t, xs=xs, rng=rng1)
    assert rng1.bounds == [P] * (t - 1)
    assert [y1[h] for h in held] == [y0[h] for h in held]
    assert (y1[extra] == y0[extra]) == (s0 == s1)


def test_shamir_rejects_duplicate_points() -> None:
    with pytest.raises(ValueError):
        enc.shamir_reconstruct({1: 5, 1 + enc.FIELD_P: 6})
    with pytest.raises(ValueError):
        enc.shamir_split(1, threshold=2, xs=[1, 1])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(k=st.binary(min_size=32, max_size=32), u_sk=st.binary(min_size=32, max_size=32))
def test_x25519_matches_libsodium(harness, k, u_sk) -> None:
    _, c = harness
    u = crypto_scalarmult(u_sk, (9).to_bytes(32, "little"))  # a valid public key
    assert c.functions.x25519(k, u).call() == crypto_scalarmult(k, u)


def test_x25519_rfc7748_vector(harness) -> None:
    _, c = harness
    k = bytes.fromhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
    u = bytes.fromhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    want = bytes.fromhex("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")
    assert c.functions.x25519(k, u).call() == want
    gas = c.functions.x25519Gas(k, u).call()
    assert gas < 200_000, gas


def test_a_mask_key_is_a_field_element_and_x25519_clamps_it_itself() -> None:
    # Mask keys are dealt (and Feldman-committed) as the unclamped value below
    # BN254's group order; X25519, off- and on-chain, clamps it.
    from coordinator.protocol._secagg import X25519Pair

    base = (9).to_bytes(32, "little")
    for _ in range(16):
        kp = X25519Pair.generate()
        v = enc.key_to_int(kp.secret)
        assert 0 <= v < enc.FIELD_P
        assert kp.public == crypto_scalarmult(enc.int_to_scalar(v), base)
        assert kp.public == crypto_scalarmult(enc.clamp_scalar(kp.secret), base)


@FAST
@given(seed=st.binary(min_size=32, max_size=32), n=st.integers(2, 60), data=st.data())
def test_neighbour_graph_matches_solidity_and_is_k_regular(harness, seed, n, data) -> None:
    from coordinator.protocol._secagg import Graph

    t = data.draw(st.integers(1, n), label="t")
    _, c = harness
    k, pos = c.functions.graph(seed, n, t).call()
    g = Graph.of(n, t, seed)
    assert (k, tuple(pos)) == (g.k, g.pos)
    assert sorted(g.pos) == list(range(n))
    for a in range(n):
        nb = g.neighbours(a)
        assert len(nb) == g.k  # k-regular
        assert all(g.adjacent(b, a) for b in nb)  # symmetric
    if n <= 20:
        assert g.complete
    else:
        assert g.k <= max(2 * (n - 1).bit_length(), 2 * (t - 1))


@FAST
@given(seed=st.binary(min_size=32, max_size=32), first=st.integers(0, 2**62),
       n=st.integers(1, 3000))
def test_fast_prg_path_equals_the_reference_keccak(seed, first, n) -> None:
    from eth_hash.auto import keccak

    blocks = -(-n // 8)
    ref = b"".join(keccak(seed + (first + j).to_bytes(32, "big")) for j in range(blocks))
    assert enc._RAW_KECCAK is not None  # the fast path is what runs here
    assert enc.prg(seed, n, start=8 * first).tobytes() == ref[: 4 * n]
