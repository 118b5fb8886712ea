"""One local DP round of the default multimodal config on this machine.

Measured in one run on the same batches: the round with DP-SGD (Opacus hooks
mode) and without, so the overhead is a ratio against a baseline from the
same run. Also peak RSS and the trainable-parameter count (the size of the
vector secure aggregation moves).
"""

from __future__ import annotations

import resource
import time
from typing import Any

import torch

from nodes._data import generate, global_test
from nodes._eval import utility
from nodes._model import ModelConfig, build_model, parameter_count
from nodes._train import TrainConfig, predict_proba, train_local

from ._common import machine

TARGET_OVERHEAD = 1.3
TARGET_SECONDS = 20.0


def run(*, encoder: str = "minilm", examples: int = 1024, max_len: int = 32,
        threads: int = 2) -> dict[str, Any]:
    torch.set_num_threads(threads)
    data = generate(examples, seed=1)
    test = global_test(512)
    rows = {}
    for dp in (False, True):
        model = build_model(ModelConfig(encoder=encoder, max_len=max_len))
        t0 = time.perf_counter()
        res = train_local(model, data, cfg=TrainConfig(epochs=1, dp=dp, batch_size=32,
                                                      noise_multiplier=1.0 if dp else None))
        rows["dp" if dp else "plain"] = {
            "seconds": round(time.perf_counter() - t0, 3), "train_seconds": round(res.seconds, 3),
            "steps": res.steps, "epsilon_rdp": None if not dp else round(res.epsilon_rdp, 4),
            **utility(test.labels, predict_proba(model, test)),
        }
    params = parameter_count(model)
    overhead = rows["dp"]["train_seconds"] / rows["plain"]["train_seconds"]
    return {
        "bench": "train", "machine": machine(), "encoder": encoder, "examples": examples,
        "max_len": max_len, "threads": threads, "trainable_parameters": params,
        "rounds": rows, "dp_overhead": round(overhead, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "targets": {"overhead": TARGET_OVERHEAD, "overhead_ok": overhead <= TARGET_OVERHEAD,
                    "seconds": TARGET_SECONDS,
                    "seconds_ok": rows["dp"]["seconds"] <= TARGET_SECONDS,
                    "ok": overhead <= TARGET_OVERHEAD and rows["dp"]["seconds"] <= TARGET_SECONDS},
        "command": f"fedledger bench train --encoder {encoder} --examples {examples}",
    }
