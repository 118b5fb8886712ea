"""`fedledger bench compare`: decentralized vs centralized orchestration vs
pooled training, on the same data, model, DP configuration and seeds.

Arms (each run for every seed):
* ``fedledger`` — the full system in process (embedded chain and store, secure
  aggregation, on-chain ledger): :func:`nodes._demo.run_demo`, no dropouts.
* ``central`` — :class:`coordinator.protocol._central.CentralFedAvg`: the same peers
  train the same DP adapters; a trusted server averages updates in the clear.
* ``pooled-dp`` / ``pooled`` — all peers' data in one place, trained with
  DP-SGD at the same σ, or without DP, for as many epochs as rounds.

Utility: accuracy, macro-F1 and AUC on the global test set and the mean over
peers' own test sets. Privacy: ε (the on-chain ledger's for ``fedledger``;
Opacus RDP for the others), and a loss-threshold membership-inference attack
against the released model (AUC and TPR at 0.1 % FPR; members drawn from
the peers' training data, non-members from the same distribution).
Cost: wall seconds per round, CPU seconds, bytes per peer per round, gas.
"""

from __future__ import annotations

import json
import math
import resource
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

#: The external arm, labelled wherever it is reported.
FLOWER_LABEL = ("external: Flower 1.42, DifferentialPrivacyClientSideFixedClipping + "
                "fixedclipping_mod (user-level central DP), logistic regression on the frozen "
                "encoder's layer-normalised text embedding, the peers' behaviour features and "
                "image channel means — not our model")
REFERENCE_LABEL = "reference: non-private, pooled raw data, not our model"


@dataclass(frozen=True, kw_only=True)
class CompareConfig:
    """Defaults: the recipes of docs/decisions.md ("A recipe that learns on real
    text", "A recipe that learns under DP"); every private arm ends at ε ≤ 8
    on its ledger (local 7.46, record level 1.84, user level 4.91)."""

    dataset: str = "synthetic"
    peers: int = 8
    threshold: int = 5
    rounds: int = 10
    encoder: str = "tiny"
    examples_per_peer: int = 192
    # The model recipe (nodes._model.ModelConfig / nodes._train.TrainConfig).
    lora_r: int = 0
    max_len: int = 64
    hidden: int = 32
    head: str = "mlp"  # "linear": docs/decisions.md "A recipe that learns under DP"
    optimizer: str = "sgd"
    max_grad_norm: float = 1.0
    # Local mode: 10 rounds of 2 full-batch DP-SGD steps per peer (docs/decisions.md
    # "A recipe that learns under DP"): ε 7.46 on the ledger at δ = 1e-5.
    q: float = 1.0
    sigma: float = 3.1
    steps: int = 2
    lr: float = 1.0
    delta: float = 1e-5
    epsilon_cap: float = 8.0
    # The distributed modes (nodes._inprocess.run_distributed): record
    # level, one DP-SGD step per round over the union (SGD, lr record_lr,
    # clip max_grad_norm); user level, DP-FedAvg with update clip user_clip.
    # ``k`` survivors' noise is assumed known (the floor is peers − k shares).
    # ``pooled-dp`` runs the record-level configuration on pooled data.
    # The non-private pooled arm's own optimizer (it has no clipping, so the
    # DP arms' large SGD steps would overshoot).
    pooled_optimizer: str = "adam"
    pooled_lr: float = 1e-3
    record_q: float = 1.0  # full batch: the ledger's bound is then tight (decisions.md)
    record_sigma: float = 16.5  # 50 rounds: ε 1.84 on the ledger at δ = 1e-5, k = 1
    record_rounds: int = 50
    record_lr: float = 1.0
    user_sigma: float = 3.07
    user_clip: float = 1.0
    # The user level's local training (plain SGD, one epoch, no clipping or
    # noise before the whole update is clipped): None trains at ``lr``, the
    # DP arms' step, which on the MLP head diverges without per-example
    # clipping (docs/decisions.md "User level: its own local step").
    user_lr: float | None = None
    k: int = 1
    k_ablation: tuple[int, ...] = ()  # extra record-level runs at these k (same σ at the floor)
    # Extra points of the privacy–utility frontier: record-level runs at these
    # σ, and local-mode runs (the central arm's training) at these σ.
    record_frontier: tuple[float, ...] = ()
    local_frontier: tuple[float, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2)
    arms: tuple[str, ...] = ()  # empty: every registered arm
    mia_examples: int = 256
    # A researcher's dataset instead of the synthetic generator (empty: synthetic).
    data: str = ""  # a CSV/JSONL file, or a folder of them (concatenated)
    schema: str = ""  # its schema.toml
    partition: str = "dirichlet:0.5"  # iid | dirichlet:ALPHA | by-column:NAME
    test_fraction: float = 0.2  # global held-out test set (no peer holds it)
    holdout: float = 0.2  # each peer's own held-out split of its share

    def __post_init__(self) -> None:
        from coordinator import ConfigError
        from nodes._datasets import DATASETS

        if self.dataset not in DATASETS:
            raise ConfigError(f"dataset {self.dataset!r} must be one of {', '.join(DATASETS)}")
        if not self.arms:
            object.__setattr__(self, "arms", ARMS)
        bad = [a for a in self.arms if a not in ARM_REGISTRY]
        if bad:
            raise ConfigError(f"unknown arms {bad}; choose from {', '.join(ARMS)}")
        if len(self.seeds) < 1:
            raise ConfigError("give at least one seed (three or more for a confidence interval)")
        # The distributed arms' floor is peers − k noisy shares: k ≥ peers leaves none
        # (the ledger refuses the round, after every arm before it has run).
        for k in (self.k, *self.k_ablation):
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < self.peers:
                raise ConfigError(f"k = {k!r} must be in 0..peers − 1 = {self.peers - 1}")
        if self.record_rounds < 1:
            raise ConfigError(f"record_rounds = {self.record_rounds} must be at least 1")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@dataclass
class Context:
    """What every arm of one seed shares: the same split, model and DP config."""

    cfg: CompareConfig
    seed: int
    parts: list[Any]
    test: Any
    pool: Any
    members: Any
    nonmembers: Any
    model: Any
    start: np.ndarray
    dpc: Any
    log: Callable[[str], None]
    extra: dict[str, Any] = field(default_factory=dict)
    data: Dataset | None = None  # what load_dataset gave (a researcher's dataset: data.own)

    def model_config(self) -> Any:
        from nodes._datasets import TOWERS
        from nodes._model import ModelConfig

        if self.data is not None:
            return self.data.model
        c = self.cfg
        return ModelConfig(encoder=c.encoder, lora_r=c.lora_r, max_len=c.max_len, hidden=c.hidden,
                           head=c.head, towers=TOWERS[c.dataset], seed=self.seed)


