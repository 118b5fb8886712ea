"""`fedledger bench peer-memory`: where a peer process's memory goes.

Each variant runs in a fresh Python process that does what a tiny-encoder
peer daemon does, stage by stage, and records RSS and its split from
``/proc/self/smaps_rollup``: shared file-backed pages (the torch/CUDA
libraries, shared by every peer on the host) and private anonymous pages
(what each extra peer really costs). Variants: the default; one torch
thread with glibc malloc limited to two arenas (``MALLOC_ARENA_MAX=2``); and
the synthetic learner of protocol benchmarks (no torch at all, a fake).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

_PROBE = r'''
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
def mem():
    d = {}
    for line in open("/proc/self/smaps_rollup"):
        p = line.split()
        if len(p) >= 2 and p[1].isdigit():
            d[p[0].rstrip(":")] = int(p[1]) / 1024
    return {"rss": round(d["Rss"], 1), "pss": round(d["Pss"], 1),
            "shared": round(d["Shared_Clean"] + d["Shared_Dirty"], 1),
            "private": round(d["Private_Clean"] + d["Private_Dirty"], 1)}
variant = sys.argv[1]
out = [("python", mem())]
import coordinator.chain._chain, coordinator.protocol._agent, coordinator.store._store
import nodes._peer
out.append(("coordinator + web3 + peer loop", mem()))
if variant != "synthetic":
    import torch
    if variant == "lean":
        torch.set_num_threads(1)
    out.append(("torch", mem()))
    import opacus
    out.append(("opacus", mem()))
    from nodes._model import ModelConfig, build_model
    m = build_model(ModelConfig(encoder="tiny", seed=0))
    out.append(("tiny model (transformers BERT)", mem()))
    from nodes._data import partition
    from nodes._train import TrainConfig, train_local
    data = partition(8, examples_per_peer=96, seed=0)[0].train
    cfg = TrainConfig(lr=1e-2, dp=True, sample_rate=0.5, steps=5, noise_multiplier=1.0,
                      target_epsilon=None, clipping="flat", config_id=1, seed=1)
    t0 = time.perf_counter()
    train_local(m, data, cfg=cfg)
    out.append(("one DP-SGD round (Opacus)", mem()))
    train_local(m, data, cfg=cfg)
    out.append(("second round", mem()))
print(json.dumps(out))
'''

VARIANTS = {
    "default": {},
    "lean": {"MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1"},
    "synthetic": {},
}


def run() -> dict[str, Any]:
    from ._common import machine

    results: dict[str, Any] = {}
    for name, env in VARIANTS.items():
        proc = subprocess.run([sys.executable, "-c", _PROBE, name], capture_output=True,
                              text=True, env={**os.environ, **env}, timeout=600)
        if proc.returncode != 0:
            results[name] = {"error": proc.stderr[-2000:]}
            continue
        stages = json.loads(proc.stdout.strip().splitlines()[-1])
        results[name] = {"env": env, "stages": [{"stage": s, **m} for s, m in stages]}
    import torch

    return {"benchmark": "peer_memory", "machine": machine(),
            "torch": torch.__version__, "torch_cuda_build": torch.version.cuda,
            "variants": results}
