"""CIDs, the UnixFS layout and CAR files, computed without a daemon."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator import ConfigError, ContentMismatchError
from coordinator.store._cid import CID, RAW, AddOptions, cid_of, layout, read_varint, varint
from coordinator.store._store import EmbeddedStore, read_car


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_round_trips(n: int) -> None:
    enc = varint(n)
    assert read_varint(enc) == (n, len(enc))


@given(st.sampled_from([RAW, 0x70]), st.binary(min_size=32, max_size=32))
def test_cid_text_and_bytes_round_trip(codec: int, digest: bytes) -> None:
    cid = CID(codec, digest)
    assert CID.parse(str(cid)) == cid
    assert CID.from_bytes(cid.to_bytes()) == cid
    assert str(cid).startswith("bafk" if codec == RAW else "bafy")


def test_known_cid_of_empty_and_small_files() -> None:
    # Values Kubo prints for `ipfs add --cid-version=1 --raw-leaves`.
    assert str(cid_of(b"")) == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    assert str(cid_of(b"hello world")) == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"


@pytest.mark.parametrize("bad", ["Qm123", "bnot-base32!", "b" + "a" * 10])
def test_bad_cid_text_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        CID.parse(bad)


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=5000), chunk=st.integers(min_value=1, max_value=700),
       links=st.integers(min_value=2, max_value=6))
def test_embedded_store_round_trips_any_layout(data: bytes, chunk: int, links: int) -> None:
    opts = AddOptions(chunk_size=chunk, max_links=links)
    store = EmbeddedStore(opts=opts)
    cid = store.add(data)
    assert cid == cid_of(data, opts)
    assert store.cat(cid) == data
    roots, blocks = read_car(store.export_car(cid))
    assert roots == [cid]
    assert {c for c, _ in blocks} == {c for c, _ in layout(data, opts)[1]}
    other = EmbeddedStore(opts=opts)
    assert other.import_car(store.export_car(cid)) == [cid]
    assert other.cat(cid) == data


def test_tampered_block_is_rejected(tmp_path) -> None:
    store = EmbeddedStore(tmp_path, opts=AddOptions(chunk_size=64))
    data = os.urandom(1000)
    cid = store.add(data)
    leaf = next(p for p in (tmp_path / "blocks").iterdir() if p.name.startswith("bafk"))
    leaf.write_bytes(b"\x00" + leaf.read_bytes()[1:])
    with pytest.raises(ContentMismatchError):
        store.cat(cid)


def test_car_with_a_forged_block_is_rejected() -> None:
    store = EmbeddedStore()
    cid = store.add(b"x" * 100)
    car = bytearray(store.export_car(cid))
    car[-1] ^= 1
    with pytest.raises(ContentMismatchError):
        EmbeddedStore().import_car(bytes(car))


def test_garbage_car_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a valid CAR"):
        EmbeddedStore().import_car(b"\x05abc")


def test_chunk_size_is_validated() -> None:
    with pytest.raises(ConfigError, match="chunk size 0"):
        AddOptions(chunk_size=0)


# -- quantization (coordinator._encoding) -----------------------------------------

import numpy as np  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from coordinator import _encoding as enc  # noqa: E402

floats = arrays(np.float64, st.integers(1, 200), elements=st.floats(-4, 4, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(x=floats, f=st.integers(4, 20), seed=st.integers(0, 2**32))
def test_quantize_dequantize_error_is_at_most_one_step(x, f, seed) -> None:
    clip = 4.0
    if clip * 2**f >= 2**31:
        return
    rng = np.random.default_rng(seed)
    back = enc.dequantize(enc.quantize(x, frac_bits=f, clip=clip, rng=rng), frac_bits=f)
    assert np.all(np.abs(back - x) <= 2.0**-f + 1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), f=st.integers(8, 20), seed=st.integers(0, 2**32))
def test_sum_of_n_quantized_values_at_max_clip_does_not_wrap(n, f, seed) -> None:
    clip = enc.max_clip(frac_bits=f, participants=n)
    rng = np.random.default_rng(seed)
    xs = [rng.choice([-1.0, 1.0], 16) * clip for _ in range(n)]
    total = np.zeros(16, dtype=np.uint32)
    for x in xs:
        total += enc.quantize(x, frac_bits=f, clip=clip)
    got = enc.dequantize(total, frac_bits=f)
    assert np.allclose(got, np.sum(xs, axis=0), atol=n * 2.0**-f)


def test_stochastic_rounding_is_unbiased() -> None:
    rng = np.random.default_rng(1)
    x = np.full(200_000, 0.3 / 2**8)  # 0.3 of a step at f = 8
    q = enc.dequantize(enc.quantize(x, frac_bits=8, clip=1.0, rng=rng), frac_bits=8)
    assert abs(q.mean() - x[0]) < 0.01 * 2**-8