@dataclass(frozen=True)
class Arm:
    """One arm of the comparison. ``run(ctx)`` returns its metrics (see
    :data:`METRICS`); ``reference`` arms are non-private pooled baselines and
    ``external`` ones are other systems, both labelled in every report."""

    name: str
    run: Callable[[Context], dict[str, Any]]
    label: str
    reference: bool = False
    external: bool = False


#: The arms, in report order. Other modules add theirs with :func:`register_arm`
#: (e.g. the distributed-DP modes: ``fedledger-distributed-record``, ``-user``).
ARM_REGISTRY: dict[str, Arm] = {}


def register_arm(name: str, *, label: str, reference: bool = False,
                 external: bool = False) -> Callable[[Callable[[Context], dict[str, Any]]],
                                                     Callable[[Context], dict[str, Any]]]:
    def deco(fn: Callable[[Context], dict[str, Any]]) -> Callable[[Context], dict[str, Any]]:
        ARM_REGISTRY[name] = Arm(name, fn, label, reference, external)
        global ARMS
        ARMS = tuple(ARM_REGISTRY)
        return fn
    return deco


ARMS: tuple[str, ...] = ()


def _evaluate(model: Any, flat: np.ndarray, ctx: Context) -> dict[str, Any]:
    from nodes._model import set_flat
    from nodes._train import predict_proba

    set_flat(model, flat)
    return _evaluate_proba(lambda ex: predict_proba(model, ex), ctx)


def _evaluate_proba(proba: Callable[[Any], np.ndarray], ctx: Context) -> dict[str, Any]:
    from nodes._eval import loss_threshold_attack, utility

    def loss(ex: Any) -> np.ndarray:
        p = np.clip(proba(ex), 1e-7, 1 - 1e-7)
        if p.ndim == 2:  # K classes: the true class's probability
            return -np.log(p[np.arange(len(p)), ex.labels])
        return -(ex.labels * np.log(p) + (1 - ex.labels) * np.log(1 - p))

    out: dict[str, Any] = dict(utility(ctx.test.labels, proba(ctx.test)))
    local = [utility(p.test.labels, proba(p.test))["accuracy"] for p in ctx.parts]
    out["local_accuracy_mean"] = float(np.mean(local))
    out["local_accuracy_per_peer"] = [round(x, 4) for x in local]
    att = loss_threshold_attack(loss(ctx.members), loss(ctx.nonmembers))
    out["mia_auc"] = att.auc
    out["mia_tpr_at_0_1_fpr"] = att.tpr_at_0_1_fpr
    out["_roc"] = (att.fpr.tolist(), att.tpr.tolist())
    return out


@dataclass(frozen=True)
class Dataset:
    """What every arm runs on: the peers' (train, held-out) splits, a global
    test set no peer holds, MIA members (from the peers' training data) and
    non-members, the model configuration, and the declared schema hash."""

    parts: list[Any]
    test: Any
    members: Any
    nonmembers: Any
    model: Any
    schema_hash: bytes
    own: bool


def load_dataset(cfg: CompareConfig, seed: int) -> Dataset:
    """The synthetic default, or (``cfg.data``) a researcher's files loaded
    against ``cfg.schema``: a stratified global test split, the rest
    partitioned over the peers (``cfg.partition``), each peer's share split
    again into its own train and held-out parts."""
    from nodes._data import concat, holdout, holdout_indices, split_peers
    from nodes._datasets import TOWERS, federated_data
    from nodes._model import ModelConfig, config_for_schema
    from nodes._schema import (column_values, data_files, load_schema,
                                load_with_schema, schema_hash)

    rng = np.random.default_rng(seed)
    model_kw: dict[str, Any] = dict(encoder=cfg.encoder, lora_r=cfg.lora_r, max_len=cfg.max_len,
                                    hidden=cfg.hidden, head=cfg.head, seed=seed)
    if not cfg.data:
        fd = federated_data(cfg.dataset, cfg.peers, examples_per_peer=cfg.examples_per_peer,
                            seed=seed)
        pool = concat([p.train for p in fd.peers])
        members = pool.subset(rng.permutation(len(pool))[: cfg.mia_examples])
        nonmembers = fd.nonmembers.subset(np.arange(min(len(members), len(fd.nonmembers))))
        return Dataset(fd.peers, fd.test, members, nonmembers,
                       ModelConfig(**model_kw, towers=TOWERS[cfg.dataset]),
                       schema_hash(None) if cfg.dataset == "synthetic" else bytes(32), False)
    from coordinator import ConfigError

    if not cfg.schema:
        raise ConfigError("--data needs --schema schema.toml (the dataset's declared columns)")
    schema = load_schema(Path(cfg.schema))
    files = data_files(Path(cfg.data))
    full = concat([load_with_schema(f, schema) for f in files])
    mode, _, arg = cfg.partition.partition(":")
    groups = None
    if mode == "by-column":
        if not arg:
            raise ConfigError("--partition by-column:NAME needs a column name")
        groups = [v for f in files for v in column_values(f, arg)]
    alpha = 0.5
    if mode == "dirichlet":
        try:
            alpha = float(arg or 0.5)
        except ValueError:
            raise ConfigError(f"--partition {cfg.partition!r}: alpha must be a number") from None
    # The global test split is taken first, so no peer ever trains on it.
    keep, held = holdout_indices(full.labels, fraction=cfg.test_fraction, seed=seed)
    rest, test = full.subset(keep), full.subset(held)
    rest_groups = None if groups is None else [groups[i] for i in keep]
    shares = split_peers(rest, cfg.peers, mode=mode, alpha=alpha, groups=rest_groups, seed=seed)
    parts = [holdout(sh, fraction=cfg.holdout, seed=seed * 1000 + i) for i, sh in enumerate(shares)]
    pool = concat([p.train for p in parts])
    n_mia = min(cfg.mia_examples, len(pool), len(test))
    members = pool.subset(rng.permutation(len(pool))[:n_mia])
    nonmembers = test.subset(rng.permutation(len(test))[:n_mia])
    return Dataset(parts, test, members, nonmembers,
                   config_for_schema(schema, **model_kw), schema.hash(), True)


def _train_config(ctx: Context, **kw: Any) -> Any:
    from nodes._train import TrainConfig

    return TrainConfig(lr=ctx.cfg.lr, delta=ctx.cfg.delta, max_grad_norm=ctx.cfg.max_grad_norm,
                       optimizer=ctx.cfg.optimizer, **kw)


@register_arm("fedledger", label="the full system, local DP mode: each peer's own DP-SGD, "
              "secure aggregation, ε on the on-chain ledger")
