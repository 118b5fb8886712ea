"""`fedledger bench ablation`: what each privacy mechanism costs and buys in
the federated setting (FedAvg over the same non-IID peers, model and rounds).

Variants: ``full`` = DP-SGD + privacy-aware (adaptive quantile) clipping +
noise-injected attention; each of the three removed; ``none``. Aggregation is
the central FedAvg baseline: secure aggregation returns the same sum exactly
(up to the 2^-16 quantization step), so it does not change what is measured
here and the ablation runs in a fraction of the time. Reported: accuracy,
macro-F1, AUC, loss-threshold MIA AUC and TPR at 0.1 % FPR, and ε (RDP, at
σ_eff for adaptive clipping), mean ± std over seeds.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

VARIANTS: dict[str, dict[str, Any]] = {
    "full": {"dp": True, "clipping": "adaptive", "attention_noise": True},
    "no-dp-sgd": {"dp": False, "clipping": "flat", "attention_noise": True},
    "no-adaptive-clipping": {"dp": True, "clipping": "flat", "attention_noise": True},
    "no-attention-noise": {"dp": True, "clipping": "adaptive", "attention_noise": False},
    "none": {"dp": False, "clipping": "flat", "attention_noise": False},
}


@dataclass(frozen=True, kw_only=True)
class AblationConfig:
    peers: int = 8
    rounds: int = 3
    encoder: str = "tiny"
    examples_per_peer: int = 192
    q: float = 0.25
    sigma: float = 1.1
    steps: int = 10
    lr: float = 1e-2
    attention_noise: float = 0.1
    delta: float = 1e-5
    seeds: tuple[int, ...] = (0, 1, 2)
    mia_examples: int = 256


def run_variant(cfg: AblationConfig, name: str, seed: int) -> dict[str, Any]:
    from coordinator.protocol._central import CentralFedAvg
    from coordinator.privacy._privacy import opacus_epsilon
    from nodes._data import concat, generate, global_test, partition
    from nodes._eval import loss_threshold_attack, utility
    from nodes._model import ModelConfig, build_model, get_flat, set_flat
    from nodes._train import TrainConfig, per_example_loss, predict_proba, train_local

    v = VARIANTS[name]
    parts = partition(cfg.peers, examples_per_peer=cfg.examples_per_peer, seed=seed)
    test = global_test(512, seed=seed)
    pool = concat([p.train for p in parts])
    rng = np.random.default_rng(seed)
    members = pool.subset(rng.permutation(len(pool))[: cfg.mia_examples])
    nonmembers = generate(len(members), seed=50_000 + seed)
    noise = cfg.attention_noise if v["attention_noise"] else 0.0
    model = build_model(ModelConfig(encoder=cfg.encoder, attention_noise=noise, seed=seed))
    history = []

    def client(i: int) -> Callable[[np.ndarray, int], tuple[np.ndarray, int]]:
        def run(glob: np.ndarray, r: int) -> tuple[np.ndarray, int]:
            set_flat(model, glob)
            tc = TrainConfig(lr=cfg.lr, dp=v["dp"], noise_multiplier=cfg.sigma if v["dp"] else None,
                             clipping=v["clipping"], sample_rate=cfg.q, steps=cfg.steps,
                             delta=cfg.delta, seed=seed * 1000 + r * 100 + i)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = train_local(model, parts[i].train, cfg=tc)
            if i == 0 and res.dp_config is not None:
                history.append(res.dp_config)
            return get_flat(model) - glob, len(parts[i].train)
        return run

    server = CentralFedAvg([client(i) for i in range(cfg.peers)])
    flat = get_flat(model)
    t0 = time.perf_counter()
    for r in range(1, cfg.rounds + 1):
        flat = server.round(flat, r)
    set_flat(model, flat)
    model.set_attention_noise(0.0)  # evaluate the released model without training noise
    out: dict[str, Any] = dict(utility(test.labels, predict_proba(model, test)))
    att = loss_threshold_attack(per_example_loss(model, members), per_example_loss(model, nonmembers))
    out.update({"mia_auc": att.auc, "mia_tpr_at_0_1_fpr": att.tpr_at_0_1_fpr,
                "epsilon": opacus_epsilon(history, cfg.delta) if history else math.inf,
                "seconds": time.perf_counter() - t0})
    return out


def run(cfg: AblationConfig, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    from ._common import machine

    rows: dict[str, list[dict[str, Any]]] = {n: [] for n in VARIANTS}
    for seed in cfg.seeds:
        for name in VARIANTS:
            rows[name].append(run_variant(cfg, name, seed))
            log(f"seed {seed} {name}: accuracy {rows[name][-1]['accuracy']:.3f}, "
                f"MIA AUC {rows[name][-1]['mia_auc']:.3f}, ε {rows[name][-1]['epsilon']:.2f}")
    summary: dict[str, Any] = {}
    for name, rs in rows.items():
        summary[name] = {}
        for k in ("accuracy", "macro_f1", "auc", "mia_auc", "mia_tpr_at_0_1_fpr", "epsilon"):
            vals = np.array([r[k] for r in rs], float)
            fin = vals[np.isfinite(vals)]
            summary[name][k] = ({"mean": float(fin.mean()),
                                 "std": float(fin.std(ddof=1)) if len(fin) > 1 else 0.0}
                                if len(fin) else {"mean": None, "std": None})
    return {"machine": machine(), "config": cfg.__dict__ | {"seeds": list(cfg.seeds)},
            "variants": VARIANTS, "summary": summary, "per_seed": rows}


def markdown(data: dict[str, Any]) -> str:
    def f(c: dict[str, Any], d: int = 3) -> str:
        return "∞" if c["mean"] is None else f"{c['mean']:.{d}f} ± {c['std']:.{d}f}"

    lines = ["| variant | accuracy | macro-F1 | AUC | MIA AUC | MIA TPR@0.1%FPR | ε |",
             "|---|---|---|---|---|---|---|"]
    for name, m in data["summary"].items():
        lines.append(f"| {name} | {f(m['accuracy'])} | {f(m['macro_f1'])} | {f(m['auc'])} | "
                     f"{f(m['mia_auc'])} | {f(m['mia_tpr_at_0_1_fpr'])} | {f(m['epsilon'], 2)} |")
    return "\n".join(lines)
