"""The round driver: opens rounds, moves phases past their deadlines,
aggregates and finalizes. Anyone may run it; it holds no peer secrets.

:meth:`RoundDriver.tick` does at most one kind of thing per call and says
what it did, so ``fedledger round run`` is a loop of ticks and tests can step
it. On a development chain (automining) blocks only appear with
transactions, so with ``mine=True`` the driver mines one block per tick while
a phase waits for its deadline: deadlines then pass in wall time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from .. import _encoding as enc
from ._agent import Aggregator
from ._aggregate import Aggregate
from ._secagg import chunk_elems_for
from ..chain._contracts import Federation, Phase
from .._errors import (AggregationError, ConfigError, ContractRevertError, DealerFaultError,
                       FedLedgerError)
from ..store._store import ContentStore

log = logging.getLogger("fedledger.driver")

WAITING = (Phase.KEYS, Phase.SHARES, Phase.COMMIT, Phase.AVAILABILITY, Phase.REVEAL)


def peer_status(fed: Federation, peer: str, dp_config: int) -> str:
    """Why a registered peer can or cannot be selected for a round at
    ``dp_config``: "active", "quarantined", "left" (withdrawn or leaving),
    "at cap" (its privacy budget cannot pay for one more round), or
    "unregistered". The same conditions the contract's selection uses."""
    info = fed.peer_info(peer)
    if not info["registered"]:
        return "unregistered"
    if info["quarantined"]:
        return "quarantined"
    if info["leave_block"]:
        return "left"
    if not fed.can_afford(peer, dp_config):
        return "at cap"
    return "active"


def eligibility(fed: Federation, dp_config: int) -> list[dict[str, object]]:
    """Every registered peer with its :func:`peer_status` and ε spent."""
    return [{"address": p, "status": peer_status(fed, p, dp_config),
             "epsilon": fed.epsilon(p)} for p in fed.peers()]


def stall_reason(fed: Federation, dp_config: int) -> str | None:
    """Why no new round can open now (None: one can, or one is running)."""
    r = fed.current_round()
    if r and fed.round_info(r).phase not in (Phase.FINAL, Phase.FAILED):
        return None
    peers = eligibility(fed, dp_config)
    t = fed.policy().threshold
    active = sum(p["status"] == "active" for p in peers)
    if active >= t:
        return None
    counts: dict[str, int] = {}
    for p in peers:
        if p["status"] != "active":
            counts[str(p["status"])] = counts.get(str(p["status"]), 0) + 1
    why = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no peer registered"
    return (f"only {active} of {len(peers)} registered peers are eligible for DP configuration "
            f"{dp_config} ({why}); a round needs threshold {t}")