def _fedledger_arm(ctx: Context) -> dict[str, Any]:
    from nodes._demo import DemoConfig, OwnData, run_demo

    cfg, seed = ctx.cfg, ctx.seed
    finals: list[np.ndarray] = []
    t0, c0 = time.perf_counter(), _cpu()
    res = run_demo(DemoConfig(dataset=cfg.dataset, peers=cfg.peers, threshold=cfg.threshold,
                              rounds=cfg.rounds, encoder=cfg.encoder, lora_r=cfg.lora_r,
                              max_len=cfg.max_len, hidden=cfg.hidden, head=cfg.head,
                              optimizer=cfg.optimizer, max_grad_norm=cfg.max_grad_norm,
                              examples_per_peer=cfg.examples_per_peer, q=cfg.q, sigma=cfg.sigma,
                              steps=cfg.steps, lr=cfg.lr, epsilon_cap=cfg.epsilon_cap,
                              delta=cfg.delta, dropouts=False, record_rounds=0, seed=seed),
                   on_final=finals.append,
                   data=OwnData(ctx.parts, ctx.data.model, ctx.data.schema_hash)
                   if ctx.data is not None and ctx.data.own else None)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    m = _evaluate(ctx.model, finals[0], ctx)
    return {**m, "epsilon": max(p["epsilon"] for p in res["peers"]),
            "seconds_per_round": wall / cfg.rounds, "cpu_seconds": cpu,
            "bytes_per_peer_per_round": float(np.mean(
                [r["bytes_moved"] for r in res["rounds"]])) / cfg.peers,
            "gas_per_round": float(np.mean([r["gas"] for r in res["rounds"]]))}


@register_arm("central", label="the same peers and DP adapters; a trusted server averages "
              "updates in the clear")
def _central_arm(ctx: Context) -> dict[str, Any]:
    from coordinator.privacy._privacy import opacus_epsilon
    from coordinator.protocol._central import CentralFedAvg
    from nodes._peer import ModelLearner

    from coordinator.privacy._privacy import dp_config

    cfg, seed = ctx.cfg, ctx.seed
    base = _train_config(ctx)
    learners = [ModelLearner(ctx.model, p.train, base) for p in ctx.parts]

    def train(dpc: Any) -> tuple[np.ndarray, CentralFedAvg]:
        def client(i: int) -> Callable[[np.ndarray, int], tuple[np.ndarray, int]]:
            def run(glob: np.ndarray, r: int) -> tuple[np.ndarray, int]:
                delta, _ = learners[i].update(glob, dpc, seed=seed * 1000 + r * 100 + i)
                return delta, learners[i].examples
            return run

        server = CentralFedAvg([client(i) for i in range(cfg.peers)])
        flat = ctx.start.copy()
        for r in range(1, cfg.rounds + 1):
            flat = server.round(flat, r)
        return flat, server

    c0 = _cpu()
    flat, server = train(ctx.dpc)
    cpu = _cpu() - c0
    m = _evaluate(ctx.model, flat, ctx)
    out = {**m, "epsilon": opacus_epsilon([ctx.dpc] * cfg.rounds, cfg.delta),
           "seconds_per_round": float(np.mean(server.seconds)), "cpu_seconds": cpu,
           "bytes_per_peer_per_round": float(np.mean(server.bytes_per_client)),
           "gas_per_round": 0.0}
    for sigma in cfg.local_frontier:  # the local mode's training at other σ
        dpc = dp_config(config_id=1, q=cfg.q, sigma=sigma, steps=cfg.steps)
        other, _ = train(dpc)
        row = _evaluate(ctx.model, other, ctx)
        out.setdefault("frontier", []).append(
            {"sigma": sigma, "epsilon": opacus_epsilon([dpc] * cfg.rounds, cfg.delta),
             "macro_f1": row["macro_f1"], "accuracy": row["accuracy"], "auc": row["auc"]})
    return out


def _frozen_encoder(ctx: Context) -> Any:
    """The seed's model as a fixed text encoder: itself when its encoder is
    frozen (lora_r = 0), else a fresh copy that no arm trains."""
    from nodes._model import build_model

    return build_model(ctx.model_config()) if ctx.cfg.lora_r else ctx.model


@register_arm("flower-dp", label=FLOWER_LABEL, external=True)
def _flower(ctx: Context) -> dict[str, Any]:
    enc = _frozen_encoder(ctx)
    return _flower_arm(ctx.cfg, ctx.seed, ctx.parts, ctx.test, ctx.members, ctx.nonmembers,
                       embed=enc.text_embeddings)


