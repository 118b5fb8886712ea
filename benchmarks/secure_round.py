"""`fedledger bench secure-round`: what secure aggregation costs.

1. Masking throughput of our keccak-CTR PRG (MB/s on one core) against
   baselines measured on the same core in the same run: SHAKE256 (hashlib),
   AES-128-CTR (pycryptodome), and one keccak256 call over the same bytes.
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


def throughput(mb: float = 4.0) -> dict[str, Any]:
    seed = os.urandom(32)
    n = int(mb * 2**20) // 4
    nbytes = 4 * n
    out: dict[str, Any] = {"bytes": nbytes,
                           "ours_keccak_ctr_mb_s": _rate(lambda: enc.prg(seed, n), nbytes)}
    out["shake256_mb_s"] = _rate(lambda: hashlib.shake_256(seed).digest(nbytes), nbytes)
    from eth_hash.auto import keccak

    blob = os.urandom(nbytes)
    out["keccak256_one_call_mb_s"] = _rate(lambda: keccak(blob), nbytes)
    # Baseline in the same run: the same keccak-CTR PRG through eth_hash, one
    # Python call per 32-byte block (the fallback path of coordinator._encoding).
    m = n // 16
    out["eth_hash_keccak_ctr_mb_s"] = _rate(
        lambda: b"".join(keccak(seed + j.to_bytes(32, "big")) for j in range(m // 8)), 4 * m)
    out["ours_over_eth_hash"] = round(out["ours_keccak_ctr_mb_s"] / out["eth_hash_keccak_ctr_mb_s"], 2)
    try:
        from Crypto.Cipher import AES

        def aes() -> bytes:
            return AES.new(seed[:16], AES.MODE_CTR, nonce=b"\0" * 8).encrypt(bytes(nbytes))

        out["aes128_ctr_mb_s"] = _rate(aes, nbytes)
    except ImportError:  # pycryptodome comes with eth-hash here; say so if it does not
        out["aes128_ctr_mb_s"] = None
    out["ours_vs_aes"] = (round(out["ours_keccak_ctr_mb_s"] / out["aes128_ctr_mb_s"], 4)
                          if out["aes128_ctr_mb_s"] else None)
    # One peer's whole masking of a 100k-parameter update with 19 pairwise masks.
    ctx = sa.RoundContext(1, "0x" + "11" * 20, 1, 20, 11, 100_000)
    x = np.zeros(100_000, np.uint32)
    pairs = {v: os.urandom(32) for v in range(1, 20)}
    t0 = time.perf_counter()
    sa.mask(ctx, x, index=0, self_seed=sa.random_seed(), pair_seeds=pairs)
    out["mask_100k_n20_seconds"] = round(time.perf_counter() - t0, 3)
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
