"""`fedledger demo`: the whole system in one process on embedded defaults.

Embedded chain (py-evm) and embedded content store; eight peers with non-IID
multimodal data run the same :class:`nodes._peer.PeerNode` code the daemon
runs, each with its own encrypted state database in a temporary directory;
the round driver and aggregator are :class:`coordinator.protocol._driver.RoundDriver`;
every round is re-verified with :func:`coordinator.protocol._aggregate.verify`, the
function auditors run. A peer drops out by no longer being stepped.
"""

from __future__ import annotations

import logging
import math
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from coordinator import FedLedgerError
from coordinator._errors import ConfigError
from coordinator.protocol._aggregate import collect, load_adapter, verify
from coordinator.chain._chain import EmbeddedChain
from coordinator.chain._contracts import LedgerPolicy, Phase, Policy, deploy_federation
from coordinator.protocol._driver import WAITING, RoundDriver, initial_adapter_args
from coordinator.privacy._privacy import dp_config
from coordinator.store._store import EmbeddedStore

from ._data import PeerData, concat
from ._datasets import TOWERS, federated_data
from ._eval import utility
from ._model import ModelConfig, build_model, get_flat, set_flat
from ._peer import Action, ModelLearner, PeerNode
from ._schema import schema_hash
from ._state import PeerState
from ._train import TrainConfig, predict_proba

log = logging.getLogger("fedledger.demo")
STAKE = 10**17


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    """The demo's defaults end training at ε ≤ 8 at δ = 1e-5 (≤ 1/records of
    every peer): 5 rounds of (q = 0.25, σ = 1.5, T = 10) cost ε = 7.69 on the
    ledger (Opacus RDP 7.35), under the cap of 8 (docs/decisions.md "Defaults
    end at ε ≤ 8")."""

    dataset: str = "synthetic"
    peers: int = 8
    threshold: int = 5
    rounds: int = 5
    encoder: str = "tiny"
    examples_per_peer: int = 192
    alpha: float = 0.5  # Dirichlet label skew
    # The model recipe (docs/decisions.md "A recipe that learns on real text").
    lora_r: int = 0
    max_len: int = 64
    hidden: int = 32
    head: str = "mlp"
    optimizer: str = "adam"
    max_grad_norm: float = 1.0
    q: float = 0.25
    sigma: float = 1.5
    steps: int = 10
    lr: float = 1e-2
    epsilon_cap: float = 8.0
    delta: float = 1e-5
    test_examples: int = 512
    # Then the distributed record level on the same peers and start adapter:
    # record_rounds rounds of one full-batch DP-SGD step over the union, each
    # survivor adding a Skellam share, k survivors' noise assumed known; the
    # demo releases whichever mode ends with the better model (0: local only).
    record_rounds: int = 20
    record_sigma: float = 10.5  # 20 rounds: ε 1.82 on the ledger at δ = 1e-5, k = 1
    record_lr: float = 2.0
    k: int = 1
    dropouts: bool = True  # round 2: one peer drops after sharing keys, one after committing
    dishonest_aggregator: bool = False  # round 2's first result is wrong and gets challenged
    malicious_dealer: bool = False  # peer 2 deals peer 1 a share off its committed polynomial
    seed: int = 0

    def __post_init__(self) -> None:
        if self.peers < 3:
            raise ConfigError(f"peers={self.peers}: a secure round needs at least 3 peers")
        if self.malicious_dealer and (self.peers < 4 or self.peers - 1 < self.threshold):
            raise ConfigError(f"--malicious-dealer with peers={self.peers}, threshold="
                              f"{self.threshold}: the round goes on without the dealer, so it "
                              "needs at least 4 peers and peers − 1 ≥ threshold")
        if not 2 <= self.threshold <= self.peers:
            raise ConfigError(f"threshold={self.threshold} must be between 2 and peers {self.peers}")
        if self.dropouts and self.peers - 2 < self.threshold:
            raise ConfigError(f"with dropouts on, peers − 2 = {self.peers - 2} must be at least the "
                              f"threshold {self.threshold}")
        if self.rounds < 1:
            raise ConfigError(f"rounds={self.rounds} must be at least 1")
        if self.record_rounds < 0:
            raise ConfigError(f"record_rounds={self.record_rounds} must be ≥ 0 (0: local mode only)")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 0 <= self.k < self.peers:
            raise ConfigError(f"collusion bound k={self.k!r} must be an integer in 0..peers − 1")
        for name in ("record_sigma", "record_lr"):
            if not 0 < getattr(self, name) < math.inf:
                raise ConfigError(f"{name}={getattr(self, name)!r} must be positive and finite")


