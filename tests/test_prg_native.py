"""The native keccak-CTR PRG (scripts/prg → coordinator/_prg_native) is
byte-identical to the reference construction keccak256(seed ‖ uint256_be(j))
computed with eth_hash, on every kernel this CPU runs (issue 15 item 4).

The Solidity side is checked against ``enc.prg`` in test_encoding_cross.py;
these properties tie the native path to the same reference."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator import _encoding as enc

native = pytest.importorskip("coordinator._prg_native",
                             reason="native PRG not built (scripts/setup builds it with cargo)")

KERNELS = native.kernels()
PROP = settings(max_examples=60, deadline=None)
SEEDS = st.binary(min_size=32, max_size=32)
# every length class: empty, partial block, exact block, one past, several batches of 8
LENGTHS = st.one_of(st.sampled_from([0, 1, 7, 8, 9, 63, 64, 65, 511, 512, 513]), st.integers(0, 2500))
# counters near 0, in the middle, and up against 2^64 − 1
FIRSTS = st.one_of(st.integers(0, 64), st.integers(0, 2**64 - 1000), st.integers(2**64 - 1000, 2**64 - 400))


def reference(seed: bytes, first: int, blocks: int) -> bytes:
    return b"".join(keccak(seed + (first + j).to_bytes(32, "big")) for j in range(blocks))


def test_every_kernel_is_listed_and_the_default_is_one_of_them() -> None:
    assert KERNELS[0] == "portable"
    assert native.default_kernel() in KERNELS
    assert enc._NATIVE is native  # prg() runs it here
    assert enc.prg_path().startswith("native")


@PROP
@given(seed=SEEDS, first=FIRSTS, blocks=st.integers(0, 40), kernel=st.sampled_from(KERNELS))
def test_prg_blocks_equals_eth_hash_keccak(seed, first, blocks, kernel) -> None:
    assert native.prg_blocks(seed, first, blocks, kernel=kernel) == reference(seed, first, blocks)


@PROP
@given(seed=SEEDS, first=FIRSTS, n=LENGTHS)
def test_enc_prg_native_equals_eth_hash_keccak(seed, first, n) -> None:
    ref = reference(seed, first, -(-n // 8))[: 4 * n]
    out = enc.prg(seed, n, start=8 * first)
    assert out.dtype == np.uint32 and out.shape == (n,)
    assert out.astype("<u4").tobytes() == ref


@PROP
@given(seed=SEEDS, first=FIRSTS, n=LENGTHS, sign=st.sampled_from([1, -1]), data=st.data())
def test_accumulate_adds_or_subtracts_the_mask_mod_2_32(seed, first, n, sign, data) -> None:
    start = np.frombuffer(data.draw(st.binary(min_size=4 * n, max_size=4 * n)), "<u4").astype(np.uint32)
    mask = np.frombuffer(reference(seed, first, -(-n // 8))[: 4 * n], "<u4").astype(np.int64)
    want = ((start.astype(np.int64) + sign * mask) % 2**32).astype(np.uint32)
    acc = start.copy()
    enc.prg_accumulate(acc, seed, sign, start=8 * first)
    assert acc.tolist() == want.tolist()


@settings(max_examples=30, deadline=None)
@given(seed=SEEDS, first=FIRSTS, n=LENGTHS, op=st.sampled_from([0, 1, -1]))
def test_kernels_agree_with_each_other(seed, first, n, op) -> None:
    init = np.arange(n, dtype=np.uint32) * np.uint32(2654435761)
    outs = []
    for k in KERNELS:
        acc = init.copy()
        native.prg_apply(acc, seed, first, op, kernel=k)
        outs.append(acc.tobytes())
    assert all(o == outs[0] for o in outs)


@settings(max_examples=30, deadline=None)
@given(seed=SEEDS, first=FIRSTS, n=LENGTHS, sign=st.sampled_from([1, -1]))
def test_the_fallback_paths_give_the_native_bytes(seed, first, n, sign) -> None:
    """With the module gone, prg() runs eth_hash (< 16 blocks) or the cffi path."""
    fast = enc.prg(seed, n, start=8 * first)
    acc_fast = np.arange(n, dtype=np.uint32)
    enc.prg_accumulate(acc_fast, seed, sign, start=8 * first)
    saved, enc._NATIVE = enc._NATIVE, None
    try:
        slow = enc.prg(seed, n, start=8 * first)
        acc = np.arange(n, dtype=np.uint32)
        enc.prg_accumulate(acc, seed, sign, start=8 * first)
    finally:
        enc._NATIVE = saved
    assert slow.tobytes() == fast.tobytes() and acc.tobytes() == acc_fast.tobytes()


def test_large_vector_equals_the_cffi_and_eth_hash_paths() -> None:
    seed = os.urandom(32)
    n = 100_003  # a 100k-parameter update, not a whole number of blocks
    out = enc.prg(seed, n, start=8 * 12_345)
    assert enc._RAW_KECCAK is not None
    raw = enc._prg_blocks_raw(seed, 12_345, -(-n // 8))  # pycryptodome's keccak
    assert out.astype("<u4").tobytes() == raw[: 4 * n]
    head = 8 * 300
    assert out[:head].astype("<u4").tobytes() == reference(seed, 12_345, 300)


def test_counters_past_2_64_fall_back_to_the_python_path() -> None:
    seed = bytes(range(32))
    first = 2**64 - 2
    with pytest.raises(OverflowError):
        native.prg_blocks(seed, first, 3)
    out = enc.prg(seed, 8 * 5, start=8 * first)  # blocks 2^64 − 2 … 2^64 + 2
    assert out.astype("<u4").tobytes() == reference(seed, first, 5)
    acc = np.zeros(8 * 5, np.uint32)
    enc.prg_accumulate(acc, seed, -1, start=8 * first)
    assert acc.tolist() == (-out.astype(np.int64) % 2**32).tolist()


def test_bad_arguments_are_refused() -> None:
    seed = bytes(32)
    with pytest.raises(ValueError, match="32 bytes"):
        native.prg_blocks(b"short", 0, 1)
    with pytest.raises(ValueError, match="not available"):
        native.prg_blocks(seed, 0, 1, kernel="sse9")
    with pytest.raises(ValueError, match="op"):
        native.prg_apply(np.zeros(8, np.uint32), seed, 0, 2)
    ro = np.zeros(8, np.uint32)
    ro.flags.writeable = False
    with pytest.raises((ValueError, BufferError)):
        native.prg_apply(ro, seed, 0, 1)
    with pytest.raises((ValueError, BufferError)):
        native.prg_apply(np.zeros(16, np.uint32)[::2], seed, 0, 1)
    with pytest.raises((ValueError, BufferError, TypeError)):
        native.prg_apply(np.zeros(8, np.int64), seed, 0, 1)  # not uint32
    with pytest.raises(ValueError, match="uint32"):
        enc.prg_accumulate(np.zeros(8, np.int32), seed, 1)
    with pytest.raises(ValueError, match="sign"):
        enc.prg_accumulate(np.zeros(8, np.uint32), seed, 0)
    with pytest.raises(ValueError, match="multiple of 8"):
        enc.prg_accumulate(np.zeros(8, np.uint32), seed, 1, start=3)


def test_fallback_without_the_native_module_gives_the_same_bytes(monkeypatch) -> None:
    seed = os.urandom(32)
    fast = enc.prg(seed, 1234, start=64)
    acc_fast = np.arange(1234, dtype=np.uint32)
    enc.prg_accumulate(acc_fast, seed, 1, start=64)
    monkeypatch.setattr(enc, "_NATIVE", None)
    assert enc.prg(seed, 1234, start=64).tolist() == fast.tolist()
    acc = np.arange(1234, dtype=np.uint32)
    enc.prg_accumulate(acc, seed, 1, start=64)
    assert acc.tolist() == acc_fast.tolist()
    assert "cffi" in enc.prg_path()


def test_fedledger_prg_python_turns_the_native_path_off() -> None:
    code = "from coordinator import _encoding as e; print(e._NATIVE is None, e.prg_path())"
    env = {**os.environ, "FEDLEDGER_PRG": "python"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.startswith("True ") and "FEDLEDGER_PRG=python" in out


def test_bench_prg_reports_every_path_and_ratios_from_its_own_rates() -> None:
    from benchmarks.secure_round import throughput

    t = throughput(0.25)
    assert t["prg_path"] == enc.prg_path()
    assert t["native_kernel"] == native.default_kernel()
    assert t["ours_native_mb_s"] == t[f"native_{native.default_kernel()}_mb_s"]
    for k in KERNELS:
        assert t[f"native_{k}_mb_s"] > 0
    assert t["old_cffi_keccak_ctr_mb_s"] > 0 and t["eth_hash_keccak_ctr_mb_s"] > 0
    assert t["native_vs_aes"] == round(t["ours_native_mb_s"] / t["aes128_ctr_mb_s"], 4)
    assert t["native_over_old_cffi"] == round(t["ours_native_mb_s"] / t["old_cffi_keccak_ctr_mb_s"], 2)
    if t["openssl_aes128_ctr_mb_s"] is not None:
        assert t["native_vs_openssl_aes"] == round(t["ours_native_mb_s"] / t["openssl_aes128_ctr_mb_s"], 4)
    assert t["mask_100k_n20_seconds"] > 0 and t["mask_100k_n20_seconds_old_path"] > 0
    assert enc._NATIVE is native  # restored after timing the old path


def test_bench_prg_runs_give_a_spread_and_the_target_is_checked_on_its_median(tmp_path) -> None:
    import json

    from click.testing import CliRunner

    from benchmarks.cli import bench

    out = tmp_path / "prg.json"
    res = CliRunner().invoke(bench, ["prg", "--mb", "0.25", "--runs", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["command"] == "fedledger bench prg --mb 0.25 --runs 2"
    for key in ("native_vs_aes", "native_over_old_cffi", "mask_100k_n20_speedup"):
        s = data["spread"][key]
        assert s["min"] <= s["median"] <= s["max"]
    median = data["spread"]["native_vs_aes"]["median"]
    assert data["targets"]["native_vs_aes"] == {"target": 0.5, "measured": median, "ok": median >= 0.5}
    assert data["targets"]["ok"] is data["targets"]["native_vs_aes"]["ok"]
