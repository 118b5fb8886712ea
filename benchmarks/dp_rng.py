"""What secret DP randomness costs (issue 11): Gaussian noise from ChaCha20
(:mod:`nodes._dprng`) against torch's Mersenne Twister — Opacus' default
draw and its secure-mode draw (four draws summed, halved) — and one local
DP round with ``secure_rng`` on and off, all measured in the same run so
the cost is a ratio against a baseline from that run.

The non-secure arms are baselines only (their randomness is predictable);
see docs/decisions.md, "Secret DP randomness".
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import torch

from nodes import _dprng
from nodes._data import generate
from nodes._model import ModelConfig, build_model
from nodes._train import TrainConfig, train_local

from ._common import machine


def _best(fn: Any, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run(*, sizes: tuple[int, ...] = (100_000, 1_000_000), encoder: str = "tiny",
        examples: int = 256, steps: int = 8, threads: int = 2) -> dict[str, Any]:
    torch.set_num_threads(threads)
    key = bytes(range(32))
    noise = []
    for n in sizes:
        ref = torch.zeros(n)
        g = torch.Generator().manual_seed(0)
        mt = _best(lambda: torch.normal(0, 1.0, size=(n,), generator=g))
        mt4 = _best(lambda: sum(torch.normal(0, 1.0, size=(n,), generator=g) for _ in range(4)))
        sn = _dprng.SecretNoise(key)
        cc = _best(lambda: sn.gaussian(1.0, ref))
        noise.append({"elements": n, "torch_normal_s": round(mt, 5),
                      "torch_normal_x4_s": round(mt4, 5), "chacha20_x4_s": round(cc, 5),
                      "chacha20_vs_torch_x4": round(cc / mt4, 2),
                      "chacha20_vs_torch": round(cc / mt, 2),
                      "chacha20_normals_per_s": round(4 * n / cc)})
    data = generate(examples, seed=1)
    rounds: dict[str, Any] = {}
    for _ in range(2):  # alternate the arms; keep each one's best (a shared machine)
        for secure in (False, True):
            model = build_model(ModelConfig(encoder=encoder, seed=0))
            cfg = TrainConfig(sample_rate=0.125, steps=steps, secure_rng=secure)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = train_local(model, data, cfg=cfg, rng_key=key if secure else None)
            arm = rounds.setdefault("secure" if secure else "mersenne",
                                    {"train_seconds": float("inf"), "steps": res.steps})
            arm["train_seconds"] = round(min(arm["train_seconds"], res.seconds), 3)
    from nodes._model import parameter_count

    rounds["trainable_parameters"] = parameter_count(model)
    ratio = rounds["secure"]["train_seconds"] / rounds["mersenne"]["train_seconds"]
    return {"bench": "dp_rng", "machine": machine(), "threads": threads, "noise": noise,
            "round": {"encoder": encoder, "examples": examples, **rounds,
                      "secure_vs_mersenne": round(ratio, 3)},
            "command": f"fedledger bench dp-rng --sizes {','.join(map(str, sizes))}"}