@dataclass(frozen=True)
class OwnData:
    """Peers' own data for the demo instead of the synthetic generator: each
    peer's (train, held-out) split, the model for their schema, and the
    schema hash the deployment declares. Utility per round is then measured
    on the union of the peers' held-out splits."""

    parts: list[PeerData]
    model: ModelConfig
    schema_hash: bytes


def run_demo(cfg: DemoConfig, *, progress: Callable[[str], None] = lambda s: None,
             workdir: Path | None = None,
             on_final: Callable[[np.ndarray], None] | None = None,
             data: OwnData | None = None) -> dict[str, Any]:
    """Run the demo; ``on_final`` receives the final global adapter (benchmarks)."""
    t_start = time.perf_counter()
    if data is not None and len(data.parts) != cfg.peers:
        raise FedLedgerError(f"{len(data.parts)} peers' data for a demo of {cfg.peers} peers")
    with tempfile.TemporaryDirectory(prefix="fedledger-demo-") as tmp:
        work = workdir or Path(tmp)
        with EmbeddedChain() as chain:
            return _run(cfg, chain, work, progress, t_start, on_final, data)


def _run(cfg: DemoConfig, chain: EmbeddedChain, work: Path, progress: Callable[[str], None],
         t_start: float, on_final: Callable[[np.ndarray], None] | None = None,
         data: OwnData | None = None) -> dict[str, Any]:
    store = EmbeddedStore()
    chain.ensure_accounts(cfg.peers + 2)
    if data is None:
        fd = federated_data(cfg.dataset, cfg.peers, examples_per_peer=cfg.examples_per_peer,
                            alpha=cfg.alpha, test_examples=cfg.test_examples, seed=cfg.seed)
        parts, test = fd.peers, fd.test
        progress(f"data: {cfg.dataset}, {cfg.peers} non-IID peers "
                 f"({min(len(p.train) for p in parts)}–{max(len(p.train) for p in parts)} training "
                 f"examples each), model: {cfg.encoder}"
                 + (f" + LoRA r={cfg.lora_r}" if cfg.lora_r else " (frozen) + trainable head"))
        model = build_model(ModelConfig(encoder=cfg.encoder, lora_r=cfg.lora_r,
                                        max_len=cfg.max_len, hidden=cfg.hidden, head=cfg.head,
                                        towers=TOWERS[cfg.dataset], seed=cfg.seed))
        declared = schema_hash(None) if cfg.dataset == "synthetic" else bytes(32)
    else:
        parts = data.parts
        test = concat([p.test for p in parts])
        progress(f"data: {cfg.peers} peers' own files ({sum(len(p.train) for p in parts)} "
                 f"training, {len(test)} held-out examples), {data.model.n_classes} classes, "
                 f"model: {cfg.encoder}"
                 + (f" + LoRA r={data.model.lora_r}" if data.model.lora_r
                    else " (frozen) + trainable head"))
        # The schema's model (its recipe: LoRA rank, tokens, head); encoder and seed the demo's.
        model = build_model(replace(data.model, encoder=cfg.encoder, seed=cfg.seed))
        declared = data.schema_hash
    start = get_flat(model)
    policy = Policy(participants=cfg.peers, threshold=cfg.threshold, keys_blocks=10,
                    shares_blocks=10, commit_blocks=10, reveal_blocks=10, aggregate_blocks=10,
                    challenge_blocks=2, bond=STAKE)
    fed, rec = deploy_federation(chain, policy=policy,
                                 ledger_policy=LedgerPolicy(epsilon_cap=cfg.epsilon_cap,
                                                            delta=cfg.delta),
                                 data_schema=declared,
                                 **initial_adapter_args(store, start,
                                                        policy=(cfg.peers, cfg.threshold)))
    dpc = dp_config(config_id=1, q=cfg.q, sigma=cfg.sigma, steps=cfg.steps)
    fed.register_config(dpc)
    addrs = [chain.account(i + 1).address for i in range(cfg.peers)]
    for i in range(cfg.peers):
        fed.register(sender=i + 1, stake=STAKE, region=i % 4 + 1, modalities=7)
    progress(f"deployed 4 contracts, registered {cfg.peers} peers and DP config "
             f"(q={cfg.q}, σ={cfg.sigma}, T={cfg.steps})")
    base = TrainConfig(lr=cfg.lr, delta=cfg.delta, max_grad_norm=cfg.max_grad_norm,
                       optimizer=cfg.optimizer)
    nodes = [PeerNode(fed, store, addrs[i],
                      PeerState(work / f"peer{i}.sqlite", secrets.token_bytes(32),
                                deployment=(chain.chain_id, fed.rounds.address)),
                      ModelLearner(model, parts[i].train, base, heldout=parts[i].test),
                      train_seed=cfg.seed,
                      secret_seed=False)  # reproducible demo: predictable DP randomness
             for i in range(cfg.peers)]
    driver = RoundDriver(fed, store, aggregator=addrs[0], dp_config=1,
                         vector_length=len(start), rounds=cfg.rounds)

    def evaluate() -> dict[str, float]:
        set_flat(model, load_adapter(store, fed.global_adapter_cid()))
        return utility(test.labels, predict_proba(model, test))

    before = evaluate()
    progress(f"round 0 (initial adapter): accuracy {before['accuracy']:.3f}, "
             f"macro-F1 {before['macro_f1']:.3f}")
    rows: list[dict[str, Any]] = []
    dishonest: dict[str, Any] | None = None
    malicious: dict[str, Any] | None = None
    for _ in range(cfg.rounds):
        t0 = time.perf_counter()
        added, read = store.bytes_added, store.bytes_read
        driver.tick()
        r = driver.opened[-1]
        stop_after: dict[int, str] = {}
        if cfg.dropouts and r == 2:
            # The one who drops after its shares is not the last to post them: the
            # last one's post advances the phase early, and the same step goes on
            # to train and commit (shares are posted before training).
            stop_after = {cfg.peers - 2: "shares", cfg.peers - 1: "commit"}
        actions: list[Action] = []
        dead: set[int] = set()
        mal_round = r if cfg.malicious_dealer and r == (3 if cfg.rounds >= 3 else 1) else None
        while fed.round_info(r).phase in WAITING:
            if mal_round is not None and malicious is None and fed.round_info(r).phase == Phase.SHARES:
                # Peer 2 steps after its victim (peer 1) and is not the last
                # to post shares (whose step goes on to commit at once), so
                # the complaint lands before its commit: it is excluded.
                malicious = _plant_bad_share(nodes[2], nodes[1], r, progress=progress)
            phase = fed.round_info(r).phase
            for i, node in enumerate(nodes):
                if i in dead:
                    continue
                done = node.step(r)
                actions += done
                if any(a.name == stop_after.get(i) for a in done):
                    dead.add(i)
                    progress(f"round {r}: peer {i} drops out after {stop_after[i]}")
            if fed.round_info(r).phase == phase:  # someone is missing: wait out the deadline
                info = fed.round_info(r)
                chain.mine(max(1, info.deadline - chain.block_number + 1))
                driver.tick()
        info = fed.round_info(r)
        if info.phase == Phase.FAILED:
            raise FedLedgerError(f"round {r} failed: {info.fail_reason.name}")
        if cfg.dishonest_aggregator and r == min(2, cfg.rounds):
            dishonest = _dishonest_round(fed, store, chain, driver, r, addrs, cfg, progress)
        else:
            driver.tick()  # aggregate and post the result with the bond
        if mal_round is not None and malicious is not None:
            _malicious_outcome(fed, store, r, malicious, actions, progress)
        checks = verify(fed, store, r)
        if not all(c.ok for c in checks):
            bad = "; ".join(f"{c.name}: {c.detail}" for c in checks if not c.ok)
            raise FedLedgerError(f"round {r} does not verify: {bad}")
        chain.mine(policy.challenge_blocks + 1)
        driver.tick()  # finalize
        util = evaluate()
        pub = collect(fed, r)
        row = {"round": r, "participants": info.n, "keys": len(pub.u1), "shares": len(pub.u2),
               "survivors": len(pub.u3), "reveals": len(pub.reveals), **util,
               "gas": driver.gas.get(r, 0) + sum(a.gas for a in actions),
               "bytes_moved": store.bytes_added - added + store.bytes_read - read,
               "train_seconds": round(sum(a.seconds for a in actions if a.name == "train"), 2),
               "seconds": round(time.perf_counter() - t0, 2),
               "verified": f"{sum(c.ok for c in checks)}/{len(checks)} checks"}
        rows.append(row)
        progress(f"round {r}: {row['survivors']}/{row['participants']} survivors, accuracy "
                 f"{util['accuracy']:.3f}, macro-F1 {util['macro_f1']:.3f}, verified, "
                 f"{row['seconds']} s")
    if on_final is not None:
        on_final(load_adapter(store, fed.global_adapter_cid()))
    # The final global model on each peer's own held-out split.
    set_flat(model, load_adapter(store, fed.global_adapter_cid()))
    held = [utility(p.test.labels, predict_proba(model, p.test)) for p in parts]
    peers = [{"peer": i, "address": a, "examples": len(parts[i].train),
              "heldout_examples": len(parts[i].test),
              "heldout_accuracy": held[i]["accuracy"], "heldout_macro_f1": held[i]["macro_f1"],
              "epsilon": round(fed.epsilon(a), 4), "cap": cfg.epsilon_cap} for i, a in enumerate(addrs)]
    local_final = rows[-1] if rows else before
    modes = [{"mode": "local", "rounds": cfg.rounds, "epsilon": max(p["epsilon"] for p in peers),
              "accuracy": local_final["accuracy"], "macro_f1": local_final["macro_f1"],
              "auc": local_final["auc"]}]
    record_rows: list[dict[str, Any]] = []
    total, delta_total = modes[0]["epsilon"], cfg.delta
    if cfg.record_rounds:
        modes.append(_record_phase(cfg, model, parts, test, start, progress, record_rows))
        # A fresh deployment, but the same peers' records: each peer's data has
        # paid for both modes, whichever model is released; each ledger alone
        # sees only its own mode. RDP composes by addition at every order, so
        # the total is the two ledgers' vectors added and converted at δ once
        # (tighter than adding the two ε, and sound for the same reason).
        from coordinator.privacy._privacy import add_rdp, conversion_constants, epsilon_micro

        conv = conversion_constants(cfg.delta)
        record = modes[-1]
        for p, e, r in zip(peers, record.pop("epsilon_per_peer"),
                           record.pop("rdp_micro_per_peer"), strict=True):
            p["epsilon_record"] = round(e, 4)
            both = add_rdp(fed.rdp_micro(p["address"]), r)
            p["epsilon_total"] = round(epsilon_micro(both, conv) / 1e6, 4)
        total = max(p["epsilon_total"] for p in peers)
    best = max(modes, key=lambda m: m["macro_f1"])
    progress(f"released model: the {best['mode']} mode's (macro-F1 {best['macro_f1']:.3f}); "
             + (f"both modes trained on the same records: every peer has spent at most ε {total:.2f} "
                f"at δ = {delta_total:g} (the two ledgers' RDP added)" if len(modes) > 1
                else f"ε {total:.2f} at δ = {delta_total:g}"))
    out = {"ok": True, "config": asdict(cfg), "deployment": rec["contracts"],
           "data_schema": "0x" + declared.hex(), "vector_length": len(start), "initial": before, "rounds": rows, "peers": peers,
           "modes": modes, "released": best["mode"], "record_rounds": record_rows,
           "epsilon_total": total, "delta_total": delta_total,
           "seconds": round(time.perf_counter() - t_start, 1)}
    if dishonest is not None:
        out["dishonest_aggregator"] = dishonest
    if malicious is not None:
        malicious["dealer_in_later_rounds"] = [
            row["round"] for row in rows
            if row["round"] > malicious["round"]
            and malicious["dealer_address"] in fed.participants(row["round"])]
        out["malicious_dealer"] = malicious
    return out


