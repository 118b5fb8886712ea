"""`fedledger bench distributed`: what a step of distributed DP costs, and
what it buys, measured in one run.

1. Cost per step: R consecutive rounds on the embedded chain (open → keys →
   shares → commit → reveal → unmask; training excluded, the updates are
   random vectors as in benchmarks/roundsim.py) in distributed record-level
   mode, against the same rounds in local mode measured in the same run
   (ratio distributed / local), with gas per round from the blocks.
2. Noise throughput: one peer's Skellam share for d values against masking
   the same vector with the PRG (the cost secure aggregation already pays).
3. Accounting: ε after T record-level steps for collusion bounds k = 0..3 at
   a fixed |U3| (the k ablation), with Opacus and dp-accounting on the
   Gaussian-equivalent mechanism beside the ledger's, the noise floor, and
   the wrap-around probability bound.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from coordinator import _encoding as enc
from coordinator.chain._contracts import Phase
from coordinator.privacy import _noise as nz
from coordinator.protocol import _secagg as sa

from ._common import machine


def _gas(chain: Any, lo: int, hi: int) -> int:
    return sum(int(chain.w3.eth.get_block(b)["gasUsed"]) for b in range(lo, hi + 1))


def _rounds(rounds: int, peers: int, dim: int, distributed: bool) -> dict[str, Any]:
    from coordinator import connect

    from .roundsim import RoundSim, setup_federation

    chain = connect("embedded")
    with chain:
        fed, local = setup_federation(chain, peers=peers)
        cfg: Any = local
        if distributed:
            cfg = nz.distributed_config(config_id=9, mode=nz.DPMode.DISTRIBUTED_RECORD, q=0.01,
                                        clip=1.0, frac_bits=16, dim=dim, sigma=1.0, k=1,
                                        floor_m=2, max_m=peers)
            fed.register_distributed_config(cfg)
        times, gas = [], []
        for _ in range(rounds):
            lo = chain.block_number + 1
            t0 = time.perf_counter()
            sim = RoundSim(fed, cfg, vector_length=dim, chunk_elems=1024)
            sim.keys()
            sim.shares()
            sim.commit(noise_mu=float(cfg.mu) if distributed else 0.0)
            sim.reveal()
            total = sa.unmask(sim.ctx, sim.masked_sum(), sim.reconstruct_seeds())
            assert np.array_equal(total, sim.true_sum())
            sim.post_result(sender=1)
            sim.run_to(Phase.FINAL)
            times.append(time.perf_counter() - t0)
            gas.append(_gas(chain, lo, chain.block_number))
        eps = [fed.epsilon(p) for p in fed.peers()]
    return {"seconds_per_round": times, "median_seconds": float(np.median(times)),
            "gas_per_round": gas, "epsilon_after": max(eps)}


def _throughput(dim: int, repeat: int = 3) -> dict[str, float]:
    ctx = sa.RoundContext(1, "0x" + "11" * 20, 1, 3, 2, dim, 1024, b"\x00" * 32)
    x = np.zeros(dim, dtype=np.uint32)
    rng = nz.noise_rng()

    def best(fn: Any) -> float:
        out = math.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            out = min(out, time.perf_counter() - t0)
        return out

    noise = best(lambda: nz.add_share(x, nz.skellam_share(mu=1e9, size=dim, rng=rng)))
    mask = best(lambda: sa.mask(ctx, x, index=0, self_seed=12345, pair_seeds={1: b"\x01" * 32,
                                                                             2: b"\x02" * 32}))
    return {"noise_share_seconds": noise, "mask_seconds": mask, "noise_vs_mask": noise / mask}


def _accounting(steps: int, survivors: int, dim: int, delta: float) -> dict[str, Any]:
    rows = []
    for k in range(0, 4):
        cfg = nz.distributed_config(config_id=9, mode=nz.DPMode.DISTRIBUTED_RECORD, q=0.01,
                                    clip=1.0, frac_bits=16, dim=dim, sigma=1.0, k=k,
                                    floor_m=max(1, survivors - 3), max_m=survivors)
        hist = [survivors] * steps
        rows.append({
            "k": k, "noisy_shares": survivors - k,
            "sigma_effective": cfg.sigma_effective(survivors),
            "ledger_epsilon": nz.ledger_epsilon(cfg, hist, delta),
            "dp_accounting_gaussian_epsilon": nz.dp_accounting_epsilon(cfg, hist, delta),
            "opacus_gaussian_epsilon": nz.opacus_gaussian_epsilon(cfg, hist, delta),
            "wrap_log10_probability": nz.wrap_log_probability(
                mu_total=survivors * cfg.mu, signal_bound=survivors * cfg.delta2, dim=dim)
            / math.log(10),
        })
    return {"steps": steps, "survivors": survivors, "q": 0.01, "delta": delta,
            "sigma_at_floor": 1.0, "collusion_ablation": rows}


def run(*, rounds: int = 5, peers: int = 5, dim: int = 4096, steps: int = 200) -> dict[str, Any]:
    dist = _rounds(rounds, peers, dim, distributed=True)
    local = _rounds(rounds, peers, dim, distributed=False)
    return {
        "machine": machine(),
        "params": {"rounds": rounds, "peers": peers, "dim": dim, "frac_bits": 16,
                   "chunk_elems": enc.DEFAULT_CHUNK_ELEMS},
        "cost_per_step": {
            "distributed_record": dist, "local": local,
            "distributed_vs_local_seconds": dist["median_seconds"] / local["median_seconds"],
            "distributed_vs_local_gas": float(np.median(dist["gas_per_round"])
                                              / np.median(local["gas_per_round"])),
            "seconds_for_steps": dist["median_seconds"] * steps,
        },
        "noise_throughput": _throughput(dim),
        "accounting": _accounting(steps, peers, dim, 1e-5),
        "command": (f"fedledger bench distributed --rounds {rounds} --peers {peers} --dim {dim} "
                    f"--steps {steps}"),
    }
