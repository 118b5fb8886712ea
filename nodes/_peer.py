"""A peer's participation in rounds: what ``fedledger node run`` does.

:class:`PeerNode.step` looks at the chain and does whatever this peer still
owes the current round, in protocol order — post keys, train, deal and post
shares, receive shares, commit the masked update, reveal — each guarded by
the round's phase and by this peer's on-chain status flags (the chain is the
authority on what already landed). Everything it must not redo differently is
in :class:`nodes._state.PeerState` before it is used: so ``step`` can be
called again after a crash at any point and it continues the same round with
the same keys, seed, dealing and masked vector.

The in-process demo and the daemon run this same code; the demo makes a peer
drop out simply by not stepping it any more.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

import cbor2
import numpy as np

from coordinator import (ConfigError, ContentTooLargeError, ContractRevertError, InvalidContentError,
                         IpfsError)
from coordinator import _encoding as enc
from coordinator.protocol import _secagg as sa
from coordinator.protocol._agent import PeerAgent
from coordinator.protocol._aggregate import blob_fixed, blob_floats, round_start
from coordinator._errors import AggregationError, FedLedgerError
from coordinator.chain._contracts import Federation, Phase, RoundInfo, StatusFlag
from coordinator.privacy._noise import DistributedConfig, DPMode, add_share, noise_rng, skellam_share
from coordinator.privacy._privacy import DPConfig
from coordinator.store._store import ContentStore

from ._distributed import check_config, clip_of
from ._state import PeerState

if TYPE_CHECKING:
    from ._data import Examples
    from ._model import MultimodalModel
    from ._train import TrainConfig

log = logging.getLogger("fedledger.nodes")


class Learner(Protocol):
    """What a peer trains with: its examples count (its FedAvg weight n_u),
    its exchanged-parameter count, and one local round."""

    @property
    def examples(self) -> int: ...

    @property
    def parameters(self) -> int: ...

    def update(self, global_flat: np.ndarray, cfg: DPConfig, *,
               seed: int) -> tuple[np.ndarray, dict[str, float]]: ...

    def distributed(self, global_flat: np.ndarray, cfg: DistributedConfig, *, clip: float,
                    label_round: bool = False, weights: np.ndarray | None = None
                    ) -> tuple[np.ndarray, int, dict[str, float]]: ...

    def label_slots(self) -> np.ndarray: ...


class CannotTrain(FedLedgerError):
    """This peer cannot train honestly at the round's configuration."""


@dataclass
class ModelLearner:
    """One peer's model, private data and training options (DP-SGD, Opacus)."""

    model: MultimodalModel
    data: Examples
    train: TrainConfig
    heldout: Examples | None = None  # the operator's own held-out split (never trained on)

    @property
    def examples(self) -> int:
        return len(self.data)

    def evaluate(self) -> dict[str, float]:
        """Utility of the model as it stands on the held-out split ({} if none)."""
        if self.heldout is None or len(self.heldout) == 0:
            return {}
        from ._eval import utility
        from ._train import predict_proba

        return utility(self.heldout.labels, predict_proba(self.model, self.heldout))

    @property
    def parameters(self) -> int:
        from ._model import get_flat

        return len(get_flat(self.model))

    def update(self, global_flat: np.ndarray, cfg: DPConfig, *,
               seed: int) -> tuple[np.ndarray, dict[str, float]]:
        """Train from the global adapter at exactly the round's on-chain DP
        configuration (q, σ, T); return the adapter delta and the run's metrics.
        With ``[train] secure_rng`` the 256-bit ``seed`` keys the ChaCha20
        streams of the DP noise and sampling (:mod:`nodes._dprng`)."""
        from ._model import get_flat, set_flat
        from ._train import train_local

        set_flat(self.model, global_flat)
        start_util = self.evaluate()  # the global model this round starts from
        tc = replace(self.train, dp=True, sample_rate=cfg.q, steps=cfg.steps,
                     noise_multiplier=cfg.sigma, target_epsilon=None, clipping="flat",
                     config_id=cfg.config_id, seed=seed % 2**63)
        res = train_local(self.model, self.data, cfg=tc,
                          rng_key=(seed % 2**256).to_bytes(32, "big"))
        if res.dp_config is None or res.dp_config.rdp_micro != cfg.rdp_micro:
            raise ConfigError(f"trained at (q={res.sample_rate}, σ={res.effective_noise_multiplier}) "
                              f"but the round's configuration {cfg.config_id} is "
                              f"(q={cfg.q}, σ={cfg.sigma}, T={cfg.steps})")
        delta = get_flat(self.model).astype(np.float64) - global_flat.astype(np.float64)
        metrics = {"loss": float(res.loss), "steps": float(res.steps),
                   "epsilon_round": float(res.epsilon_rdp), "seconds": float(res.seconds)}
        metrics.update({f"heldout_{k}_global": v for k, v in start_util.items()})
        metrics.update({f"heldout_{k}_local": v for k, v in self.evaluate().items()})
        return delta.astype(np.float32), metrics

    def distributed(self, global_flat: np.ndarray, cfg: DistributedConfig, *, clip: float,
                    label_round: bool = False, weights: np.ndarray | None = None
                    ) -> tuple[np.ndarray, int, dict[str, float]]:
        """The clipped, un-noised contribution of a distributed-DP round
        (:mod:`nodes._distributed`); the noise share is added at commit."""
        from ._distributed import contribution

        return contribution(self.model, self.data, global_flat, cfg=cfg, clip=clip,
                            train=self.train, label_round=label_round, weights=weights)

    def label_slots(self) -> np.ndarray:
        from ._model import output_bias_slots

        return output_bias_slots(self.model)