def _plant_bad_share(node: Any, victim_node: Any, r: int, *,
                     progress: Callable[[str], None]) -> dict[str, Any]:
    """Peer 2 turns cheating dealer: its bundle for round ``r`` (stored
    where its daemon publishes from) deals ``victim_node`` a self-seed share
    one off its committed polynomial, in the box and in the leaf alike, so the
    share is "committed" and only the Feldman commitments show it is wrong."""
    import cbor2

    from coordinator import _encoding as enc
    from coordinator.protocol import _secagg as sa

    agent = node._agent(r)
    pub = collect(agent.fed, r)
    victim, _ = agent.fed.status(r, victim_node.address)
    g = agent.ctx.graph
    holders = [h for h in pub.u1 if h == agent.index or g.adjacent(agent.index, h)]
    dealt = sa.deal(agent.ctx, dealer=agent.address, self_seed=agent.seed,
                    mask_secret=agent.mask.secret, holders=holders)
    b, k = dealt.shares[victim]
    bad = (b + 1) % enc.FIELD_P
    shares = {**dealt.shares, victim: (bad, k)}
    leaves = list(dealt.leaves)
    leaves[2 * victim] = enc.share_leaf(chain_id=agent.ctx.chain_id, rounds=agent.ctx.rounds,
                                        round_id=r, dealer=agent.address, holder=victim, kind=0,
                                        share=bad)
    forged = sa.DealtShares(shares, dealt.commitments, tuple(leaves), enc.merkle_root(leaves))
    bundle = sa.seal_bundle(agent.ctx, dealer=agent.index, dealt=forged, enc=agent.enc,
                            holder_keys={h: pub.enc_pk[h] for h in holders})
    node.state.put_new(r, "bundle", cbor2.dumps([bundle, forged.root]))
    progress(f"round {r}: participant {agent.index} (a dealer) deals participant {victim} a "
             "share off its committed polynomial")
    return {"round": r, "dealer": agent.index, "dealer_address": agent.address, "victim": victim,
            "dealer_stake_before": agent.fed.peer_info(agent.address)["stake"]}