def _pooled(ctx: Context, dp: bool) -> dict[str, Any]:
    """All peers' data in one place, the project's model, the record level's
    recipe (docs/decisions.md "Class balance at record level"). With DP: the
    distributed record level's mechanism with a trusted curator instead of
    secure aggregation and discrete noise: the first of ``record_rounds``
    steps releases the class counts (Gaussian noise σ·clip on clip·counts),
    each later step is one DP-SGD step (Poisson rate record_q, SGD at
    record_lr, clip max_grad_norm, σ = record_sigma) with each record's
    clipped gradient weighed by the released counts' class weights; ε from
    Opacus' RDP accountant for ``record_rounds`` Gaussian steps. Without DP:
    as many epochs as rounds at batch q·n/peers, the loss weighed by the exact
    class counts (PyTorch's weighted mean; a curator needs no noise for them)."""
    from coordinator.privacy._privacy import rdp_epsilon
    from nodes._distributed import class_weights, label_vector, record_sum
    from nodes._model import get_flat, output_bias_slots, set_flat
    from nodes._train import train_local

    cfg = ctx.cfg
    set_flat(ctx.model, ctx.start)
    t0, c0 = time.perf_counter(), _cpu()
    slots = output_bias_slots(ctx.model)
    extra: dict[str, Any] = {}
    if dp:
        rng = np.random.default_rng([ctx.seed, 0xDB])  # a benchmark curator's noise, not a peer's
        clip, flat = cfg.record_lr * cfg.max_grad_norm, ctx.start.astype(np.float64)
        denom = max(1, round(cfg.record_q * len(ctx.pool)))
        weights = None
        for step in range(cfg.record_rounds):
            if step == 0 and len(slots) >= 2:
                v, _ = label_vector(ctx.pool, len(flat), slots, q=cfg.record_q, clip=clip, rng=rng)
            else:
                v, _ = record_sum(ctx.model, ctx.pool, flat, q=cfg.record_q, clip=clip,
                                  lr=cfg.record_lr, rng=rng, weights=weights)
            v = v + rng.normal(0.0, cfg.record_sigma * clip, len(v))
            flat = flat + v / denom
            if step == 0 and len(slots) >= 2:
                weights = class_weights(v[slots])
        set_flat(ctx.model, flat.astype(np.float32))
        rounds = cfg.record_rounds
        extra["class_weights"] = None if weights is None else [float(w) for w in weights]
        eps = rdp_epsilon([(cfg.record_sigma, cfg.record_q, cfg.record_rounds)], cfg.delta)
    else:
        batch = max(8, int(cfg.q * len(ctx.pool) / cfg.peers))
        counts = np.bincount(np.asarray(ctx.pool.labels), minlength=max(len(slots), 2))
        exact = class_weights(counts.astype(np.float64))
        tc = replace(_train_config(ctx, epochs=cfg.rounds, batch_size=batch, dp=False,
                                   noise_multiplier=None, seed=ctx.seed),
                     lr=cfg.pooled_lr, optimizer=cfg.pooled_optimizer,
                     class_weights=None if exact is None else tuple(float(w) for w in exact))
        rounds, eps = cfg.rounds, math.inf
        extra["class_weights"] = tc.class_weights and list(tc.class_weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train_local(ctx.model, ctx.pool, cfg=tc)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    m = _evaluate(ctx.model, get_flat(ctx.model), ctx)
    return {**m, **extra, "epsilon": eps,
            "seconds_per_round": wall / rounds, "cpu_seconds": cpu,
            "bytes_per_peer_per_round": 0.0, "gas_per_round": 0.0,
            "raw_data_centralized": True}


@register_arm("pooled-dp", label="all peers' data in one place, the project's model, DP-SGD at "
              "the distributed record-level configuration (a trusted curator)")
def _pooled_dp_arm(ctx: Context) -> dict[str, Any]:
    return _pooled(ctx, True)


@register_arm("pooled", label="all peers' data in one place, the project's model, no DP")
def _pooled_arm(ctx: Context) -> dict[str, Any]:
    return _pooled(ctx, False)


def user_lr(cfg: CompareConfig) -> float:
    """The user level's local (non-private) SGD learning rate."""
    return cfg.lr if cfg.user_lr is None else cfg.user_lr


def _distributed(ctx: Context, mode: str, k: int, sigma: float | None = None) -> dict[str, Any]:
    """A whole federation in a distributed DP mode (embedded chain and store,
    real peers, secure aggregation, Skellam shares, the ledger charging from
    |U3| and k): nodes._inprocess.run_distributed."""
    from coordinator.privacy import _noise as nz

    from nodes._inprocess import run_distributed
    from nodes._model import set_flat

    cfg = ctx.cfg
    record = mode == "record"
    # run_distributed starts the federation from the model's weights: the
    # seed's start, not what the arm before left there (the pooled arm's
    # non-private model, until this was reset here).
    set_flat(ctx.model, ctx.start)
    rounds = cfg.record_rounds if record else cfg.rounds
    t0, c0 = time.perf_counter(), _cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_distributed(
            mode=nz.DPMode.DISTRIBUTED_RECORD if record else nz.DPMode.DISTRIBUTED_USER,
            model=ctx.model, parts=ctx.parts, rounds=rounds, threshold=cfg.threshold,
            lr=cfg.record_lr if record else user_lr(cfg),
            clip=cfg.record_lr * cfg.max_grad_norm if record else cfg.user_clip,
            sigma=sigma or (cfg.record_sigma if record else cfg.user_sigma), k=k,
            floor_m=max(1, cfg.peers - k), q=cfg.record_q if record else 1.0, delta=cfg.delta,
            epsilon_cap=max(50.0, cfg.epsilon_cap), optimizer=cfg.optimizer)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    m = _evaluate(ctx.model, res["final"], ctx)
    return {**m, "epsilon": res["epsilon"], "epsilon_dp_accounting": res["epsilon_dp_accounting"],
            "seconds_per_round": wall / rounds, "cpu_seconds": cpu,
            "bytes_per_peer_per_round": math.nan,  # not measured by run_distributed
            "gas_per_round": res["gas_per_round"],
            # the noise multiplier of the released sum: all survivors' shares
            "sigma_released": math.sqrt(2 * min(res["survivors"], default=0) * res["config"].mu)
            / res["config"].delta2, "k": k,
            "survivors_min": int(min(res["survivors"], default=0)),
            "class_weights": res["class_weights"], "label_round": res["label_round"]}


@register_arm("fedledger-distributed-record", label="the full system, distributed record-level "
              "DP: one DP-SGD step per round over the union of the peers' data, each peer adds "
              "a Skellam noise share under secure aggregation, ε charged on-chain from |U3| and k")
def _record_arm(ctx: Context) -> dict[str, Any]:
    out = _distributed(ctx, "record", ctx.cfg.k)
    for k in ctx.cfg.k_ablation:  # the price of assuming k colluders, same σ at the floor
        row = _distributed(ctx, "record", k)
        out.setdefault("k_ablation", {})[str(k)] = {
            key: row[key] for key in ("macro_f1", "accuracy", "auc", "epsilon", "sigma_released")}
    for sigma in ctx.cfg.record_frontier:
        row = _distributed(ctx, "record", ctx.cfg.k, sigma)
        out.setdefault("frontier", []).append(
            {"sigma": sigma, **{key: row[key] for key in ("macro_f1", "accuracy", "auc", "epsilon")}})
    return out


@register_arm("fedledger-distributed-user", label="the full system, distributed user-level DP "
              "(DP-FedAvg): each peer's update clipped as a whole, Skellam shares under secure "
              "aggregation, ε charged on-chain from |U3| and k")
def _user_arm(ctx: Context) -> dict[str, Any]:
    return _distributed(ctx, "user", ctx.cfg.k)


def _reference(ctx: Context, proba: Callable[[Any], np.ndarray], t0: float, c0: float) -> dict[str, Any]:
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    m = _evaluate_proba(proba, ctx)
    return {**m, "epsilon": math.inf, "seconds_per_round": wall / ctx.cfg.rounds,
            "cpu_seconds": cpu, "bytes_per_peer_per_round": 0.0, "gas_per_round": 0.0,
            "raw_data_centralized": True, "reference": REFERENCE_LABEL}


def _binary(proba: np.ndarray) -> np.ndarray:
    """scikit-learn's (n, K) probabilities as the project's: P(class 1) for K = 2."""
    return proba[:, 1] if proba.shape[1] == 2 else proba


@register_arm("ref-tfidf-lr", label=f"{REFERENCE_LABEL}: TF-IDF (1–2-grams) + logistic "
              "regression (scikit-learn) on the review text", reference=True)
def _tfidf_arm(ctx: Context) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    t0, c0 = time.perf_counter(), _cpu()
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x = vec.fit_transform(ctx.pool.texts)
    lr = LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced").fit(x, ctx.pool.labels)
    return _reference(ctx, lambda ex: _binary(lr.predict_proba(vec.transform(ex.texts))), t0, c0)


@register_arm("ref-probe", label=f"{REFERENCE_LABEL}: logistic regression on the frozen "
              "encoder's mean-pooled embeddings (a linear probe)", reference=True)
def _probe_arm(ctx: Context) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t0, c0 = time.perf_counter(), _cpu()
    enc = _frozen_encoder(ctx)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=3000,
                                                               class_weight="balanced"))
    probe.fit(enc.text_embeddings(ctx.pool), ctx.pool.labels)
    return _reference(ctx, lambda ex: _binary(probe.predict_proba(enc.text_embeddings(ex))),
                      t0, c0)


