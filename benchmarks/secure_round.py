"""`fedledger bench secure-round`: what secure aggregation costs.

1. Masking throughput of our keccak-CTR PRG (MB/s on one core; the native
   Rust PRG of scripts/prg when built, each of its kernels, and the older
   cffi path) against baselines measured on the same core in the same run:
   SHAKE256 (hashlib), AES-128-CTR (pycryptodome, and OpenSSL's AES-NI
   through libcrypto), and one keccak256 call over the same bytes.
2. Protocol overhead of a secure round (open → keys → shares → commit →
   reveal → aggregate → challenge window → finalize; training excluded: the
   peers use the documented SyntheticLearner fake) with n peer *processes*,
   each with its own Kubo daemon, on an anvil node; bytes per peer and the
   expansion over the raw float32 update.
3. The same workload through Flower's SecAgg+ (see benchmarks/flower_secagg.py),
   reported as the ratio ours / Flower from the same run.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from coordinator import _encoding as enc
from coordinator.protocol import _secagg as sa

from ._common import machine


def _rate(fn: Callable[[], Any], nbytes: int, repeat: int = 3) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return nbytes / best / 1e6


def _rates(fns: dict[str, tuple[Callable[[], Any], int]], repeat: int) -> dict[str, float]:
    """MB/s of each (fn, bytes), best of ``repeat``, taken in turns: on a
    shared machine the load changes by the second, so contenders measured
    interleaved see the same load (the ratios carry; the rates do not)."""
    best = dict.fromkeys(fns, math.inf)
    for _ in range(repeat):
        for name, (fn, _) in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: fns[name][1] / best[name] / 1e6 for name in fns}


def _mask_seconds(params: int, peers: int) -> float:
    """One peer's whole masking of a ``params``-element update with peers − 1 pairwise masks."""
    ctx = sa.RoundContext(1, "0x" + "11" * 20, 1, peers, peers // 2 + 1, params)
    x = np.zeros(params, np.uint32)
    pairs = {v: os.urandom(32) for v in range(1, peers)}
    t0 = time.perf_counter()
    sa.mask(ctx, x, index=0, self_seed=sa.random_seed(), pair_seeds=pairs)
    return round(time.perf_counter() - t0, 3)


def _openssl_aes128_ctr(key: bytes, nbytes: int) -> Callable[[], Any] | None:
    """AES-128-CTR through OpenSSL's EVP interface (libcrypto via ctypes, the
    library Python's ssl module links): the AES-NI baseline, several times
    pycryptodome's CTR mode. None where libcrypto cannot be loaded."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("crypto")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.EVP_CIPHER_CTX_new.restype = ctypes.c_void_p
        lib.EVP_aes_128_ctr.restype = ctypes.c_void_p
        lib.EVP_EncryptInit_ex.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_char_p] * 2
        lib.EVP_EncryptUpdate.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int),
                                          ctypes.c_char_p, ctypes.c_int]
        lib.EVP_CIPHER_CTX_free.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        return None

    zeros = bytes(nbytes)  # the plaintext, made once: CTR output is then the keystream

    def run() -> Any:
        ctx = lib.EVP_CIPHER_CTX_new()
        try:
            out = ctypes.create_string_buffer(nbytes)
            got = ctypes.c_int()
            if (lib.EVP_EncryptInit_ex(ctx, lib.EVP_aes_128_ctr(), None, key, bytes(16)) != 1
                    or lib.EVP_EncryptUpdate(ctx, out, ctypes.byref(got), zeros, nbytes) != 1
                    or got.value != nbytes):
                raise RuntimeError("OpenSSL AES-128-CTR failed")
            return out
        finally:
            lib.EVP_CIPHER_CTX_free(ctx)
    return run


def throughput(mb: float = 4.0) -> dict[str, Any]:
    """PRG rates on one core, each against baselines from the same run.

    ``ours_keccak_ctr_mb_s`` is ``coordinator._encoding.prg`` as it runs here
    (the native PRG when scripts/setup built it); ``old_cffi_keccak_ctr_mb_s``
    is the path it had before (pycryptodome's keccak, one cffi call per
    block), ``eth_hash_keccak_ctr_mb_s`` the plain-Python reference."""
    seed = os.urandom(32)
    n = int(mb * 2**20) // 4
    nbytes = 4 * n
    m = n // 16  # the slow paths time less output: their rates do not depend on size
    native = enc._NATIVE
    out: dict[str, Any] = {"bytes": nbytes, "prg_path": enc.prg_path()}
    fns: dict[str, tuple[Callable[[], Any], int]] = {
        "ours_keccak_ctr_mb_s": (lambda: enc.prg(seed, n), nbytes)}
    if native is not None:
        for k in native.kernels():
            def run(k: str = k) -> None:
                native.prg_apply(np.empty(n, np.uint32), seed, 0, 0, kernel=k)
            fns[f"native_{k}_mb_s"] = (run, nbytes)
    if enc._RAW_KECCAK is not None:
        fns["old_cffi_keccak_ctr_mb_s"] = (
            lambda: np.frombuffer(enc._prg_blocks_raw(seed, 0, m // 8), "<u4").astype(np.uint32), 4 * m)
    try:
        from Crypto.Cipher import AES

        def aes() -> bytes:
            return AES.new(seed[:16], AES.MODE_CTR, nonce=b"\0" * 8).encrypt(bytes(nbytes))

        fns["aes128_ctr_mb_s"] = (aes, nbytes)
    except ImportError:  # pycryptodome comes with eth-hash here; say so if it does not
        out["aes128_ctr_mb_s"] = None
    openssl = _openssl_aes128_ctr(seed[:16], nbytes)
    if openssl is not None:
        fns["openssl_aes128_ctr_mb_s"] = (openssl, nbytes)
    else:
        out["openssl_aes128_ctr_mb_s"] = None
    fns["shake256_mb_s"] = (lambda: hashlib.shake_256(seed).digest(nbytes), nbytes)
    out.update(_rates(fns, repeat=25))  # best of many: single timings swing with the load
    from eth_hash.auto import keccak

    blob = os.urandom(nbytes)
    out["keccak256_one_call_mb_s"] = _rate(lambda: keccak(blob), nbytes)
    # Baseline in the same run: the same keccak-CTR PRG through eth_hash, one
    # Python call per 32-byte block (the last fallback of coordinator._encoding).
    out["eth_hash_keccak_ctr_mb_s"] = _rate(
        lambda: b"".join(keccak(seed + j.to_bytes(32, "big")) for j in range(m // 8)), 4 * m)
    ours = out["ours_keccak_ctr_mb_s"]
    out["ours_over_eth_hash"] = round(ours / out["eth_hash_keccak_ctr_mb_s"], 2)
    aes_rate = out["aes128_ctr_mb_s"]
    out["ours_vs_aes"] = round(ours / aes_rate, 4) if aes_rate else None
    if native is not None:
        out["native_kernel"] = native.default_kernel()
        out["ours_native_mb_s"] = out[f"native_{native.default_kernel()}_mb_s"]
        out["native_vs_aes"] = round(out["ours_native_mb_s"] / aes_rate, 4) if aes_rate else None
        ossl = out["openssl_aes128_ctr_mb_s"]
        out["native_vs_openssl_aes"] = round(out["ours_native_mb_s"] / ossl, 4) if ossl else None
        out["native_portable_vs_aes"] = (round(out["native_portable_mb_s"] / aes_rate, 4)
                                         if aes_rate else None)
        if "old_cffi_keccak_ctr_mb_s" in out:
            out["native_over_old_cffi"] = round(out["ours_native_mb_s"] / out["old_cffi_keccak_ctr_mb_s"], 2)
        out["native_over_eth_hash"] = round(out["ours_native_mb_s"] / out["eth_hash_keccak_ctr_mb_s"], 2)
    else:
        out["ours_native_mb_s"] = None
    # One peer's whole masking of a 100k-parameter update with 19 pairwise
    # masks, as it runs here, and (when the native PRG ran it) on the old path.
    out["mask_100k_n20_seconds"] = min(_mask_seconds(100_000, 20) for _ in range(3))
    if native is not None and enc._RAW_KECCAK is not None:
        enc._NATIVE = None
        try:
            out["mask_100k_n20_seconds_old_path"] = _mask_seconds(100_000, 20)
        finally:
            enc._NATIVE = native
        out["mask_100k_n20_speedup"] = round(
            out["mask_100k_n20_seconds_old_path"] / max(out["mask_100k_n20_seconds"], 1e-3), 1)
    return out


def protocol_round(n: int, params: int, *, log: Callable[[str], None]) -> dict[str, Any]:
    """One secure round with n peer processes; seconds from open to finalize."""
    from coordinator.protocol._aggregate import cat_digest, collect
    from coordinator.chain._chain import connect
    from coordinator.chain._contracts import Phase
    from coordinator.chain._deploy import DeploymentRecord, attach
    from coordinator.protocol._driver import RoundDriver
    from coordinator.store._store import KuboClient
    from nodes._federation import FederationSpec, down, up

    with tempfile.TemporaryDirectory(prefix=f"fedledger-bench-{n}-") as tmp:
        root = Path(tmp)
        spec = FederationSpec(peers=n, threshold=n // 2 + 1, synthetic_parameters=params,
                              driver=False, interval=0.1, phase_blocks=600)
        t_up = time.perf_counter()
        info = up(spec, root, log=lambda s: None)
        try:
            chain = connect(info["rpc_url"], dev_accounts=True)
            fed = attach(chain, DeploymentRecord.load(Path(info["deployment"])))
            store = KuboClient(info["ipfs_api"], timeout=120)
            deadline = time.monotonic() + 300
            while sum(map(fed.is_eligible, fed.peers())) < n:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {len(fed.peers())} of {n} peers registered")
                time.sleep(0.2)
            started = time.perf_counter() - t_up
            log(f"n={n}: {n} peer daemons up and registered in {started:.1f} s")
            driver = RoundDriver(fed, store, aggregator=chain.account(1).address, dp_config=1,
                                 vector_length=params, rounds=1, mine=True)
            phases: dict[str, float] = {}
            t0 = time.perf_counter()
            r = 0
            ph = "NONE"
            while not driver.finished:
                did = driver.tick()
                if r == 0 and driver.opened:
                    r = driver.opened[0]
                if r:
                    ph = fed.round_info(r).phase.name
                    phases.setdefault(ph, round(time.perf_counter() - t0, 3))
                if time.perf_counter() - t0 > 600:
                    raise RuntimeError(f"the round did not finish in 600 s (phase {ph})")
                if not did:
                    time.sleep(0.05)
            seconds = time.perf_counter() - t0
            info_r = fed.round_info(r)
            pub = collect(fed, r)
            bundle = [len(cat_digest(store, pub.bundle_digest[u])) for u in pub.u2]
            masked = 4 * pub.ctx.padded_length
            per_peer = masked + float(np.mean(bundle)) + sum(bundle)  # up: y + bundle; down: bundles
            out = {"n": n, "parameters": params, "seconds": round(seconds, 2),
                   "phase_reached_at_s": phases, "final": info_r.phase == Phase.FINAL,
                   "survivors": len(pub.u3), "daemons_ready_s": round(started, 1),
                   "bytes_per_peer": int(per_peer), "raw_update_bytes": 4 * params,
                   "expansion": round(per_peer / (4 * params), 4),
                   "aggregator_download_bytes": masked * len(pub.u3) + sum(bundle),
                   "gas": driver.gas.get(r, 0)}
            log(f"n={n}: secure round in {seconds:.1f} s, {out['bytes_per_peer']:,} bytes per "
                f"peer (×{out['expansion']})")
            chain.close()
            return out
        finally:
            down(root)


def run(sizes: tuple[int, ...] = (5, 10, 20), params: int = 100_000, *, flower: bool = True,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    data: dict[str, Any] = {"machine": machine(), "throughput": throughput()}
    log(f"PRG: ours {data['throughput']['ours_keccak_ctr_mb_s']:.1f} MB/s, AES-CTR "
        f"{data['throughput']['aes128_ctr_mb_s']:.0f} MB/s")
    data["ours"] = [protocol_round(n, params, log=log) for n in sizes]
    if flower:
        from .flower_secagg import flower_round

        data["flower"] = [flower_round(n, params, log=log) for n in sizes]
        data["ratio_ours_over_flower"] = {
            str(o["n"]): round(o["seconds"] / f["seconds"], 4)
            for o, f in zip(data["ours"], data["flower"], strict=True) if f.get("seconds")}
    return data