def _malicious_outcome(fed: Any, store: EmbeddedStore, r: int, malicious: dict[str, Any],
                       actions: list[Action], progress: Callable[[str], None]) -> None:
    """What became of the cheating dealer: the victim's complaint (before the
    dealer's commit: slashed and excluded from the round), its own attempt to
    frame the honest aggregator, and the round's result."""
    from coordinator import ContractRevertError
    from coordinator.chain._contracts import StatusFlag
    from coordinator.protocol._challenge import Fraud, challenge, posted_seeds

    complaints = [a for a in actions if a.name == "complain"]
    cheat, dealer = malicious["dealer_address"], malicious["dealer"]
    info = fed.peer_info(cheat)
    quarantined = bool(info["quarantined"])
    slashed = malicious["dealer_stake_before"] - info["stake"]
    excluded = bool(fed.status(r, cheat)[1] & StatusFlag.EXCLUDED)
    u3 = collect(fed, r).u3
    in_u3 = dealer in u3
    progress(f"round {r}: participant {malicious['victim']} proved the bad share on-chain "
             f"before Reveal ({sum(a.gas for a in complaints):,} gas); the dealer lost its stake "
             f"({slashed:,} wei), is quarantined: {quarantined}, excluded from this round: "
             f"{excluded}; the round completed with {len(u3)} survivors")
    # Its framing attempt: a seed proof against a posted seed of its own (its
    # self seed if it is in U3, else a pairwise seed with it as the dropout).
    seeds = posted_seeds(fed, r)
    i = next(k for k, (u, v, _) in enumerate(seeds) if dealer in (u, v))
    try:
        challenge(fed, store, r, Fraud("seed", i, "framing"), sender=cheat)
        framed = "accepted"
    except ContractRevertError as exc:
        framed = exc.name or "reverted"
    progress(f"round {r}: the dealer's seed proof against the honest aggregator: {framed}")
    malicious.update({"complaints": len(complaints),
                      "complaint_gas": sum(a.gas for a in complaints),
                      "dealer_quarantined": quarantined, "dealer_slashed_wei": slashed,
                      "dealer_excluded": excluded, "dealer_in_u3": in_u3,
                      "framing_attempt": framed})


