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

import math
import resource
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ARMS = ("fedledger", "central", "pooled-dp", "pooled", "flower-dp")

#: The external arm, labelled wherever it is reported.
FLOWER_LABEL = ("external: Flower 1.42, DifferentialPrivacyClientSideFixedClipping + "
                "fixedclipping_mod (user-level central DP), logistic regression on the peers' "
                "behaviour features and image channel means — not our model")


@dataclass(frozen=True, kw_only=True)
class CompareConfig:
    peers: int = 8
    threshold: int = 5
    rounds: int = 3
    encoder: str = "tiny"
    examples_per_peer: int = 192
    q: float = 0.25
    sigma: float = 1.1
    steps: int = 10
    lr: float = 1e-2
    delta: float = 1e-5
    epsilon_cap: float = 50.0
    seeds: tuple[int, ...] = (0, 1, 2)
    arms: tuple[str, ...] = ARMS
    mia_examples: int = 256
    # A researcher's dataset instead of the synthetic generator (empty: synthetic).
    data: str = ""  # a CSV/JSONL file, or a folder of them (concatenated)
    schema: str = ""  # its schema.toml
    partition: str = "dirichlet:0.5"  # iid | dirichlet:ALPHA | by-column:NAME
    test_fraction: float = 0.2  # global held-out test set (no peer holds it)
    holdout: float = 0.2  # each peer's own held-out split of its share


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _evaluate(model: Any, flat: np.ndarray, test: Any, parts: list[Any], members: Any,
              nonmembers: Any) -> dict[str, Any]:
    from nodes._eval import loss_threshold_attack, utility
    from nodes._model import set_flat
    from nodes._train import per_example_loss, predict_proba

    set_flat(model, flat)
    out: dict[str, Any] = dict(utility(test.labels, predict_proba(model, test)))
    local = [utility(p.test.labels, predict_proba(model, p.test))["accuracy"] for p in parts]
    out["local_accuracy_mean"] = float(np.mean(local))
    out["local_accuracy_per_peer"] = [round(x, 4) for x in local]
    att = loss_threshold_attack(per_example_loss(model, members), per_example_loss(model, nonmembers))
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
    from nodes._data import concat, generate, global_test, holdout, holdout_indices, partition, split_peers
    from nodes._model import ModelConfig, config_for_schema
    from nodes._schema import SYNTHETIC, column_values, data_files, load_schema, load_with_schema

    rng = np.random.default_rng(seed)
    if not cfg.data:
        parts = partition(cfg.peers, examples_per_peer=cfg.examples_per_peer, seed=seed)
        pool = concat([p.train for p in parts])
        members = pool.subset(rng.permutation(len(pool))[: cfg.mia_examples])
        return Dataset(parts, global_test(512, seed=seed), members,
                       generate(len(members), seed=50_000 + seed),
                       ModelConfig(encoder=cfg.encoder, seed=seed), SYNTHETIC.hash(), False)
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
                   config_for_schema(schema, encoder=cfg.encoder, seed=seed), schema.hash(), True)