@dataclass
class SyntheticLearner:
    """A FAKE learner for protocol benchmarks only (training is excluded from
    what they measure): it returns a small random delta of the right length
    without touching data, a model or DP. Never used by `demo` or `node run`
    unless a config asks for it with [node] synthetic_parameters."""

    size: int
    n_examples: int = 100

    @property
    def examples(self) -> int:
        return self.n_examples

    @property
    def parameters(self) -> int:
        return self.size

    def update(self, global_flat: np.ndarray, cfg: DPConfig, *,
               seed: int) -> tuple[np.ndarray, dict[str, float]]:
        rng = np.random.default_rng(seed)
        return (rng.normal(0, 1e-3, self.size).astype(np.float32),
                {"loss": 0.0, "steps": 0.0, "epsilon_round": 0.0, "seconds": 0.0})

    def distributed(self, global_flat: np.ndarray, cfg: DistributedConfig, *, clip: float,
                    label_round: bool = False, weights: np.ndarray | None = None
                    ) -> tuple[np.ndarray, int, dict[str, float]]:
        from ._distributed import clip_l2

        v = np.random.default_rng().normal(0, clip / np.sqrt(self.size), self.size)
        return clip_l2(v, clip), 1, {"loss": 0.0, "steps": 0.0}

    def label_slots(self) -> np.ndarray:
        return np.zeros(0, dtype=np.int64)  # no classes: never a label round


@dataclass(frozen=True)
class Action:
    """One thing a peer did in a round, for logs and the demo's accounting."""

    round_id: int
    name: str
    gas: int = 0
    up: int = 0
    down: int = 0
    seconds: float = 0.0
    detail: dict[str, float] = field(default_factory=dict)


