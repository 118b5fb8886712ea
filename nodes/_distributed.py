"""A peer's contribution in the distributed DP modes (noise added at commit).

The peer adds *no* noise of its own here: :func:`contribution` returns the
clipped vector whose sum over U3, plus the survivors' Skellam noise shares
(added in Z_2^32 by :meth:`nodes._peer.PeerNode._train`), is the released
mechanism the ledger accounts for.

* record level: one DP-SGD step over the union of the peers' data. Each
  record is kept with probability q (Poisson sampling from the OS CSPRNG:
  which records were used is secret), its gradient is clipped to C, and the
  peer contributes −lr·Σ clipped gradients; its weight is its expected batch
  q·n_u, so the aggregator's Σx / Σn is the DP-SGD step with the pooled
  expected batch size. One record moves the vector by at most lr·C = ``clip``.
* user level (DP-FedAvg): the peer trains locally without noise, clips its
  whole adapter delta to L2 norm ``clip`` and contributes it with weight 1, so
  the aggregate is the mean of clipped deltas. A delta that is not finite
  (local training diverged) is contributed as zeros: within the clip, so the
  accounting holds, and no NaN reaches the fixed-point encoding.

``clip`` comes from the on-chain configuration: a peer uses
clip = (Δ2 − √d)/2^f, the largest clip whose sensitivity clip·2^f + √d is
the registered Δ2 (a hair above the governor's clip, by < 2^-f).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from coordinator import ConfigError
from coordinator.privacy._noise import DistributedConfig, DPMode, recompute

if TYPE_CHECKING:
    from ._data import Examples
    from ._model import MultimodalModel
    from ._train import TrainConfig


def clip_of(cfg: DistributedConfig, *, frac_bits: int, dim: int) -> float:
    """The L2 bound on one contribution (float units) that the registered Δ2 allows."""
    c = (cfg.delta2 - math.sqrt(dim)) / 2.0**frac_bits
    if not c > 0:
        raise ConfigError(f"distributed configuration {cfg.config_id} has Δ2={cfg.delta2}, too "
                          f"small for {dim} values at {frac_bits} fractional bits")
    return c


def check_config(cfg: DistributedConfig, *, dim: int) -> None:
    """Refuse a governor's configuration whose registered vectors understate
    the RDP of its own (q, μ, Δ2, Δ1), or whose Δ1 is below √d·Δ2: a peer
    contributes only to rounds accounted for what it actually releases."""
    need = math.ceil(math.sqrt(dim) * cfg.delta2)
    if cfg.delta1 < need:
        raise ConfigError(f"distributed configuration {cfg.config_id} declares Δ1={cfg.delta1}, "
                          f"below √d·Δ2 = {need} for {dim} values; not contributing")
    if recompute(cfg) != cfg.rdp_by_m:
        raise ConfigError(f"distributed configuration {cfg.config_id}'s registered RDP vectors "
                          "are not those of its (q, μ, Δ2, Δ1); not contributing")


def clip_l2(v: np.ndarray, bound: float) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v if n <= bound else v * (bound / n)


def contribution(model: MultimodalModel, data: Examples, global_flat: np.ndarray, *,
                 cfg: DistributedConfig, clip: float, train: TrainConfig,
                 sample_seed: bytes | None = None) -> tuple[np.ndarray, int, dict[str, float]]:
    """(vector, weight, metrics) for one round in a distributed mode."""
    from torch import nn

    from ._model import get_flat, set_flat, trainable
    from ._train import train_local

    set_flat(model, global_flat)
    if cfg.mode == DPMode.DISTRIBUTED_USER:
        tc = replace(train, dp=False, sample_rate=None, steps=None)
        res = train_local(model, data, cfg=tc)
        delta = get_flat(model).astype(np.float64) - global_flat.astype(np.float64)
        norm = float(np.linalg.norm(delta))
        diverged = not math.isfinite(norm)
        if diverged:  # local training blew up: contribute nothing (norm 0 ≤ clip), not NaN
            delta = np.zeros_like(delta)
        return clip_l2(delta, clip), 1, {"loss": float(res.loss), "steps": float(res.steps),
                                         "update_norm": norm, "sampled": float(len(data)),
                                         "diverged": float(diverged)}
    if cfg.mode != DPMode.DISTRIBUTED_RECORD:
        raise ConfigError(f"configuration {cfg.config_id} is not a distributed mode")
    rng = np.random.default_rng(int.from_bytes(sample_seed or secrets.token_bytes(32), "little"))
    keep = np.flatnonzero(rng.random(len(data)) < cfg.q)
    total = np.zeros(len(global_flat), dtype=np.float64)
    per_clip = clip / train.lr
    loss_sum, clipped = 0.0, 0
    if len(keep):
        import warnings

        from opacus import GradSampleModule

        from ._train import _strip_opacus

        tensors = model.encode(data.subset(keep))
        params = [p for _, p in trainable(model)]
        model.train()
        # Per-example gradients in one backward pass (Opacus' hooks), then
        # the hooks come off so the model stays a plain module.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gs = GradSampleModule(model, batch_first=True, loss_reduction="sum")
            try:
                loss = nn.CrossEntropyLoss(reduction="sum")(gs(*tensors[:-1]), tensors[-1])
                loss.backward()
                per = np.concatenate([p.grad_sample.detach().cpu().numpy().reshape(len(keep), -1)
                                      .astype(np.float64) for p in params], axis=1)
            finally:
                for p in params:
                    p.grad = None
                _strip_opacus(gs._module if hasattr(gs, "_module") else model)
                _strip_opacus(model)
        norms = np.linalg.norm(per, axis=1)
        clipped = int((norms > per_clip).sum())
        total = (per * np.minimum(1.0, per_clip / np.maximum(norms, 1e-30))[:, None]).sum(0)
        loss_sum = float(loss.detach())
    weight = max(1, round(cfg.q * len(data)))
    return -train.lr * total, weight, {"loss": loss_sum / max(len(keep), 1), "steps": 1.0,
                                       "sampled": float(len(keep)),
                                       "clipped_fraction": clipped / max(len(keep), 1)}