def run_seed(cfg: CompareConfig, seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    from coordinator.protocol._central import CentralFedAvg
    from coordinator.privacy._privacy import dp_config, opacus_epsilon
    from nodes._data import concat
    from nodes._demo import DemoConfig, OwnData, run_demo
    from nodes._model import build_model, get_flat
    from nodes._peer import ModelLearner
    from nodes._train import TrainConfig, train_local

    ds = load_dataset(cfg, seed)
    parts, test, members, nonmembers = ds.parts, ds.test, ds.members, ds.nonmembers
    pool = concat([p.train for p in parts])
    model = build_model(ds.model)
    start = get_flat(model)
    dpc = dp_config(config_id=1, q=cfg.q, sigma=cfg.sigma, steps=cfg.steps)
    out: dict[str, Any] = {}

    if "fedledger" in cfg.arms:
        finals: list[np.ndarray] = []
        t0, c0 = time.perf_counter(), _cpu()
        res = run_demo(DemoConfig(peers=cfg.peers, threshold=cfg.threshold, rounds=cfg.rounds,
                                  encoder=cfg.encoder, examples_per_peer=cfg.examples_per_peer,
                                  q=cfg.q, sigma=cfg.sigma, steps=cfg.steps, lr=cfg.lr,
                                  epsilon_cap=cfg.epsilon_cap, delta=cfg.delta,
                                  dropouts=False, seed=seed), on_final=finals.append,
                       data=OwnData(parts, ds.model, ds.schema_hash) if ds.own else None)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        m = _evaluate(model, finals[0], test, parts, members, nonmembers)
        out["fedledger"] = {**m, "epsilon": max(p["epsilon"] for p in res["peers"]),
                            "seconds_per_round": wall / cfg.rounds, "cpu_seconds": cpu,
                            "bytes_per_peer_per_round": float(np.mean(
                                [r["bytes_moved"] for r in res["rounds"]])) / cfg.peers,
                            "gas_per_round": float(np.mean([r["gas"] for r in res["rounds"]]))}
        log(f"seed {seed}: fedledger accuracy {m['accuracy']:.3f}, MIA AUC {m['mia_auc']:.3f}")

    if "central" in cfg.arms:
        base = TrainConfig(lr=cfg.lr, delta=cfg.delta)
        learners = [ModelLearner(model, p.train, base) for p in parts]

        def client(i: int) -> Callable[[np.ndarray, int], tuple[np.ndarray, int]]:
            def run(glob: np.ndarray, r: int) -> tuple[np.ndarray, int]:
                delta, _ = learners[i].update(glob, dpc, seed=seed * 1000 + r * 100 + i)
                return delta, learners[i].examples
            return run

        server = CentralFedAvg([client(i) for i in range(cfg.peers)])
        flat, c0 = start.copy(), _cpu()
        for r in range(1, cfg.rounds + 1):
            flat = server.round(flat, r)
        cpu = _cpu() - c0
        m = _evaluate(model, flat, test, parts, members, nonmembers)
        out["central"] = {**m, "epsilon": opacus_epsilon([dpc] * cfg.rounds, cfg.delta),
                          "seconds_per_round": float(np.mean(server.seconds)), "cpu_seconds": cpu,
                          "bytes_per_peer_per_round": float(np.mean(server.bytes_per_client)),
                          "gas_per_round": 0.0}
        log(f"seed {seed}: central accuracy {m['accuracy']:.3f}, MIA AUC {m['mia_auc']:.3f}")

    if "flower-dp" in cfg.arms:
        out["flower-dp"] = _flower_arm(cfg, seed, parts, test, members, nonmembers)
        log(f"seed {seed}: flower-dp (external) accuracy {out['flower-dp']['accuracy']:.3f}, "
            f"MIA AUC {out['flower-dp']['mia_auc']:.3f}")

    for arm, dp in (("pooled-dp", True), ("pooled", False)):
        if arm not in cfg.arms:
            continue
        from nodes._model import set_flat

        set_flat(model, start)
        t0, c0 = time.perf_counter(), _cpu()
        tc = TrainConfig(epochs=cfg.rounds, batch_size=max(8, int(cfg.q * len(pool) / cfg.peers)),
                         lr=cfg.lr, dp=dp, noise_multiplier=cfg.sigma if dp else None,
                         delta=cfg.delta, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res_t = train_local(model, pool, cfg=tc)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        m = _evaluate(model, get_flat(model), test, parts, members, nonmembers)
        out[arm] = {**m, "epsilon": res_t.epsilon_rdp if dp else math.inf,
                    "seconds_per_round": wall / cfg.rounds, "cpu_seconds": cpu,
                    "bytes_per_peer_per_round": 0.0, "gas_per_round": 0.0,
                    "raw_data_centralized": True}
        log(f"seed {seed}: {arm} accuracy {m['accuracy']:.3f}, MIA AUC {m['mia_auc']:.3f}")
    return out


def _linear_features(ex: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.c_[ex.features, ex.images.mean(axis=(2, 3))].astype(np.float32)
    return x, ex.labels.astype(np.int64)


def _flower_arm(cfg: CompareConfig, seed: int, parts: list[Any], test: Any, members: Any,
                nonmembers: Any) -> dict[str, Any]:
    import tempfile

    from coordinator.privacy._privacy import dp_config, opacus_epsilon
    from nodes._eval import loss_threshold_attack, utility

    from .flower_secagg import flower_run

    clip = 1.0
    with tempfile.TemporaryDirectory(prefix="fedledger-flower-data-") as tmp:
        for i, p in enumerate(parts):
            x, y = _linear_features(p.train)
            np.savez(f"{tmp}/peer{i}.npz", x=x, y=y)
        d = x.shape[1] + 1
        res = flower_run(cfg.peers, {"task": "dp-linear", "num-clients": cfg.peers,
                                     "num-params": d, "num-rounds": cfg.rounds, "data-dir": tmp,
                                     "local-steps": 20, "lr": 0.5,
                                     "noise-multiplier": cfg.sigma, "clipping-norm": clip,
                                     "reconstruction-threshold": 1, "secure": False})
    w = np.array(res["weights"], np.float64)

    def proba(ex: Any) -> np.ndarray:
        x, _ = _linear_features(ex)
        return 1 / (1 + np.exp(-(np.c_[x, np.ones(len(x))] @ w)))

    def loss(ex: Any) -> np.ndarray:
        p = np.clip(proba(ex), 1e-7, 1 - 1e-7)
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


def summarize(per_seed: list[dict[str, Any]], arms: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for arm in arms:
        rows = [s[arm] for s in per_seed if arm in s]
        out[arm] = {}
        for k in METRICS:
            vals = np.array([r[k] for r in rows], float)
            finite = vals[np.isfinite(vals)]
            if len(finite) == 0:
                out[arm][k] = {"mean": None, "std": None, "ci95": None}
                continue
            sd = float(finite.std(ddof=1)) if len(finite) > 1 else 0.0
            out[arm][k] = {"mean": float(finite.mean()), "std": sd,
                           "ci95": 1.96 * sd / math.sqrt(len(finite))}
    return out


def markdown(summary: dict[str, Any], cfg: CompareConfig, command: str) -> str:
    def fmt(c: dict[str, Any], digits: int = 3) -> str:
        if c["mean"] is None:
            return "∞"
        return f"{c['mean']:.{digits}f} ± {c['ci95']:.{digits}f}"

    if cfg.data:
        source = (f"Dataset: `{cfg.data}` with schema `{cfg.schema}`, partition "
                  f"`{cfg.partition}`; {cfg.test_fraction:.0%} held out as the global test set, "
                  f"{cfg.holdout:.0%} of each peer's share as its own held-out split (\"local acc.\": "
                  "the released model on each peer's held-out split, averaged).")
    else:
        source = ("Dataset: the synthetic social-commerce generator (the zero-configuration "
                  "default).")
    title = (f"## Results on a researcher's dataset: `{Path(cfg.data).name}`" if cfg.data else
             "# Results: decentralized vs centralized vs pooled")
    lines = [title, "",
             f"Generated by `{command}` from its JSON output; do not edit by hand.", "",
             source, "",
             f"{cfg.peers} peers, {cfg.rounds} rounds, encoder {cfg.encoder}, DP (q={cfg.q}, "
             f"σ={cfg.sigma}, T={cfg.steps}) per round, δ={cfg.delta}; seeds {list(cfg.seeds)}; "
             "mean ± 95 % CI over seeds.", "",
             "| arm | accuracy | macro-F1 | AUC | local acc. | ε | MIA AUC | MIA TPR@0.1%FPR "
             "| s/round | bytes/peer/round | gas/round |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for arm, m in summary.items():
        lines.append(f"| {arm} | {fmt(m['accuracy'])} | {fmt(m['macro_f1'])} | {fmt(m['auc'])} | "
                     f"{fmt(m['local_accuracy_mean'])} | {fmt(m['epsilon'], 2)} | "
                     f"{fmt(m['mia_auc'])} | {fmt(m['mia_tpr_at_0_1_fpr'])} | "
                     f"{fmt(m['seconds_per_round'], 2)} | {fmt(m['bytes_per_peer_per_round'], 0)} | "
                     f"{fmt(m['gas_per_round'], 0)} |")
    lines += ["", "`pooled` and `pooled-dp` move raw data to one place; `central` shows the "
              "server every update in the clear; `fedledger` shows no one an individual update "
              "and accounts ε on-chain (record-level, per peer)."]
    if "flower-dp" in summary:
        lines += ["", f"`flower-dp` is {FLOWER_LABEL}; its ε is user-level (q = 1, the server's "
                  "noise per round), not comparable record for record with the others."]
    lines.append("")
    return "\n".join(lines)


def plots(per_seed: list[dict[str, Any]], summary: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, m in summary.items():
        eps = m["epsilon"]["mean"]
        x = eps if eps is not None else max((s["epsilon"]["mean"] or 0) for s in summary.values()) * 1.3 + 1
        ax.errorbar([x], [m["auc"]["mean"]], yerr=[m["auc"]["ci95"]], fmt="o", capsize=3, label=arm)
    ax.set(xlabel="ε (∞ plotted at the right edge)", ylabel="test AUC",
           title="utility vs privacy")
    ax.legend()
    fig.savefig(out / "frontier.png", dpi=110, bbox_inches="tight")
    made.append("frontier.png")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 5))
    for arm in summary:
        fpr, tpr = per_seed[0][arm]["_roc"]
        ax.plot(fpr, tpr, label=arm)
    ax.plot([1e-4, 1], [1e-4, 1], "k:", linewidth=0.8)
    ax.set(xscale="log", yscale="log", xlabel="FPR", ylabel="TPR", title="MIA ROC (seed 0)",
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


def run(cfg: CompareConfig, out: Path, *, command: str,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    from ._common import machine, write_json

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if cfg.data and "flower-dp" in cfg.arms:
        from dataclasses import replace

        from nodes._schema import load_schema

        if load_schema(Path(cfg.schema)).n_classes != 2:  # its logistic regression is binary
            log("flower-dp arm skipped: the external Flower arm is a binary logistic regression")
            cfg = replace(cfg, arms=tuple(a for a in cfg.arms if a != "flower-dp"))
    per_seed = [run_seed(cfg, s, log) for s in cfg.seeds]
    summary = summarize(per_seed, cfg.arms)
    files = plots(per_seed, summary, out)
    md = markdown(summary, cfg, command)
    (out / "results.md").write_text(md)
    data = {"machine": machine(), "config": asdict(cfg), "command": command,
            "seconds": round(time.perf_counter() - t0, 1), "summary": summary,
            "per_seed": [{a: {k: v for k, v in m.items() if not k.startswith("_")}
                          for a, m in s.items()} for s in per_seed],
            "plots": files}
    write_json("compare", data, out / "compare.json")
    return data