@dataclass
class PeerNode:
    """The participation loop of one peer (one account, one state database)."""

    fed: Federation
    store: ContentStore
    address: str
    state: PeerState
    learner: Learner
    train_seed: int = 0
    # True: each round's training seed is 32 bytes from the OS CSPRNG, sealed
    # in the state before use. False (demo, benchmarks): derived from public
    # data and train_seed, reproducible and predictable.
    secret_seed: bool = True
    last_round: int = 0
    _agents: dict[int, PeerAgent] = field(default_factory=dict)
    _logged: set[tuple[int, str]] = field(default_factory=set)
    _complained: set[tuple[int, int]] = field(default_factory=set)  # (round, dealer)
    # dp_config → (its label round, the class weights it released): both fixed
    # for good once that round is final, so looked up once per process.
    _labels: dict[int, tuple[int, np.ndarray | None]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"PeerNode({self.address})"

    # -- durable per-round secrets ------------------------------------------------
    def _agent(self, round_id: int) -> PeerAgent | None:
        """The round's agent with its persisted secrets; None if not selected
        or if its secrets were lost after it had already posted keys."""
        if round_id in self._agents:
            return self._agents[round_id]
        idx, flags = self.fed.status(round_id, self.address)
        if idx is None:
            return None
        stored = self.state.get(round_id, "secrets")
        if stored is None:
            if flags & StatusFlag.KEYS:
                # Keys on-chain but no secrets here: the state was lost. Never
                # invent new ones for a round already joined; sit it out.
                log.error("round %d: keys were posted but this state has no secrets for them; "
                          "sitting the round out", round_id)
                self.state.put(round_id, "abandoned", b"lost secrets")
                return None
            e, m = sa.X25519Pair.generate(), sa.X25519Pair.generate()
            fresh = cbor2.dumps({"enc": e.secret, "mask": m.secret, "seed": sa.random_seed()})
            stored = self.state.put_new(round_id, "secrets", fresh, secret=True)
        d = cbor2.loads(stored)
        from nacl.bindings import crypto_scalarmult_base

        agent = PeerAgent(self.fed, self.store, self.address, round_id,
                          enc=sa.X25519Pair(d["enc"], crypto_scalarmult_base(d["enc"])),
                          mask=sa.X25519Pair(d["mask"], crypto_scalarmult_base(d["mask"])),
                          seed=int(d["seed"]))
        received = self.state.get(round_id, "received")
        if received is not None:
            agent.received = {int(k): (int(v[0]), int(v[1])) for k, v in cbor2.loads(received).items()}
        self._agents[round_id] = agent
        return agent

    # -- training -----------------------------------------------------------------
    def _global(self, round_id: int) -> np.ndarray:
        """The adapter this round starts from, checked against the chain's
        adapter root (a CID alone is never trusted), and the round's
        parameters checked for safe participation. Raises AggregationError,
        which :meth:`step` logs and turns into skipping the round."""
        info = self.fed.round_info(round_id)
        if info.t < 2:  # a governor's own tooling can skip check_policy: the peer checks too
            raise AggregationError(f"round {round_id} has threshold t={info.t}: each share would "
                                   "be the secret itself and one holder could unmask this "
                                   "peer's update; skipping it")
        if not 8 <= info.frac_bits <= 24 or enc.max_clip(frac_bits=info.frac_bits,
                                                          participants=info.n) <= 0:
            raise AggregationError(f"round {round_id} uses frac_bits={info.frac_bits}, outside "
                                   "the safe range 8..24; skipping it")
        if info.vector_length != self.learner.parameters:
            raise AggregationError(f"round {round_id} expects {info.vector_length} values but this "
                                   f"peer's model has {self.learner.parameters}; is the [model] "
                                   "config the federation's? skipping the round")
        return blob_floats(round_start(self.fed, self.store, round_id))

    def _update(self, round_id: int) -> tuple[np.ndarray, int, dict[str, float]] | None:
        raw = self.state.get(round_id, "update")
        if raw is None:
            return None
        d = cbor2.loads(raw)
        return enc.from_bytes(d["x"]), int(d["weight"]), dict(d["metrics"])

    def _seed(self, round_id: int) -> int:
        """The round's training seed: with ``secret_seed``, drawn once from the
        OS CSPRNG and sealed before first use, so a resumed round trains and
        quantizes with the same randomness (the byte-identical update)."""
        if not self.secret_seed:
            return (self.train_seed * 1_000_003 + round_id * 7919 + int(self.address, 16)) % 2**31
        raw = self.state.put_new(round_id, "dp_seed", secrets.token_bytes(32), secret=True)
        return int.from_bytes(raw, "big")

    def _quantize_rng(self, seed: int) -> np.random.Generator:
        """Stochastic rounding's generator: with ``secret_seed`` from its own
        subkey of the round's secret, never the key of the DP noise itself."""
        if not self.secret_seed:
            return np.random.default_rng(seed)
        from ._dprng import subkey

        return np.random.default_rng(int.from_bytes(
            subkey((seed % 2**256).to_bytes(32, "big"), "quantize"), "big"))

    def _train(self, round_id: int) -> Action:
        info = self.fed.round_info(round_id)
        if self.fed.dp_mode(info.dp_config) != DPMode.LOCAL:
            return self._train_distributed(round_id, info)
        cfg = self.fed.dp_config(info.dp_config)
        start = self._global(round_id)
        if len(start) != self.learner.parameters:
            raise ConfigError(f"the global adapter has {len(start)} values; this peer's model "
                              f"has {self.learner.parameters}")
        seed = self._seed(round_id)
        log.info("round %d: peer %s training at DP configuration %d", round_id, self.address,
                 cfg.config_id)
        t0 = time.perf_counter()
        try:
            delta, metrics = self.learner.update(start, cfg, seed=seed)
        except ConfigError as exc:
            # The governor's configuration cannot be trained at honestly (e.g.
            # its registered RDP is not that of its (q, σ, T)): skip this
            # round, stay up for the next one.
            raise CannotTrain(f"cannot train at the round's DP configuration "
                              f"{cfg.config_id}: {exc}") from None
        if not np.isfinite(delta).all():  # never mask and commit NaN/inf
            raise CannotTrain(f"local training at configuration {cfg.config_id} produced "
                              "non-finite values; not committing")
        # n_u is capped by policy (the contract reverts above it); the update
        # n_u·δ is clipped below, so a capped weight also caps its influence.
        weight = max(1, min(self.learner.examples, self.fed.policy().max_weight))
        clip = enc.max_clip(frac_bits=info.frac_bits, participants=info.n)
        x = enc.quantize(delta.astype(np.float64) * weight, frac_bits=info.frac_bits, clip=clip,
                         rng=self._quantize_rng(seed))
        self.state.put(round_id, "update", cbor2.dumps(
            {"x": enc.to_bytes(x), "weight": weight, "metrics": metrics}), secret=True)
        log.info("round %d: peer %s trained %d steps, loss %.4f, round ε %.3f", round_id,
                 self.address, metrics["steps"], metrics["loss"], metrics["epsilon_round"])
        if "heldout_accuracy_global" in metrics:
            log.info("round %d: peer %s held-out utility: global model accuracy %.3f macro-F1 "
                     "%.3f; after local training accuracy %.3f macro-F1 %.3f", round_id,
                     self.address, metrics["heldout_accuracy_global"],
                     metrics["heldout_macro_f1_global"], metrics["heldout_accuracy_local"],
                     metrics["heldout_macro_f1_local"])
        return Action(round_id, "train", seconds=time.perf_counter() - t0, detail=metrics)

    def _train_distributed(self, round_id: int, info: RoundInfo) -> Action:
        """Distributed DP: the clipped contribution, quantized, plus this
        peer's Skellam noise share drawn from the OS CSPRNG; stored sealed
        before anything is posted, so a restart commits the same vector."""
        dcfg = self.fed.distributed_config(info.dp_config)
        start = self._global(round_id)
        check_config(dcfg, dim=len(start))
        clip = clip_of(dcfg, frac_bits=info.frac_bits, dim=len(start))
        label_round, weights = self._label_plan(round_id, info, dcfg)
        t0 = time.perf_counter()
        v, weight, metrics = self.learner.distributed(start, dcfg, clip=clip,
                                                      label_round=label_round, weights=weights)
        qclip = enc.max_clip(frac_bits=info.frac_bits, participants=info.n)
        if label_round and float(np.max(np.abs(v), initial=0.0)) > qclip:
            log.warning("round %d: peer %s has more records of a class than the round's "
                        "fixed-point range holds; its class counts are clamped, so the label "
                        "round under-counts them", round_id, self.address)
        x = enc.quantize(v, frac_bits=info.frac_bits, clip=qclip, rng=noise_rng())
        x = add_share(x, skellam_share(mu=dcfg.mu, size=len(x), rng=noise_rng()))
        metrics = {**metrics, "epsilon_round": 0.0, "seconds": time.perf_counter() - t0}
        self.state.put(round_id, "update", cbor2.dumps(
            {"x": enc.to_bytes(x), "weight": weight, "metrics": metrics}), secret=True)
        log.info("round %d: peer %s formed its %s contribution (weight %d) and noise share",
                 round_id, self.address, dcfg.mode.name, weight)
        return Action(round_id, "train", seconds=metrics["seconds"], detail=metrics)

    def label_release(self, dp_config: int) -> tuple[int, np.ndarray | None] | None:
        """(label round, class weights) this peer found for a record-level
        configuration; None before it has trained after that round."""
        return self._labels.get(dp_config)

    def _label_plan(self, round_id: int, info: RoundInfo,
                    dcfg: DistributedConfig) -> tuple[bool, np.ndarray | None]:
        """(is this the configuration's label round, the class weights to
        train with) at record level (:mod:`nodes._distributed`). The label
        round is the configuration's first round that the chain finalized
        before this one: or this one, if none was. Its release is read from
        two chain-verified adapters (the one it started from and the one the
        next round started from), never from a CID or an aggregator's word."""
        slots = self.learner.label_slots()
        if dcfg.mode != DPMode.DISTRIBUTED_RECORD or len(slots) < 2:
            return False, None
        known = self._labels.get(info.dp_config)
        if known is not None and known[0] < round_id:
            return False, known[1]
        from ._distributed import class_weights

        for r in range(1, round_id):
            ri = self.fed.round_info(r)
            if ri.dp_config != info.dp_config or ri.phase != Phase.FINAL:
                continue
            # Kept in the state: a restarted peer needs neither old adapter again.
            kept = self.state.get(r, "label_release")
            if kept is None:
                before = blob_fixed(round_start(self.fed, self.store, r))
                after = blob_fixed(round_start(self.fed, self.store, r + 1))
                released = (after[slots] - before[slots]).astype(np.uint32).view(np.int32)
                # Sealed: not secret, but the state's AEAD makes an edit of the file fail.
                self.state.put(r, "label_release", cbor2.dumps([int(x) for x in released]),
                               secret=True)
            else:
                released = np.array(cbor2.loads(kept), dtype=np.int32)
            weights = class_weights(released.astype(np.float64))
            self._labels[info.dp_config] = (r, weights)
            log.info("round %d: class weights from label round %d: %s", round_id, r,
                     "uniform" if weights is None else ", ".join(f"{w:.3f}" for w in weights))
            return False, weights
        return True, None

    # -- one pass over what is owed -------------------------------------------------
    def _once(self, round_id: int, what: str, level: int, msg: str, *args: object) -> None:
        """Log one line per (round, problem): a daemon looks every poll."""
        key = (round_id, what)
        if key in self._logged:
            return
        self._logged.add(key)
        log.log(level, msg, *args)

    def _complain(self, round_id: int, agent: PeerAgent) -> list[Action]:
        """The complaint step, before Reveal: a share this peer decrypted that
        its dealer committed to but that is off the dealer's committed
        polynomial is proven on-chain (the dealer is quarantined; the round
        goes on without that share). Once per dealer; a failure is logged once
        and does not stop the peer."""
        from coordinator.protocol._aggregate import BadShare
        from coordinator.protocol._challenge import prove_bad_share

        out: list[Action] = []
        for dealer, (kind, value) in sorted(agent.bad_shares.items()):
            if (round_id, dealer) in self._complained:
                continue
            self._complained.add((round_id, dealer))
            try:
                rcpt = prove_bad_share(self.fed, self.store, round_id,
                                       BadShare(dealer, agent.index, kind, value),
                                       sender=self.address)
            except FedLedgerError as exc:
                self._once(round_id, f"complain {dealer}", logging.WARNING,
                           "round %d: peer %s could not prove dealer %d's bad share: %s",
                           round_id, self.address, dealer, exc)
                continue
            log.warning("round %d: peer %s proved that dealer %d dealt it a share off its "
                        "committed polynomial tx=%s", round_id, self.address, dealer, rcpt.tx_hash)
            out.append(Action(round_id, "complain", gas=rcpt.gas_used))
        return out

    def step(self, round_id: int) -> list[Action]:
        """Do every action this peer still owes ``round_id`` in its current phase.

        Order: keys, then shares (they do not depend on training), then
        training, then commit and reveal. A slow trainer therefore misses at
        most the commit. A transaction that reverts (late, or for any other
        reason the contract names) is logged once with its decoded reason and
        the peer goes on with what it can still do: the on-chain flags, read
        again on the next step, say which of its steps landed, and a peer
        whose shares did not land sits the round out (it cannot commit)."""
        done: list[Action] = []
        self.last_round = round_id
        if self.state.get(round_id, "abandoned") is not None:
            return done
        agent = self._agent(round_id)
        if agent is None:
            return done
        info = self.fed.round_info(round_id)
        _, flags = self.fed.status(round_id, self.address)
        phase = info.phase
        doing = "keys"
        try:
            if phase == Phase.KEYS and not flags & StatusFlag.KEYS:
                self._global(round_id)  # an unsafe round is skipped before joining U1
                done.append(Action(round_id, "keys", gas=agent.post_keys()))
                flags |= StatusFlag.KEYS
            doing = "shares"
            if phase == Phase.SHARES and flags & StatusFlag.KEYS and not flags & StatusFlag.SHARES:
                raw = self.state.get(round_id, "bundle")
                if raw is None:
                    bundle, root = agent.deal_bundle()
                    raw = self.state.put_new(round_id, "bundle", cbor2.dumps([bundle, root]))
                bundle, root = cbor2.loads(raw)
                gas, up = agent.post_shares((bundle, root))
                done.append(Action(round_id, "shares", gas=gas, up=up))
                flags |= StatusFlag.SHARES
            doing = "availability"
            if phase == Phase.AVAILABILITY and flags & StatusFlag.CHALLENGED:
                # Someone could not fetch our masked vector: post it on-chain
                # (the one stored before committing), or leave U3 slashed. First
                # of all: half the window is all it has, and the steps below
                # may wait on the store.
                raw = self.state.get(round_id, "masked")
                if raw is None:
                    self._once(round_id, "no vector", logging.ERROR,
                               "round %d: peer %s is challenged for a masked vector it no "
                               "longer has; it will leave U3", round_id, self.address)
                else:
                    gas = agent.answer_availability(enc.from_bytes(raw))
                    done.append(Action(round_id, "answer", gas=gas, up=len(raw)))
                    flags &= ~StatusFlag.CHALLENGED
            doing = "training"
            # Phases move lazily: past its deadline the round still reads
            # COMMIT until someone advances it, and a commit reverts then. A
            # peer restarted late (or dropped by the quorum grace) must not
            # spend a whole training on it while the next round opens.
            closed = phase == Phase.COMMIT and self.fed.chain.block_number > info.deadline
            if flags & StatusFlag.EXCLUDED:
                # A bad share of this peer's dealing was proven: its commit
                # would revert RoundsDealerExcluded, so it trains for nothing.
                self._once(round_id, "excluded", logging.WARNING,
                           "round %d: peer %s was excluded (a bad share of its dealing was "
                           "proven); it sits this round out", round_id, self.address)
                closed = True
            elif closed and not flags & StatusFlag.COMMITTED and flags & StatusFlag.SHARES:
                self._once(round_id, "commit closed", logging.WARNING,
                           "round %d: peer %s: the commit window closed at block %d before "
                           "this peer committed; it sits this round out", round_id,
                           self.address, info.deadline)
            if (phase in (Phase.SHARES, Phase.COMMIT) and flags & StatusFlag.SHARES and not closed
                    and not flags & StatusFlag.COMMITTED and self._update(round_id) is None):
                done.append(self._train(round_id))
                info = self.fed.round_info(round_id)
                phase = info.phase
            doing = "receiving shares"
            # In Reveal only a peer that holds no share yet (restarted) fetches:
            # a bundle that could not be fetched before would make it wait out
            # the store's timeout again, past the reveal window.
            if (flags & StatusFlag.SHARES
                    and (phase in (Phase.COMMIT, Phase.AVAILABILITY)
                         or (phase == Phase.REVEAL and not agent.received))):
                before = len(agent.received)
                try:
                    down = agent.receive_shares()
                except (IpfsError, ValueError) as exc:
                    # One dealer's bundle unreachable or malformed: the commit
                    # needs only the on-chain mask keys, so go on; the next
                    # step tries that dealer again.
                    down = 0
                    self._once(round_id, f"receive {type(exc).__name__}", logging.WARNING,
                               "round %d: peer %s: a share bundle cannot be read yet (%s); "
                               "going on without it", round_id, self.address, exc)
                if len(agent.received) != before:
                    self.state.put(round_id, "received", cbor2.dumps(
                        {k: list(v) for k, v in agent.received.items()}), secret=True)
                    done.append(Action(round_id, "receive", down=down))
                done += self._complain(round_id, agent)
            doing = "commit"
            if (phase == Phase.COMMIT and flags & StatusFlag.SHARES and not closed
                    and not flags & StatusFlag.COMMITTED):
                upd = self._update(round_id)
                if upd is None:
                    done.append(self._train(round_id))
                    upd = self._update(round_id)
                assert upd is not None
                x, weight, _ = upd
                raw = self.state.get(round_id, "masked")
                if raw is None:
                    raw = self.state.put_new(round_id, "masked", enc.to_bytes(agent.masked(x)))
                gas, up = agent.commit(masked=enc.from_bytes(raw), weight=weight,
                                       dp_config=info.dp_config)
                done.append(Action(round_id, "commit", gas=gas, up=up))
                flags |= StatusFlag.COMMITTED
            doing = "reveal"
            if phase == Phase.REVEAL and flags & StatusFlag.COMMITTED and not flags & StatusFlag.REVEALED:
                done.append(Action(round_id, "reveal", gas=agent.reveal()))
                flags |= StatusFlag.REVEALED
        except ContractRevertError as exc:
            if exc.name == "LedgerBudgetExceeded":
                self._once(round_id, "budget", logging.WARNING,
                           "round %d: peer %s: this update would exceed the privacy cap; "
                           "not committing", round_id, self.address)
                self.state.put(round_id, "abandoned", b"over budget")
            else:
                # Late (RoundsWrongPhase: a deadline passed between reading
                # the phase and mining), or any other named refusal: the chain
                # did not take it; the flags read on the next step decide what
                # is still owed, and a step that can no longer land is skipped.
                self._once(round_id, f"revert {doing} {exc.name}", logging.WARNING,
                           "round %d: peer %s: %s reverted: %s; %s", round_id, self.address,
                           doing, exc, _consequence(doing))
        except (AggregationError, InvalidContentError, ContentTooLargeError, CannotTrain) as exc:
            # Another party's data makes this round impossible for us (e.g. a
            # malformed global adapter, a small-order mask key, a DP
            # configuration whose accounting is not its own): sit it out.
            log.warning("round %d: peer %s stops here: %s", round_id, self.address, exc)
            self.state.put(round_id, "abandoned", str(exc).encode())
        self._note_missed(round_id, phase, flags)
        return done

    def _note_missed(self, round_id: int, phase: Phase, flags: StatusFlag) -> None:
        """Log once that this peer is out of the round, and why."""
        if flags & StatusFlag.EXCLUDED:
            return  # said when it was excluded
        owed = ((Phase.KEYS, StatusFlag.KEYS, "keys"), (Phase.SHARES, StatusFlag.SHARES, "shares"),
                (Phase.COMMIT, StatusFlag.COMMITTED, "commit"))
        for ph, flag, name in owed:
            if phase > ph and not flags & flag and phase not in (Phase.FINAL, Phase.FAILED):
                self._once(round_id, "missed", logging.WARNING,
                           "round %d: peer %s missed the %s window (phase is now %s); it sits "
                           "this round out and takes part in the next", round_id, self.address,
                           name, phase.name)
                return


def _consequence(doing: str) -> str:
    return {"keys": "this peer sits the round out",
            "shares": "this peer sits the round out (it cannot commit without shares)",
            "commit": "this peer's update is not in this round",
            "availability": "unless its vector is posted before the window ends, this peer "
                            "leaves U3 and loses its stake",
            }.get(doing, "will look again")
