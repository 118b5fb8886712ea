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

Record level, class balance (docs/decisions.md "Class balance at record
level"): the peers' union is rarely balanced the way the task is scored, and
a DP-SGD step over it learns the union's prior. A record-level configuration's
first finalized round on the chain is its **label round**: each sampled record
contributes ``clip`` at its class's output-bias slot and nothing else (one
record moves the vector by exactly ``clip``: the round's mechanism and ε are
a training round's, charged by the ledger as one), so the released sum holds
the union's class counts under the same Skellam noise. Every later round of
the configuration weighs each record's clipped gradient by
w_y = min_c ĉ_c / ĉ_y ≤ 1, computed from that public, chain-verified release
(:func:`class_weights`): weights ≤ 1 fixed before the round leave the
sensitivity at ``clip``, and the counts cost nothing more than the round
that released them.

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


def class_weights(released: np.ndarray, *, floor: float = 0.05) -> np.ndarray | None:
    """Per-class weights w_y = min_c ĉ_c / ĉ_y ∈ (0, 1] from a label round's
    released (noisy) class counts, in any common unit. A count below
    ``floor``·(mean count) is raised to it, so noise or a hostile contribution
    can shrink no class's weight below ``floor``·mean/max ≥ ``floor``/K of the
    heaviest's (K classes); None (uniform weights) when no count is positive.
    With many classes of very different sizes every class is weighed down to
    the rarest one's level, while the noise stays the same."""
    c = np.asarray(released, dtype=np.float64)
    if c.ndim != 1 or len(c) < 2 or not np.isfinite(c).all() or not c.max() > 0:
        return None
    pos = np.clip(c, 0.0, None) / c.max()  # in (0, 1]: no overflow in the mean
    c = np.maximum(pos, floor * pos.mean())
    return c.min() / c


def _class_indices(data: Examples, classes: int) -> np.ndarray:
    """The labels, refused in a sentence unless each is a class index below ``classes``."""
    labels = np.asarray(data.labels)
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise ConfigError(f"labels must be class indices 0..{classes - 1} (the model's classes)")
    return labels


def label_vector(data: Examples, dim: int, slots: np.ndarray, *, q: float, clip: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A label round's contribution: ``clip`` · (count of each class among the
    Poisson-sampled records) at the class's slot, zeros elsewhere; and how
    many records were sampled."""
    labels = _class_indices(data, len(slots))
    keep = np.flatnonzero(rng.random(len(data)) < q)
    counts = np.bincount(labels[keep], minlength=len(slots))
    v = np.zeros(dim, dtype=np.float64)
    v[slots] = clip * counts
    return v, len(keep)


def record_sum(model: MultimodalModel, data: Examples, global_flat: np.ndarray, *, q: float,
               clip: float, lr: float, rng: np.random.Generator,
               weights: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """−lr · Σ w_y · (per-record gradient clipped to clip/lr) over the records
    kept with probability ``q``: one DP-SGD step's un-noised sum, each record
    moving it by at most ``clip`` (every w_y ≤ 1)."""
    from torch import nn

    from ._model import set_flat, trainable

    if weights is not None and not (np.all(weights > 0) and np.all(weights <= 1)):
        raise ValueError("class weights must be in (0, 1]")
    labels = np.asarray(data.labels) if weights is None else _class_indices(data, len(weights))
    set_flat(model, global_flat)
    keep = np.flatnonzero(rng.random(len(data)) < q)
    total = np.zeros(len(global_flat), dtype=np.float64)
    per_clip = clip / lr
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
        scale = np.minimum(1.0, per_clip / np.maximum(norms, 1e-30))
        if weights is not None:
            scale = scale * weights[labels[keep]]
        total = (per * scale[:, None]).sum(0)
        loss_sum = float(loss.detach())
    return -lr * total, {"loss": loss_sum / max(len(keep), 1), "steps": 1.0,
                         "sampled": float(len(keep)),
                         "clipped_fraction": clipped / max(len(keep), 1)}


def contribution(model: MultimodalModel, data: Examples, global_flat: np.ndarray, *,
                 cfg: DistributedConfig, clip: float, train: TrainConfig,
                 sample_seed: bytes | None = None, label_round: bool = False,
                 weights: np.ndarray | None = None) -> tuple[np.ndarray, int, dict[str, float]]:
    """(vector, weight, metrics) for one round in a distributed mode. At record
    level, ``label_round`` contributes the sampled records' class counts
    (:func:`label_vector`) instead of a gradient step, and ``weights`` are the
    class weights of :func:`class_weights` (None: every record weighs 1)."""
    from ._model import get_flat, output_bias_slots, set_flat
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
    weight = max(1, round(cfg.q * len(data)))
    if label_round:
        slots = output_bias_slots(model)
        v, sampled = label_vector(data, len(global_flat), slots, q=cfg.q, clip=clip, rng=rng)
        return v, weight, {"loss": 0.0, "steps": 0.0, "sampled": float(sampled),
                           "label_round": 1.0}
    v, metrics = record_sum(model, data, global_flat, q=cfg.q, clip=clip, lr=train.lr, rng=rng,
                            weights=weights)
    return v, weight, metrics