@register_arm("ref-features-lr", label=f"{REFERENCE_LABEL}: logistic regression (scikit-learn) on "
              "the image pixels and the numeric/categorical features, standardised",
              reference=True)
def _features_arm(ctx: Context) -> dict[str, Any]:
    """The simple strong baseline of the non-text inputs (on digits, what a
    pixel classifier reaches with all the data in one place)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def x(ex: Any) -> np.ndarray:
        img = ex.images.reshape(len(ex), -1) * ex.has_image[:, None]
        return np.hstack([img, ex.features, ex.has_image[:, None]]).astype(np.float64)

    t0, c0 = time.perf_counter(), _cpu()
    lr = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000,
                                                            class_weight="balanced"))
    lr.fit(x(ctx.pool), ctx.pool.labels)
    return _reference(ctx, lambda ex: _binary(lr.predict_proba(x(ex))), t0, c0)


@register_arm("majority", label="reference: always the pooled training data's majority class",
              reference=True)
def _majority_arm(ctx: Context) -> dict[str, Any]:
    t0, c0 = time.perf_counter(), _cpu()
    k = ctx.model.cfg.n_classes if hasattr(ctx.model, "cfg") else 2
    if k == 2:
        p = float(ctx.pool.labels.mean())
        p = 0.5 + 1e-3 if p >= 0.5 else 0.5 - 1e-3  # predicts the majority class for everyone
        return _reference(ctx, lambda ex: np.full(len(ex), p), t0, c0)
    row = np.full(k, 1.0 / k)
    row[np.bincount(ctx.pool.labels, minlength=k).argmax()] += 1e-3
    row /= row.sum()
    return _reference(ctx, lambda ex: np.tile(row, (len(ex), 1)), t0, c0)


def run_seed(cfg: CompareConfig, seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    from coordinator.privacy._privacy import dp_config
    from nodes._data import concat
    from nodes._model import build_model, get_flat

    ds = load_dataset(cfg, seed)
    pool = concat([p.train for p in ds.parts])
    ctx = Context(cfg, seed, ds.parts, ds.test, pool, ds.members, ds.nonmembers, None,
                  np.zeros(0), dp_config(config_id=1, q=cfg.q, sigma=cfg.sigma, steps=cfg.steps),
                  log, data=ds)
    ctx.model = build_model(ctx.model_config())
    ctx.start = get_flat(ctx.model)
    out: dict[str, Any] = {}
    for name in cfg.arms:
        arm = ARM_REGISTRY[name]
        out[name] = arm.run(ctx)
        m = out[name]
        log(f"seed {seed}: {name}{' (reference)' if arm.reference else ''}"
            f"{' (external)' if arm.external else ''} accuracy {m['accuracy']:.3f}, macro-F1 "
            f"{m['macro_f1']:.3f}, MIA AUC {m['mia_auc']:.3f}")
    return out


def _linear_features(ex: Any, embed: Callable[[Any], np.ndarray] | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    cols = [ex.features, ex.images.mean(axis=(2, 3))]
    if embed is not None:  # the frozen text embedding, layer-normalised per example
        e = embed(ex).astype(np.float64)
        e = (e - e.mean(1, keepdims=True)) / np.sqrt(e.var(1, keepdims=True) + 1e-5)
        cols.insert(0, e * ex.has_text[:, None])
    x = np.concatenate(cols, axis=1).astype(np.float32)
    return x, ex.labels.astype(np.int64)


def _flower_arm(cfg: CompareConfig, seed: int, parts: list[Any], test: Any, members: Any,
                nonmembers: Any, embed: Callable[[Any], np.ndarray] | None = None
                ) -> dict[str, Any]:
    import tempfile

    from coordinator.privacy._privacy import dp_config, opacus_epsilon
    from nodes._eval import loss_threshold_attack, utility

    from .flower_secagg import flower_run

    clip = 1.0
    with tempfile.TemporaryDirectory(prefix="fedledger-flower-data-") as tmp:
        for i, p in enumerate(parts):
            x, y = _linear_features(p.train, embed)
            np.savez(f"{tmp}/peer{i}.npz", x=x, y=y)
        d = x.shape[1] + 1
        res = flower_run(cfg.peers, {"task": "dp-linear", "num-clients": cfg.peers,
                                     "num-params": d, "num-rounds": cfg.rounds, "data-dir": tmp,
                                     "local-steps": 20, "lr": 0.5,
                                     "noise-multiplier": cfg.sigma, "clipping-norm": clip,
                                     "reconstruction-threshold": 1, "secure": False})
    w = np.array(res["weights"], np.float64)

    def proba(ex: Any) -> np.ndarray:
        x, _ = _linear_features(ex, embed)
        return 1 / (1 + np.exp(-(np.c_[x, np.ones(len(x))] @ w)))

    def loss(ex: Any) -> np.ndarray:
        p = np.clip(proba(ex), 1e-7, 1 - 1e-7)
        if p.ndim == 2:  # K classes: the true class's probability
            return -np.log(p[np.arange(len(p)), ex.labels])
        return -(ex.labels * np.log(p) + (1 - ex.labels) * np.log(1 - p))

    out: dict[str, Any] = dict(utility(test.labels, proba(test)))
    local = [utility(p.test.labels, proba(p.test))["accuracy"] for p in parts]
    out["local_accuracy_mean"] = float(np.mean(local))
    out["local_accuracy_per_peer"] = [round(v, 4) for v in local]
    att = loss_threshold_attack(loss(members), loss(nonmembers))
    user_level = dp_config(config_id=1, q=1.0, sigma=cfg.sigma, steps=cfg.rounds)
    out.update({"mia_auc": att.auc, "mia_tpr_at_0_1_fpr": att.tpr_at_0_1_fpr,
                "_roc": (att.fpr.tolist(), att.tpr.tolist()),
                "epsilon": opacus_epsilon([user_level], cfg.delta),
                "seconds_per_round": res["seconds"] / cfg.rounds, "cpu_seconds": math.nan,
                "bytes_per_peer_per_round": float(2 * 4 * d), "gas_per_round": 0.0,
                "external": FLOWER_LABEL})
    return out


METRICS = ("accuracy", "macro_f1", "auc", "local_accuracy_mean", "epsilon", "mia_auc",
           "mia_tpr_at_0_1_fpr", "seconds_per_round", "cpu_seconds", "bytes_per_peer_per_round",
           "gas_per_round")


def ci95_half_width(sd: float, n: int) -> float:
    """Half-width of the 95 % confidence interval of a mean over n seeds:
    Student's t with n − 1 degrees of freedom (4.30 at n = 3, not the
    normal 1.96, which is right only for many seeds). One seed: no interval (0)."""
    if n < 2:
        return 0.0
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def mean_ci(values: list[float]) -> dict[str, Any]:
    """Mean, std, n and Student's-t 95 % half-width over the finite values
    (all None when there are none: ε = ∞)."""
    vals = np.array(values, float)
    finite = vals[np.isfinite(vals)]
    if len(finite) == 0:
        return {"mean": None, "std": None, "ci95": None}
    sd = float(finite.std(ddof=1)) if len(finite) > 1 else 0.0
    return {"mean": float(finite.mean()), "std": sd, "n": int(len(finite)),
            "ci95": ci95_half_width(sd, len(finite))}


def summarize(per_seed: list[dict[str, Any]], arms: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for arm in arms:
        rows = [s[arm] for s in per_seed if arm in s]
        out[arm] = {k: mean_ci([r[k] for r in rows]) for k in METRICS}
    return out


def extras(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Frontier points (mode, σ) and the k ablation, mean ± CI over seeds."""
    frontier: dict[tuple[str, float], list[dict[str, Any]]] = {}
    kab: dict[int, list[dict[str, Any]]] = {}
    for seed in per_seed:
        for arm, m in seed.items():
            for row in m.get("frontier", []):
                frontier.setdefault((arm, row["sigma"]), []).append(row)
        for k, row in seed.get("fedledger-distributed-record", {}).get("k_ablation", {}).items():
            kab.setdefault(int(k), []).append(row)
        if "fedledger-distributed-record" in seed:
            m = seed["fedledger-distributed-record"]
            kab.setdefault(int(m["k"]), []).append(m)
    return {"frontier": [{"arm": arm, "sigma": sig,
                          **{key: mean_ci([r[key] for r in rows]) for key in ("epsilon", "macro_f1")}}
                         for (arm, sig), rows in sorted(frontier.items())],
            "k_ablation": [{"k": k, **{key: mean_ci([r[key] for r in rows])
                                       for key in ("epsilon", "macro_f1", "sigma_released")}}
                           for k, rows in sorted(kab.items()) if len(kab) > 1]}