@dataclass
class RoundDriver:
    fed: Federation
    store: ContentStore
    aggregator: str
    dp_config: int
    vector_length: int
    chunk_elems: int | None = None  # None: the largest the policy's proofs allow (≤ 256)
    frac_bits: int = 16
    rounds: int | None = None  # how many to open; None = forever
    mine: bool = False
    min_peers: int = 0  # wait for this many eligible registered peers before the first round
    opened: list[int] = field(default_factory=list)
    results: dict[int, Aggregate] = field(default_factory=dict)
    gas: dict[int, int] = field(default_factory=dict)
    unaggregatable: dict[int, str] = field(default_factory=dict)  # round -> why
    stalled: str | None = None  # why no round opens, while none can
    # seconds one availability check may wait for a masked vector (a Kubo
    # fetch of a withheld CID would otherwise wait out the store's timeout)
    availability_timeout: float = 5.0
    checked: dict[int, dict[int, str]] = field(default_factory=dict)  # round -> challenged -> why
    fetched: dict[int, set[int]] = field(default_factory=dict)  # round -> vectors seen in Commit
    reclaimed: set[int] = field(default_factory=set)  # rounds whose lapsed bonds were taken back
    _quick: ContentStore | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.vector_length < 1:
            raise ConfigError(f"vector_length={self.vector_length} must be positive")

    @property
    def finished(self) -> bool:
        """Every round it was asked to open has ended (final or failed)."""
        if self.rounds is None or len(self.opened) < self.rounds:
            return False
        return self.fed.round_info(self.opened[-1]).phase in (Phase.FINAL, Phase.FAILED)

    def open(self) -> int:
        # After round 1 the federation's quantization is fixed on-chain.
        fixed = self.fed.quantization()
        if fixed is None:
            pol = self.fed.policy()
            ce = self.chunk_elems or chunk_elems_for(pol.participants, pol.threshold)
            fixed = (self.vector_length, ce, self.frac_bits)
        vl, ce, fb = fixed
        r, rcpt = self.fed.open_round(dp_config=self.dp_config, vector_length=vl, chunk_elems=ce,
                                      frac_bits=fb)
        self.opened.append(r)
        self.gas[r] = self.gas.get(r, 0) + rcpt.gas_used
        log.info("round %d opened tx=%s", r, rcpt.tx_hash)
        return r

    def aggregate(self, round_id: int) -> Aggregate:
        agg, _, gas = Aggregator(self.fed, self.store, self.aggregator).run(round_id)
        self.results[round_id] = agg
        self.gas[round_id] = self.gas.get(round_id, 0) + gas
        # A committed share off its dealer's committed polynomial did not stop
        # the round (the secret is the committed one, from other shares), but
        # it is provable: quarantine its dealer, once per dealer.
        from ._challenge import prove_bad_share

        for dealer in sorted({b.dealer for b in agg.bad_shares}):
            bad = next(b for b in agg.bad_shares if b.dealer == dealer)
            try:
                rcpt = prove_bad_share(self.fed, self.store, round_id, bad, sender=self.aggregator)
            except FedLedgerError as exc:
                log.warning("round %d: bad share of dealer %d not proven: %s", round_id, dealer, exc)
                continue
            self.gas[round_id] += rcpt.gas_used
            log.warning("round %d: dealer %d proven to have dealt a bad share tx=%s", round_id,
                        dealer, rcpt.tx_hash)
        return agg

    def _quick_store(self) -> ContentStore:
        """The store with the availability check's short timeout (Kubo only:
        other stores answer at once)."""
        from ..store._store import KuboClient

        if self._quick is None:  # one client for the driver's life, not one per tick
            self._quick = (KuboClient(self.store.api, opts=self.store.opts,
                                      timeout=self.availability_timeout)
                           if isinstance(self.store, KuboClient) else self.store)
        return self._quick

    def reclaim_bonds(self, round_id: int) -> int:
        """Take back the bonds of this driver's challenges whose committer
        left U3 unanswered. Returns the number reclaimed."""
        done = 0
        parts = self.fed.participants(round_id)
        for u in list(self.checked.get(round_id, {})):
            peer = parts[u]
            who, _ = self.fed.availability_challenge(round_id, peer)
            if who is None or who.lower() != self.aggregator.lower():
                continue
            try:
                rcpt = self.fed.reclaim_availability_bond(round_id, peer, sender=self.aggregator)
            except FedLedgerError as exc:
                log.warning("round %d: bond on participant %d not reclaimed: %s", round_id, u, exc)
                continue
            self.gas[round_id] = self.gas.get(round_id, 0) + rcpt.gas_used
            done += 1
        return done

    def tick(self) -> str | None:
        """One step of driving; returns what it did (None: nothing to do)."""
        r = self.fed.current_round()
        info = self.fed.round_info(r) if r else None
        block = self.fed.chain.block_number
        if info is None or info.phase in (Phase.FINAL, Phase.FAILED):
            if self.rounds is not None and len(self.opened) >= self.rounds:
                return None
            # min_peers gates the federation's first round only (peers still
            # starting up); later the threshold decides, and stall_reason says why.
            if (self.min_peers and r == 0
                    and sum(map(self.fed.is_eligible, self.fed.peers())) < self.min_peers):
                return None
            try:
                opened = f"opened round {self.open()}"
            except ContractRevertError as exc:
                if exc.name != "RoundsNotEnoughEligible":
                    raise
                reason = stall_reason(self.fed, self.dp_config) or (
                    f"the contract found too few eligible peers ({exc})")
                if reason != self.stalled:  # once per change, not once per tick
                    log.warning("no round can open: %s", reason)
                    self.stalled = reason
                    return f"waiting: {reason}"
                return None
            if self.stalled is not None:
                log.info("rounds resume: %s", opened)
            self.stalled = None
            return opened
        if info.phase == Phase.SELECTION:  # opened elsewhere (or the 256-block window passed)
            rcpt = self.fed.select_participants(r)
            self.gas[r] = self.gas.get(r, 0) + rcpt.gas_used
            return f"round {r}: participants selected"
        for old in [x for x, c in self.checked.items() if c and x not in self.reclaimed]:
            if self.fed.round_info(old).phase >= Phase.REVEAL:  # final, failed or going on
                self.reclaim_bonds(old)
                self.reclaimed.add(old)
        if (info.phase == Phase.COMMIT and block <= info.deadline
                and self.fed.policy().availability_blocks):
            # Fetch each committer's vector as it commits, so that the check
            # as Availability opens is left with the ones that could not be
            # fetched, and challenges them at once.
            from ._agent import unavailable
            from ._aggregate import collect

            pub = collect(self.fed, r)
            seen = self.fetched.setdefault(r, set())
            todo = [u for u in pub.u3 if u not in seen]
            seen |= set(todo) - set(unavailable(pub, self._quick_store(), todo))
        if info.phase == Phase.AVAILABILITY and r not in self.checked and block <= info.deadline:
            # Once per round, as the phase opens: every committer's vector not
            # fetched during Commit is fetched; one nobody can fetch is
            # challenged (bonded) and must be posted on-chain, or leave U3
            # before any share is revealed.
            from ._agent import challenge_unavailable

            self.checked[r] = challenge_unavailable(self.fed, self._quick_store(), r,
                                                    sender=self.aggregator,
                                                    skip=self.fetched.get(r, set()))
            if self.checked[r]:
                return f"round {r}: challenged the availability of {sorted(self.checked[r])}"
            return f"round {r}: every committed vector is available"
        if info.phase in WAITING:
            if block > info.deadline:
                self.gas[r] = self.gas.get(r, 0) + self.fed.advance(r).gas_used
                return f"round {r}: {info.phase.name} deadline passed"
            if self.mine:
                self.fed.chain.mine(1)
            return None
        if info.phase == Phase.AGGREGATE:
            if block > info.deadline:  # nobody posted in time: the round fails
                self.fed.advance(r)
                return f"round {r}: no result in time"
            if r in self.unaggregatable:
                if self.mine:
                    self.fed.chain.mine(1)
                return None
            try:
                self.aggregate(r)
            except DealerFaultError as exc:
                # The dealer's shares are provably wrong: prove it, so the
                # dealer is quarantined and the round fails now, not at its
                # deadline, with nobody else blamed.
                from ._challenge import prove_dealer_fault

                rcpt = prove_dealer_fault(self.fed, self.store, r, exc.dealer,
                                          sender=self.aggregator)
                self.gas[r] = self.gas.get(r, 0) + rcpt.gas_used
                log.warning("round %d: dealer %d proven faulty tx=%s", r, exc.dealer, rcpt.tx_hash)
                return f"round {r}: dealer {exc.dealer} proven faulty ({exc.message})"
            except AggregationError as exc:
                # Another party's data makes the round impossible to unmask: let
                # it fail at its deadline and go on with the next one.
                self.unaggregatable[r] = str(exc)
                log.warning("round %d cannot be aggregated: %s", r, exc)
                return f"round {r}: cannot be aggregated ({exc})"
            return f"round {r}: result posted"
        if info.phase == Phase.CHALLENGE:
            if block > info.deadline:
                self.gas[r] = self.gas.get(r, 0) + self.fed.finalize(r).gas_used
                log.info("round %d finalized", r)
                return f"round {r}: finalized"
            if self.mine:
                self.fed.chain.mine(1)
            return None
        return None