def _record_phase(cfg: DemoConfig, model: Any, parts: list[PeerData], test: Any,
                  start: np.ndarray, progress: Callable[[str], None],
                  rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The distributed record level on a fresh deployment: the same peers,
    data and start adapter, every result verified by the auditors' checks."""
    from coordinator.privacy import _noise as nz

    from ._inprocess import run_distributed

    progress(f"distributed record level: {cfg.record_rounds} rounds of one full-batch DP-SGD "
             f"step over the union of the peers' data; each survivor adds a Skellam noise share "
             f"under the masks, σ {cfg.record_sigma} with k = {cfg.k} survivors' noise assumed "
             "known; ε charged on-chain from |U3|")

    def each(r: int, adapter: np.ndarray) -> None:
        set_flat(model, adapter)
        u = utility(test.labels, predict_proba(model, test))
        rows.append({"round": r, **u})
        if r % 5 == 0 or r == cfg.record_rounds:
            progress(f"distributed round {r}: accuracy {u['accuracy']:.3f}, "
                     f"macro-F1 {u['macro_f1']:.3f}, verified")

    set_flat(model, start)
    res = run_distributed(mode=nz.DPMode.DISTRIBUTED_RECORD, model=model, parts=parts,
                          rounds=cfg.record_rounds, threshold=cfg.threshold, lr=cfg.record_lr,
                          clip=cfg.record_lr * cfg.max_grad_norm, sigma=cfg.record_sigma,
                          k=cfg.k, floor_m=cfg.peers - cfg.k, q=1.0, delta=cfg.delta,
                          epsilon_cap=cfg.epsilon_cap, progress=each, verify_rounds=True)
    last = rows[-1]
    return {"mode": "distributed-record", "rounds": cfg.record_rounds, "epsilon": res["epsilon"],
            "epsilon_dp_accounting": res["epsilon_dp_accounting"],
            "accuracy": last["accuracy"], "macro_f1": last["macro_f1"], "auc": last["auc"],
            "verified_rounds": res["verified_rounds"], "epsilon_per_peer": res["epsilon_per_peer"],
            "rdp_micro_per_peer": res["rdp_micro_per_peer"],
            "seconds_per_round": res["seconds_per_round"]}


def _dishonest_round(fed: Any, store: EmbeddedStore, chain: EmbeddedChain, driver: RoundDriver,
                     r: int, addrs: list[str], cfg: DemoConfig,
                     progress: Callable[[str], None]) -> dict[str, Any]:
    """Peer 0 posts a wrong aggregate, then peer 2 the correct aggregate with
    an adapter that does not follow from it; each time an auditor with no
    peer keys verifies, proves the fraud on-chain (the chunk proof covers the
    adapter) and gets the reward; peer 1 re-aggregates honestly."""
    import dataclasses

    from coordinator.protocol._agent import Aggregator
    from coordinator.protocol._aggregate import aggregate, apply_update, blob_fixed, round_start
    from coordinator.protocol._challenge import challenge, find_fraud

    liar, honest, liar2 = addrs[0], addrs[1], addrs[2]
    auditor = chain.account(cfg.peers + 1).address  # holds no stake and no peer key
    start = blob_fixed(round_start(fed, store, r))
    agg = aggregate(collect(fed, r), store)
    total = agg.total.copy()
    total[agg.total.size // 2] += 1 << 22  # a nudge to one parameter's sum (> Σn steps)
    bad = dataclasses.replace(agg, total=total)
    proofs = []
    # 1: a wrong Σx (and the adapter that follows from it); 2: the right Σx
    # with an adapter that does not follow from it.
    wrong_adapter = apply_update(start, agg)
    wrong_adapter[3] += 1 << 10
    for who, label, posted, new in ((liar, "a wrong aggregate", bad, apply_update(start, bad)),
                                    (liar2, "the correct aggregate with a wrong adapter", agg,
                                     wrong_adapter)):
        Aggregator(fed, store, who).post(r, posted, new)
        failed = [f"{c.name}: {c.detail}" for c in verify(fed, store, r) if not c.ok]
        progress(f"round {r}: a peer posted {label}; the auditors' verify fails: "
                 + "; ".join(failed))
        fraud = find_fraud(fed, store, r)
        if fraud is None:
            raise FedLedgerError(f"the tampered result ({label}) was not found wrong")
        rcpt = challenge(fed, store, r, fraud, sender=auditor)
        voided = next(e for e in fed.receipt_events(rcpt) if e.name == "ResultVoided")
        progress(f"round {r}: {fraud.kind} proof for index {fraud.index} accepted on-chain "
                 f"({rcpt.gas_used:,} gas); bond of {voided.args['slashed']:,} wei slashed, "
                 f"{voided.args['reward']:,} wei to the auditor; the poster quarantined")
        proofs.append({"posted": label, "verify_failed": failed,
                       "fraud": {"kind": fraud.kind, "index": fraud.index},
                       "challenge_tx": rcpt.tx_hash, "challenge_gas": rcpt.gas_used,
                       "slashed_wei": int(voided.args["slashed"]),
                       "reward_wei": int(voided.args["reward"]),
                       "poster_quarantined": bool(fed.peer_info(who)["quarantined"])})
    driver.aggregator = honest
    driver.tick()  # peer 1 re-aggregates honestly
    progress(f"round {r}: peer 1 re-aggregated; verify passes")
    first = proofs[0]
    return {"round": r, "verify_failed": first["verify_failed"], "fraud": first["fraud"],
            "challenge_tx": first["challenge_tx"], "challenge_gas": first["challenge_gas"],
            "slashed_wei": first["slashed_wei"], "reward_wei": first["reward_wei"],
            "liar_quarantined": first["poster_quarantined"], "proofs": proofs}