#: The same function under its short name (tests and callers use both).
ci95 = ci95_half_width


#: The arms that are fedledger itself (the frontier's points of these arms too).
FEDLEDGER_ARMS = ("fedledger", "fedledger-distributed-record", "fedledger-distributed-user")


def targets(summary: dict[str, Any], cfg: CompareConfig,
            frontier: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """The issue's utility criteria, each measured and marked met or not.
    ``frontier`` (from :func:`extras`) adds the fedledger modes' other σ,
    measured in the same run, as candidates for "fedledger at ε ≤ 8"."""
    def mean(arm: str, k: str = "macro_f1") -> float | None:
        return summary.get(arm, {}).get(k, {}).get("mean")

    def ci(arm: str) -> float:
        return float(summary[arm]["macro_f1"]["ci95"] or 0.0)

    rows: list[dict[str, Any]] = []
    pooled, tfidf, fed = mean("pooled"), mean("ref-tfidf-lr"), mean("fedledger")
    if pooled is not None and tfidf is not None:
        rows.append({"target": "pooled (no DP, our model) ≥ TF-IDF+LR macro-F1 − 0.02",
                     "value": round(pooled - tfidf, 4), "met": pooled >= tfidf - 0.02})
    if fed is not None and pooled is not None:
        eps = mean("fedledger", "epsilon")
        rows.append({"target": "fedledger (local DP, ε ≤ 8) macro-F1 within 0.03 of pooled",
                     "value": round(fed - pooled, 4),
                     "met": fed >= pooled - 0.03 and eps is not None and eps <= 8.0})
    rec, pdp = mean("fedledger-distributed-record"), mean("pooled-dp")
    if rec is not None and pdp is not None:
        e_rec, e_pdp = mean("fedledger-distributed-record", "epsilon"), mean("pooled-dp", "epsilon")
        rows.append({"target": "fedledger distributed record-level at ε ≤ 2 within 0.02 of "
                               "pooled DP-SGD at the same ε",
                     "value": round(rec - pdp, 4),
                     "met": rec >= pdp - 0.02 and e_rec is not None and e_rec <= 2.0
                     and e_pdp is not None and e_pdp <= 2.0})
    if rec is not None and pooled is not None:
        e_rec = mean("fedledger-distributed-record", "epsilon")
        rows.append({"target": "fedledger distributed record-level (ε ≤ 8) within 0.03 of pooled",
                     "value": round(rec - pooled, 4),
                     "met": rec >= pooled - 0.03 and e_rec is not None and e_rec <= 8.0})
    if pooled is not None:
        # "fedledger at ε ≤ 8 within 3 points of pooled": any fedledger mode
        # or frontier point whose mean ledger ε is ≤ 8, the best by mean
        # macro-F1 (a choice among a handful of points measured in this run;
        # the point is named so a reader can find it above).
        cands = [(float(m), arm) for arm in FEDLEDGER_ARMS
                 if (m := mean(arm)) is not None and (e := mean(arm, "epsilon")) is not None
                 and e <= 8.0]
        cands += [(float(r["macro_f1"]["mean"]), f"{r['arm']} at σ {r['sigma']}")
                  for r in frontier if r["arm"] in FEDLEDGER_ARMS
                  and r["epsilon"]["mean"] is not None and r["epsilon"]["mean"] <= 8.0
                  and r["macro_f1"]["mean"] is not None]
        if cands:
            best, name = max(cands)
            rows.append({"target": f"fedledger at ε ≤ 8, best mode ({name}), within 0.03 of "
                                   "pooled", "value": round(best - pooled, 4),
                         "met": best >= pooled - 0.03, "best": name})
    maj = mean("majority")
    if maj is not None:
        for arm in summary:
            if arm == "majority" or mean(arm) is None:
                continue
            margin = float(mean(arm) or 0.0) - maj
            n = int(summary[arm]["macro_f1"].get("n") or 0)
            # one seed has no confidence interval: the claim cannot be met
            rows.append({"target": f"{arm} beats the majority class by more than its CI",
                         "value": round(margin, 4), "met": n >= 2 and margin > ci(arm)})
    return rows


def markdown(summary: dict[str, Any], cfg: CompareConfig, command: str,
             more: dict[str, Any] | None = None) -> str:
    def fmt(c: dict[str, Any], digits: int = 3, none: str = "∞") -> str:
        if c["mean"] is None:
            return none
        return f"{c['mean']:.{digits}f} ± {c['ci95']:.{digits}f}"

    if cfg.data:
        source = (f"Dataset: `{cfg.data}` with schema `{cfg.schema}`, partition "
                  f"`{cfg.partition}`; {cfg.test_fraction:.0%} held out as the global test set, "
                  f"{cfg.holdout:.0%} of each peer's share as its own held-out split (\"local acc.\": "
                  "the released model on each peer's held-out split, averaged).")
        title = f"## Results on a researcher's dataset: `{Path(cfg.data).name}`"
    else:
        source = f"Dataset `{cfg.dataset}`."
        title = ("# Results: decentralized vs centralized vs pooled" if cfg.dataset == "synthetic"
                 else f"## Results on real data: `{cfg.dataset}`")
    lines = [title, "",
             f"Generated by `{command}` from its JSON output; do not edit by hand.", "",
             source, "",
             f"{cfg.peers} peers, {cfg.rounds} rounds, encoder "
             f"{cfg.encoder} (LoRA r={cfg.lora_r}, {cfg.max_len} tokens, head {cfg.hidden}), "
             f"DP (q={cfg.q}, σ={cfg.sigma}, T={cfg.steps}, C={cfg.max_grad_norm}) per round, "
             f"δ={cfg.delta}; seeds {list(cfg.seeds)}; mean ± 95 % CI over seeds (Student's t). "
             f"Head {cfg.head}, optimizer {cfg.optimizer}, lr {cfg.lr}. Distributed record level "
             f"(and pooled-dp): q={cfg.record_q}, σ={cfg.record_sigma}, {cfg.record_rounds} "
             f"rounds (the first releases the class counts, each later one is a class-weighted "
             f"SGD step at lr {cfg.record_lr}); pooled without DP: {cfg.pooled_optimizer} at lr "
             f"{cfg.pooled_lr}, loss weighted by the exact class counts; user level: σ={cfg.user_sigma}, "
             f"clip {cfg.user_clip}, {cfg.rounds} rounds, local SGD lr {user_lr(cfg)}; "
             f"collusion bound k={cfg.k}.",
             "",
             "| arm | accuracy | macro-F1 | AUC | local acc. | ε | MIA AUC | MIA TPR@0.1%FPR "
             "| s/round | bytes/peer/round | gas/round |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for arm, m in summary.items():
        lines.append(f"| {arm} | {fmt(m['accuracy'])} | {fmt(m['macro_f1'])} | {fmt(m['auc'])} | "
                     f"{fmt(m['local_accuracy_mean'])} | {fmt(m['epsilon'], 2)} | "
                     f"{fmt(m['mia_auc'])} | {fmt(m['mia_tpr_at_0_1_fpr'])} | "
                     f"{fmt(m['seconds_per_round'], 2)} | {fmt(m['bytes_per_peer_per_round'], 0, '—')} | "
                     f"{fmt(m['gas_per_round'], 0)} |")
    lines += ["", "`pooled` and `pooled-dp` move raw data to one place; `central` shows the "
              "server every update in the clear; `fedledger` shows no one an individual update "
              "and accounts ε on-chain (record-level, per peer)."]
    dist = [a for a in summary if a.startswith("fedledger-distributed-") and a in ARM_REGISTRY]
    if dist:
        lines += [""] + [f"`{a}` is {ARM_REGISTRY[a].label}." for a in dist]
    if "flower-dp" in summary:
        text_only = ("; on this text-only data set the behaviour features and image means are "
                     "constant placeholders, so in effect it sees the text embedding alone"
                     if cfg.dataset == "rotten-tomatoes" and not cfg.data else "")
        lines += ["", f"`flower-dp` is {FLOWER_LABEL}{text_only}; its ε is user-level (q = 1, "
                  "the server's noise per round), not comparable record for record with the "
                  "others."]
    refs = [a for a in summary if a in ARM_REGISTRY and ARM_REGISTRY[a].reference]
    if refs:
        lines += [""] + [f"`{a}` is {ARM_REGISTRY[a].label}." for a in refs]
    more = more or {}
    if more.get("k_ablation"):
        lines += ["", "Collusion bound k (record level, the same σ at the floor of peers − k noisy "
                  "shares, so each peer adds more noise as k grows):", "",
                  "| k | σ of the released sum (all survivors) | ε (ledger) | macro-F1 |", "|---|---|---|---|"]
        lines += [f"| {r['k']} | {fmt(r['sigma_released'], 2)} | {fmt(r['epsilon'], 2)} | "
                  f"{fmt(r['macro_f1'])} |" for r in more["k_ablation"]]
    if more.get("frontier"):
        lines += ["", "Other points of the frontier (plotted in `frontier.png`):", "",
                  "| arm | σ | ε | macro-F1 |", "|---|---|---|---|"]
        lines += [f"| {r['arm']} | {r['sigma']} | {fmt(r['epsilon'], 2)} | {fmt(r['macro_f1'])} |"
                  for r in more["frontier"]]
    rows = targets(summary, cfg, more.get("frontier", ()))
    if rows:
        lines += ["", "Targets: \"measured\" is a difference of mean macro-F1, the arm named "
                  "first minus what it is compared with (ε bounds are checked too); "
                  "\"beats the majority class\" is met when that margin exceeds the arm's own "
                  "95 % CI (its macro-F1 ± above), so never with one seed.",
                  "", "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {r['target']} | {r['value']:+.3f} | {'yes' if r['met'] else '**no**'} |"
                  for r in rows]
    lines.append("")
    return "\n".join(lines)


def plots(per_seed: list[dict[str, Any]], summary: dict[str, Any], out: Path,
          more: dict[str, Any] | None = None, seeds: tuple[int, ...] = ()) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, m in summary.items():
        eps = m["epsilon"]["mean"]
        x = eps if eps is not None else max((s["epsilon"]["mean"] or 0) for s in summary.values()) * 1.3 + 1
        ax.errorbar([x], [m["macro_f1"]["mean"]], yerr=[m["macro_f1"]["ci95"]], fmt="o", capsize=3,
                    label=arm)
    mode_of = {"central": "local mode", "fedledger": "local mode",
               "fedledger-distributed-record": "distributed record level"}
    curves: dict[str, list[tuple[float, float]]] = {}
    for arm, m in summary.items():
        if arm in mode_of and m["epsilon"]["mean"] is not None:
            curves.setdefault(mode_of[arm], []).append((m["epsilon"]["mean"], m["macro_f1"]["mean"]))
    for r in (more or {}).get("frontier", []):
        curves.setdefault(mode_of.get(r["arm"], r["arm"]), []).append(
            (r["epsilon"]["mean"], r["macro_f1"]["mean"]))
    for mode, pts in curves.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "--", linewidth=1, label=f"{mode} (frontier)")
    ax.set(xlabel="ε (∞ plotted at the right edge)", ylabel="test macro-F1",
           title="utility vs privacy")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)  # beside, not over, the points
    fig.savefig(out / "frontier.png", dpi=110, bbox_inches="tight")
    made.append("frontier.png")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 5))
    # the first seed that kept its ROC curves (seeds saved before the curves
    # were kept in the per-seed files have none)
    first = next((i for i, s in enumerate(per_seed) if all("_roc" in s[a] for a in summary)), 0)
    for arm in summary:
        if "_roc" in per_seed[first][arm]:
            fpr, tpr = per_seed[first][arm]["_roc"]
            ax.plot(fpr, tpr, label=arm)
    ax.plot([1e-4, 1], [1e-4, 1], "k:", linewidth=0.8)
    ax.set(xscale="log", yscale="log", xlabel="FPR", ylabel="TPR",
           title=f"MIA ROC (seed {seeds[first] if seeds else first})",
           xlim=(1e-3, 1), ylim=(1e-3, 1))
    ax.legend()
    fig.savefig(out / "mia_roc.png", dpi=110, bbox_inches="tight")
    made.append("mia_roc.png")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    arms = list(summary)
    ax.bar(arms, [summary[a]["seconds_per_round"]["mean"] for a in arms],
           yerr=[summary[a]["seconds_per_round"]["ci95"] for a in arms], capsize=3)
    ax.set(ylabel="wall seconds per round", title="cost per round")
    fig.savefig(out / "cost.png", dpi=110, bbox_inches="tight")
    made.append("cost.png")
    plt.close(fig)
    return made