def initial_adapter(store: ContentStore, flat: np.ndarray, *, frac_bits: int = 16,
                    chunk_elems: int = enc.DEFAULT_CHUNK_ELEMS) -> tuple[bytes, bytes]:
    """Publish the starting adapter in fixed point; returns (digest, root) for
    ``deploy_federation(initial_adapter_cid=..., initial_adapter_root=...)``.
    Round 1 must then use the same ``frac_bits`` and ``chunk_elems``."""
    from ._aggregate import adapter_bytes

    fixed = enc.pad(enc.to_fixed(flat, frac_bits=frac_bits), chunk_elems)
    digest = store.add(adapter_bytes(0, fixed, frac_bits=frac_bits, length=len(flat))).digest
    return digest, enc.vector_root(fixed, chunk_elems)


def initial_adapter_args(store: ContentStore, flat: np.ndarray, *, frac_bits: int = 16,
                         chunk_elems: int | None = None,
                         policy: tuple[int, int] | None = None) -> dict[str, bytes]:
    """``deploy_federation`` keyword arguments for this initial adapter.
    The root is over the chunks round 1 will use: ``chunk_elems``, else the
    size a :class:`RoundDriver` picks for ``policy`` = (participants,
    threshold), else the default."""
    if chunk_elems is None:
        chunk_elems = chunk_elems_for(*policy) if policy else enc.DEFAULT_CHUNK_ELEMS
    cid, root = initial_adapter(store, flat, frac_bits=frac_bits, chunk_elems=chunk_elems)
    return {"initial_adapter_cid": cid, "initial_adapter_root": root}


def fit_windows(*, train_seconds: float, block_seconds: float, participants: int,
                tx_seconds: float = 1.0, margin: float = 2.0,
                min_blocks: int = 20) -> dict[str, int]:
    """Phase windows, in blocks, that fit the slowest expected peer.

    ``train_seconds`` is the slowest expected local training (measured, times
    the slow-down of peers sharing cores); ``block_seconds`` the chain's block
    interval (regular blocks), or on an automining development chain the
    driver's mining interval. Every window holds ``margin`` times the work
    done in it: one transaction per peer (``tx_seconds``, including the
    upload) in keys, shares and reveal; a full training plus the commit in
    the commit window, since a peer that posted its shares last starts
    training only as the commit window opens; the availability window holds
    the aggregator's check, its challenges and the answers (one transaction
    per peer). ``participants`` blocks are added to each, as on automining
    chains every transaction is a block."""
    if train_seconds < 0 or block_seconds <= 0 or participants < 1 or margin < 1:
        raise ConfigError(f"fit_windows(train_seconds={train_seconds}, block_seconds="
                          f"{block_seconds}, participants={participants}, margin={margin}): "
                          "need train_seconds ≥ 0, block_seconds > 0, participants ≥ 1, margin ≥ 1")
    import math

    def blocks(seconds: float) -> int:
        return max(min_blocks, math.ceil(margin * seconds / block_seconds) + participants)

    step = blocks(tx_seconds)
    return {"keys_blocks": step, "shares_blocks": step,
            "commit_blocks": blocks(train_seconds + tx_seconds), "availability_blocks": step,
            "reveal_blocks": step, "aggregate_blocks": blocks(tx_seconds * participants)}
