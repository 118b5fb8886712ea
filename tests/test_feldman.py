"""Feldman commitments over BN254 (coordinator/_feldman.py, contracts/lib/Feldman.sol):
the building block of verifiable dealing (issue 12 item 2, step 4).

The attack they are for: a dealer deals shares of one secret that are not on one
polynomial, so that different t-subsets of its committed shares interpolate to
different values, and "proves" an honest aggregator's correct seed wrong with a
subset of its choice. With commitments, every share is checked on its own
against them, and a secret against C_0 without any share: an inconsistent
dealing is refused share by share, and no subset of valid shares yields anything
but the committed secret. Each property runs Python and the EVM (the ecAdd/ecMul
precompiles through contracts/testing/EncodingHarness.sol on the embedded
chain) on the same inputs.
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator import _encoding as enc
from coordinator import _feldman as fd
from coordinator import connect

# Group arithmetic is pure Python (≈ 50 ms per multiplication here): few examples.
FEW = settings(max_examples=6, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def harness():
    with connect("embedded") as chain:
        contract, _ = chain.deploy("EncodingHarness")
        yield contract


def _evm_share(h, commitments, t, x, s) -> tuple[bool, int]:
    ok, used = h.functions.feldmanShare(b"".join(commitments), t, x, s).call()
    return ok, used


def _evm_secret(h, commitments, t, secret) -> tuple[bool, int]:
    ok, used = h.functions.feldmanSecret(b"".join(commitments), t, secret).call()
    return ok, used


secrets_ = st.integers(0, fd.R - 1)


@FEW
@given(secret=secrets_, t=st.integers(1, 4), extra=st.integers(0, 2), seed=st.integers(0, 2**32))
def test_honest_dealing_verifies_everywhere_and_any_t_shares_give_the_committed_secret(
        harness, secret, t, extra, seed) -> None:
    xs = list(range(1, t + extra + 1))
    shares, commitments = fd.split(secret, threshold=t, xs=xs, rng=random.Random(seed))
    assert len(commitments) == t
    for x, s in shares.items():
        assert fd.verify_share(commitments, x, s, threshold=t)
    assert fd.verify_shares(commitments, shares, threshold=t)
    assert fd.secret_matches(commitments, secret, threshold=t)
    x0 = xs[-1]
    assert _evm_share(harness, commitments, t, x0, shares[x0])[0]
    assert _evm_secret(harness, commitments, t, secret)[0]
    for subset in itertools.islice(itertools.combinations(xs, t), 4):
        assert fd.reconstruct({x: shares[x] for x in subset}) == secret


@FEW
@given(secret=secrets_, t=st.integers(2, 4), delta=st.integers(1, fd.R - 1),
       seed=st.integers(0, 2**32), data=st.data())
def test_a_share_off_the_committed_polynomial_is_refused(harness, secret, t, delta, seed,
                                                          data) -> None:
    # The inconsistent dealer: one share moved off the polynomial. Whatever the
    # dealer commits to, that share (or, for the other choice, the rest) fails.
    xs = list(range(1, t + 2))
    shares, commitments = fd.split(secret, threshold=t, xs=xs, rng=random.Random(seed))
    bad_x = data.draw(st.sampled_from(xs))
    bad = dict(shares)
    bad[bad_x] = (shares[bad_x] + delta) % fd.R
    assert not fd.verify_share(commitments, bad_x, bad[bad_x], threshold=t)
    assert not fd.verify_shares(commitments, bad, threshold=t)
    assert not _evm_share(harness, commitments, t, bad_x, bad[bad_x])[0]
    # ...and the value a subset through the bad share interpolates to is not
    # the committed secret, so no proof can be built on it.
    others = [x for x in xs if x != bad_x][: t - 1]
    framed = fd.reconstruct({x: bad[x] for x in [bad_x, *others]})
    assert framed != secret
    assert not fd.secret_matches(commitments, framed, threshold=t)
    assert not _evm_secret(harness, commitments, t, framed)[0]


def test_a_dealer_cannot_commit_to_a_higher_degree_polynomial() -> None:
    # t + 1 coefficients: different t-subsets of its shares give different
    # secrets. The commitment count is bound to the round's threshold.
    t = 2
    shares, commitments = fd.split(7, threshold=t + 1, xs=[1, 2, 3, 4], rng=random.Random(1))
    assert fd.verify_share(commitments, 1, shares[1], threshold=t + 1)
    assert not fd.verify_share(commitments, 1, shares[1], threshold=t)
    assert not fd.verify_shares(commitments, shares, threshold=t)
    assert not fd.secret_matches(commitments, 7, threshold=t)
    assert fd.reconstruct({1: shares[1], 2: shares[2]}) != fd.reconstruct({3: shares[3],
                                                                           4: shares[4]})


def _off_curve() -> bytes:
    return (1).to_bytes(32, "big") + (3).to_bytes(32, "big")  # 9 != 1 + 3


@pytest.mark.parametrize("bad", [
    _off_curve(),
    fd.Q.to_bytes(32, "big") + (2).to_bytes(32, "big"),  # x not reduced
    (1).to_bytes(32, "big") + (2 + fd.Q).to_bytes(32, "big")[-32:],  # y ≥ Q would wrap; here y = 2 + Q mod 2^256
    b"\x00" * 63,
], ids=["off-curve", "x-not-reduced", "y-not-reduced", "short"])
def test_malformed_commitments_are_the_dealers_fault_and_never_revert_or_burn_gas(harness,
                                                                                  bad) -> None:
    t = 2
    shares, commitments = fd.split(5, threshold=t, xs=[1, 2, 3], rng=random.Random(2))
    forged = (commitments[0], bad)
    with pytest.raises(fd.CommitmentError):
        fd.decode_point(bad)
    assert not fd.verify_share(forged, 1, shares[1], threshold=t)
    assert not fd.verify_shares(forged, shares, threshold=t)
    assert not fd.secret_matches(forged, 5, threshold=t)
    if len(bad) == fd.POINT_BYTES:
        ok, used = _evm_share(harness, forged, t, 1, shares[1])
        assert not ok and used < 20_000  # refused before any precompile call
        ok, used = _evm_secret(harness, forged, t, 5)
        assert not ok and used < 20_000


def test_out_of_range_inputs_are_refused_not_reduced(harness) -> None:
    t = 2
    shares, commitments = fd.split(9, threshold=t, xs=[1, 2], rng=random.Random(3))
    # s + R is the same group element: a share must be its canonical value,
    # or one share would have two encodings (two Merkle leaves).
    assert not fd.verify_share(commitments, 1, shares[1] + fd.R, threshold=t)
    assert not _evm_share(harness, commitments, t, 1, shares[1] + fd.R)[0]
    assert not fd.verify_share(commitments, 0, 9, threshold=t)
    assert not _evm_share(harness, commitments, t, 0, 9)[0]
    assert not fd.secret_matches(commitments, 9 + fd.R, threshold=t)
    assert not _evm_secret(harness, commitments, t, 9 + fd.R)[0]
    assert not fd.verify_share(commitments, 1, shares[1], threshold=0)
    assert not _evm_share(harness, commitments, 0, 1, shares[1])[0]


def test_points_round_trip_and_infinity_is_zero_bytes() -> None:
    _, commitments = fd.split(0, threshold=2, xs=[1, 2], rng=random.Random(4))
    assert commitments[0] == bytes(64)  # 0·G
    for c in commitments:
        assert fd.encode_point(fd.decode_point(c)) == c


@pytest.mark.parametrize("t", [3, 10, 26])
def test_on_chain_share_check_costs_about_one_ecmul_per_coefficient(harness, t) -> None:
    # A dealer-fault or seed proof at n = 50 (t = 26) must fit well within the
    # 15M gas target: the share check is t ecMul (6,000 each) + t − 1 ecAdd
    # (150) + decoding, the secret check one ecMul + decoding.
    xs = list(range(1, t + 1))
    shares, commitments = fd.split(123, threshold=t, xs=xs, rng=random.Random(t))
    ok, used = _evm_share(harness, commitments, t, t, shares[t])
    assert ok
    assert 6_000 * t <= used <= 7_500 * t + 20_000, used
    ok, used = _evm_secret(harness, commitments, t, 123)
    assert ok
    assert 6_000 <= used <= 6_000 + 1_500 * t + 20_000, used


def test_python_and_field_modulus_are_bn254() -> None:
    # The constants the contract library hard-codes.
    src = (enc.__file__.rsplit("/coordinator/", 1)[0] + "/contracts/lib/Feldman.sol")
    text = open(src, encoding="utf-8").read()
    assert str(fd.R) in text and str(fd.Q) in text


@settings(max_examples=25, deadline=None)
@given(k=st.integers(0, 2**256 - 1), m=st.integers(0, 2**256 - 1))
def test_group_arithmetic_matches_py_ecc(k, m) -> None:
    # Our Jacobian arithmetic against the Ethereum Foundation's reference.
    from py_ecc import optimized_bn128 as ref

    def ours(p: fd.Point) -> tuple[int, int] | None:
        return fd.affine(p)

    def theirs(p) -> tuple[int, int] | None:
        if ref.is_inf(p):
            return None
        x, y = ref.normalize(p)
        return int(x), int(y)

    pk, rk = fd.multiply(fd.G, k), ref.multiply(ref.G1, k % fd.R)
    assert ours(pk) == theirs(rk)
    pm, rm = fd.multiply(fd.G, m), ref.multiply(ref.G1, m % fd.R)
    assert ours(fd.add(pk, pm)) == theirs(ref.add(rk, rm))
    assert ours(fd.add(pk, pk)) == theirs(ref.double(rk))
    assert ours(fd.multiply(pk, m)) == theirs(ref.multiply(rk, m % fd.R))
    assert fd.add(pk, fd.multiply(pk, fd.R - 1))[2] == 0  # p + (−p) = ∞