def seed_path(out: Path, seed: int) -> Path:
    return out / "seeds" / f"seed-{seed}.json"


#: Fields added after seeds were committed, with the default that means what
#: the configuration did before they existed: left at it, a field is not part
#: of the seed key, so those seeds still load under ``--resume``.
ADDED_FIELDS: dict[str, Any] = {"user_lr": None}


#: The version of what an arm measures, part of every seed key: seeds saved
#: by an older mechanism never load under ``--resume``. 2: the distributed arms
#: start from the seed's initial model (before, from whatever the arm before
#: them left in the shared model object: the pooled arm's non-private model).
MECHANISM = 2

#: Arms whose mechanism changed since :data:`MECHANISM`, at their own version,
#: stored with each arm's results: under ``--resume`` a saved arm of another
#: version runs again and the seed's other arms are reused (every arm starts
#: from the seed's initial model, so one arm's result does not depend on which
#: others ran with it). 3: class balance at record level (the label round
#: and class weights, docs/decisions.md) and the pooled arms' same recipe.
ARM_MECHANISM: dict[str, int] = {"fedledger-distributed-record": 3, "pooled-dp": 3, "pooled": 3}


def arm_mechanism(arm: str) -> int:
    return ARM_MECHANISM.get(arm, MECHANISM)


def _seed_key(cfg: CompareConfig) -> str:
    """The configuration a seed's results belong to: everything but the seed
    list (and the :data:`ADDED_FIELDS` left at their old meaning), and the
    :data:`MECHANISM` that produced them."""
    key = {k: v for k, v in asdict(cfg).items() if k != "seeds" and not (
        k in ADDED_FIELDS and v == ADDED_FIELDS[k])}
    return json.dumps({**key, "mechanism": MECHANISM}, sort_keys=True)


def save_seed(out: Path, cfg: CompareConfig, seed: int, result: dict[str, Any],
              seconds: float | None, command: str) -> None:
    """One seed's results, written (atomically) as soon as the seed ends: a
    crash or an interrupt loses at most the seed in progress, and
    ``--resume`` adds seeds to a finished comparison without rerunning it."""
    from ._common import write_json

    write_json("compare-seed", {"command": command, "config": json.loads(_seed_key(cfg)),
                                "seed": seed,
                                "seconds": None if seconds is None else round(seconds, 1),
                                "arms": {a: {**m, "mechanism": arm_mechanism(a)}
                                         for a, m in result.items()}},
               seed_path(out, seed))


def load_seed(out: Path, cfg: CompareConfig, seed: int) -> dict[str, Any] | None:
    """A seed's saved results if they were made with this configuration, only
    its arms at their current :func:`arm_mechanism` (the others run again);
    None (and the whole seed runs again) when missing, unreadable or made with
    another configuration."""
    path = seed_path(out, seed)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("seed") != seed or \
            json.dumps(data.get("config"), sort_keys=True) != _seed_key(cfg):
        return None
    arms = data.get("arms")
    if not isinstance(arms, dict):
        return None
    return {a: arms[a] for a in cfg.arms if isinstance(arms.get(a), dict)
            and arms[a].get("mechanism", MECHANISM) == arm_mechanism(a)}


def run(cfg: CompareConfig, out: Path, *, command: str,
        log: Callable[[str], None] = print, resume: bool = False) -> dict[str, Any]:
    """Every arm for every seed; with ``resume``, seeds whose results
    ``out/seeds/seed-N.json`` holds for this same configuration are reused."""
    from ._common import machine, write_json

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if cfg.data:
        from nodes._schema import load_schema

        schema = load_schema(Path(cfg.schema))
        skip: dict[str, str] = {}
        if schema.n_classes != 2:  # its logistic regression is binary
            skip["flower-dp"] = "the external Flower arm is a binary logistic regression"
        if not schema.text:
            skip["ref-tfidf-lr"] = "the schema declares no text column"
            skip["ref-probe"] = "the schema declares no text column"
        if not schema.image and not schema.n_features:
            skip["ref-features-lr"] = "the schema declares no image or feature column"
        for arm, why in skip.items():
            if arm in cfg.arms:
                log(f"{arm} arm skipped: {why}")
        cfg = replace(cfg, arms=tuple(a for a in cfg.arms if a not in skip))
    elif cfg.dataset == "rotten-tomatoes" and "ref-features-lr" in cfg.arms:
        log("ref-features-lr arm skipped: rotten-tomatoes is text only")
        cfg = replace(cfg, arms=tuple(a for a in cfg.arms if a != "ref-features-lr"))
    per_seed, reused = [], []
    for s in cfg.seeds:
        done = (load_seed(out, cfg, s) if resume else None) or {}
        missing = tuple(a for a in cfg.arms if a not in done)
        if missing:
            if done:
                log(f"seed {s}: reusing {', '.join(done)} from {seed_path(out, s)}; "
                    f"running {', '.join(missing)}")
            t1 = time.perf_counter()
            done = {**done, **run_seed(replace(cfg, arms=missing), s, log)}
            done = {a: done[a] for a in cfg.arms}
            save_seed(out, cfg, s, done, time.perf_counter() - t1, command)
        else:
            reused.append(s)
            log(f"seed {s}: reused from {seed_path(out, s)} (same configuration)")
        per_seed.append(done)
    summary = summarize(per_seed, cfg.arms)
    more = extras(per_seed)
    files = plots(per_seed, summary, out, more, cfg.seeds)
    checks = targets(summary, cfg, more["frontier"])
    md = markdown(summary, cfg, command, more)
    (out / "results.md").write_text(md)
    data = {"machine": machine(), "config": asdict(cfg), "command": command,
            "seconds": round(time.perf_counter() - t0, 1), "seeds_reused": reused,
            "summary": summary,
            "targets": checks, "frontier": more["frontier"], "k_ablation": more["k_ablation"],
            "arm_labels": {a: {"label": ARM_REGISTRY[a].label,
                               "reference": ARM_REGISTRY[a].reference,
                               "external": ARM_REGISTRY[a].external} for a in cfg.arms},
            "per_seed": [{a: {k: v for k, v in m.items() if not k.startswith("_")}
                          for a, m in s.items()} for s in per_seed],
            "plots": files}
    write_json("compare", data, out / "compare.json")
    return data
