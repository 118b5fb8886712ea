"""Typed Python bindings of the fedledger contracts.

:class:`Federation` wraps the four deployed contracts (PeerRegistry,
PrivacyLedger, FedRounds, FraudProofs) with one typed method per contract
function; reverts arrive as :class:`ContractRevertError` with the custom
error's name and arguments (see :mod:`coordinator.chain._chain`). Events decode to
:class:`Event`. :func:`deploy_federation` deploys and wires the suite.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from ._artifacts import source_hash
from ._chain import Chain, Receipt
from .._errors import ChainError, ConfigError
from .. import _encoding as enc
from ..privacy._noise import DistributedConfig, DPMode
from ..privacy._privacy import DPConfig, conversion_constants

Sender = int | str | LocalAccount


class Phase(enum.IntEnum):
    """Mirrors IFedRounds.Phase."""

    NONE = 0
    SELECTION = 1  # opened; the pool is frozen until the seed's block is mined
    KEYS = 2
    SHARES = 3
    COMMIT = 4
    AVAILABILITY = 5  # U3 provisional: a committer whose vector no one can fetch is challenged
    REVEAL = 6
    AGGREGATE = 7
    CHALLENGE = 8
    FINAL = 9
    FAILED = 10


class FailReason(enum.IntEnum):
    """Mirrors IFedRounds.FailReason."""

    NONE = 0
    INSUFFICIENT_KEYS = 1
    INSUFFICIENT_SHARES = 2
    INSUFFICIENT_COMMITS = 3
    INSUFFICIENT_REVEALS = 4
    NO_RESULT = 5
    NOISE_BELOW_FLOOR = 6
    TOO_MANY_FRAUDS = 7
    DEALER_FAULT = 8
    NOT_ENOUGH_ELIGIBLE = 9


class StatusFlag(enum.IntFlag):
    """Bits of FedRounds.statusOf above the 16-bit index+1."""

    KEYS = 1 << 16
    SHARES = 1 << 17
    COMMITTED = 1 << 18
    REVEALED = 1 << 19
    EXCLUDED = 1 << 20  # a bad share of this dealer was proven before it committed
    CHALLENGED = 1 << 21  # an availability challenge of its masked vector is unanswered


@dataclass(frozen=True, slots=True)
class Policy:
    """Governance policy of FedRounds (phase lengths in blocks, bond in wei)."""

    participants: int = 8
    threshold: int = 5
    keys_blocks: int = 20
    shares_blocks: int = 20
    commit_blocks: int = 40
    reveal_blocks: int = 20
    aggregate_blocks: int = 40
    challenge_blocks: int = 50  # MIN_CHALLENGE_BLOCKS: a public chain refuses less
    challenger_reward_bps: int = 5000
    bond: int = 10**17
    max_weight: int = 1_000_000  # cap on a commit's self-reported n_u
    # > 0: the quorum's commit (t + ceil((|U2| - t) / 2)) pulls the commit
    # deadline in to this share (basis points) of the blocks the round took so
    # far, plus one block per participant (FedRounds._quorumGrace); 0: wait for
    # everyone until the deadline
    quorum_grace_bps: int = 0
    # > 0: an Availability phase of this many blocks between Commit and Reveal,
    # where anyone can challenge a committer whose masked vector it cannot
    # fetch (FraudProofs.challengeAvailability); 0: none, and a committer that
    # withholds its vector forces NoResult unpunished
    availability_blocks: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.threshold <= self.participants:
            raise ConfigError(f"threshold {self.threshold} must be between 1 and participants "
                              f"{self.participants}")
        if not 1 <= self.max_weight < 2**32:
            raise ConfigError(f"max_weight {self.max_weight} must be between 1 and 2^32 - 1")
        if not 0 <= self.quorum_grace_bps < 2**16:
            raise ConfigError(f"quorum_grace_bps {self.quorum_grace_bps} must be between 0 and "
                              "65535")
        if self.availability_blocks and not 4 <= self.availability_blocks < 2**32:
            raise ConfigError(f"availability_blocks {self.availability_blocks} must be 0 (no "
                              "Availability phase) or at least 4: half the window is the time "
                              "a challenged committer has to answer")
        if self.availability_blocks and self.bond <= 0:
            raise ConfigError("an Availability phase needs a bond > 0: it is what a challenge "
                              "costs, and what keeps challenges from being free")

    def as_tuple(self) -> tuple[int, ...]:
        return (self.participants, self.threshold, self.keys_blocks, self.shares_blocks,
                self.commit_blocks, self.reveal_blocks, self.aggregate_blocks,
                self.challenge_blocks, self.challenger_reward_bps, self.bond, self.max_weight,
                self.quorum_grace_bps, self.availability_blocks)


MIN_THRESHOLD = 2  # t = 1: every single share is the secret itself
MIN_CHALLENGE_BLOCKS = 50  # ≈ 10 minutes at 12-s blocks for an auditor to verify and prove
DEVELOPMENT_BACKENDS = frozenset({"embedded", "anvil", "hardhat"})
DEVELOPMENT_CHAIN_IDS = frozenset({31337, 1337})


def is_development(chain: Chain) -> bool:
    """A chain we start ourselves, or one with a development chain id."""
    return chain.backend in DEVELOPMENT_BACKENDS or chain.chain_id in DEVELOPMENT_CHAIN_IDS


def majority_threshold(n: int) -> int:
    """The least t that is a majority of a neighbourhood (a participant and
    its k mask neighbours): with the complete graph (n ≤ 20) t > n/2; with
    the sparse graph, k = max(2·bitlen(n − 1), 2(t − 1)) (the formula of
    protocol._secagg.degree and MaskGraph.sol), so t ≥ bitlen(n − 1) + 1."""
    if n <= 20:
        return n // 2 + 1
    return (n - 1).bit_length() + 1


def check_policy(policy: Policy, *, development: bool) -> list[str]:
    """Refuse a policy that voids the protocol's guarantees (docs/decisions.md,
    "Policy minimums"): t < 2 always; t below :func:`majority_threshold`
    (no honest majority of holders is needed to unmask one peer) or a challenge window under
    MIN_CHALLENGE_BLOCKS blocks (an auditor cannot act in time) on a public
    chain. On a development chain those two are warned about, loudly, and
    returned."""
    import warnings

    if policy.threshold < MIN_THRESHOLD:
        raise ConfigError(f"threshold t={policy.threshold} is below the minimum {MIN_THRESHOLD}: "
                          "with t = 1 every share is the secret itself",
                          hint=f"use a threshold of at least {MIN_THRESHOLD}")
    weak = []
    least = majority_threshold(policy.participants)
    if policy.threshold < least:
        weak.append(f"threshold t={policy.threshold} of n={policy.participants} is not a "
                    f"majority of a neighbourhood: a minority of holders can unmask a peer "
                    f"(use t ≥ {least})")
    if policy.challenge_blocks < MIN_CHALLENGE_BLOCKS:
        weak.append(f"challenge window of {policy.challenge_blocks} blocks is too short for an "
                    f"auditor to verify and prove a wrong result (use ≥ {MIN_CHALLENGE_BLOCKS})")
    if weak and not development:
        raise ConfigError("; ".join(weak))
    for w in weak:
        warnings.warn(f"development chain only: {w}", UserWarning, stacklevel=3)
    return weak


@dataclass(frozen=True, slots=True)
class LedgerPolicy:
    """Per-peer privacy cap (ε, δ)."""

    epsilon_cap: float = 8.0
    delta: float = 1e-5

    @property
    def cap_micro(self) -> int:
        return int(self.epsilon_cap * 1_000_000)

    @property
    def delta_pico(self) -> int:
        return round(self.delta * 1e12)


@dataclass(frozen=True, slots=True)
class RoundInfo:
    round_id: int
    phase: Phase
    fail_reason: FailReason
    n: int
    t: int
    n_keys: int
    n_shares: int
    n_commits: int
    n_reveals: int
    dp_config: int
    deadline: int
    attempt: int
    vector_length: int
    chunk_elems: int
    frac_bits: int
    weight_sum: int
    opened_block: int
    adapter_cid: bytes
    seed: bytes
    adapter_root: bytes = bytes(32)  # root of the fixed-point adapter it starts from; 0: all zero
    n_excluded: int = 0  # dealers in U2 proven bad before their commit: they cannot commit


@dataclass(frozen=True, slots=True)
class ResultInfo:
    aggregator: str
    bond: int
    new_adapter_cid: bytes
    masked_sum_root: bytes
    result_root: bytes
    seeds_hash: bytes


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded contract event."""

    contract: str
    name: str
    block: int
    tx_hash: str
    log_index: int
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ShareProof:
    holder: int
    value: int
    proof: Sequence[bytes]

    def as_tuple(self) -> tuple[int, int, list[bytes]]:
        return (self.holder, self.value, list(self.proof))


@dataclass(frozen=True)
class Commitments:
    """A dealer's Feldman commitments (2t points, self seed first) and the
    Merkle proof of their leaf (index 2n) under its share root."""

    points: bytes
    proof: Sequence[bytes]

    def as_tuple(self) -> tuple[bytes, list[bytes]]:
        return (self.points, list(self.proof))


@dataclass(frozen=True, slots=True)
class MemberChunk:
    index: int
    cid_digest: bytes
    chunks_root: bytes
    weight: int
    chunk: bytes
    proof: Sequence[bytes]

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.index, self.cid_digest, self.chunks_root, self.weight, self.chunk,
                list(self.proof))


CONTRACT_NAMES = ("PeerRegistry", "PrivacyLedger", "FedRounds", "FraudProofs")


class Federation:
    """The deployed contract suite on one chain."""

    def __init__(self, chain: Chain, addresses: dict[str, str], *, governor: Sender = 0,
                 deploy_block: int = 0) -> None:
        missing = [n for n in CONTRACT_NAMES if n not in addresses]
        if missing:
            raise ConfigError(f"deployment record lacks {', '.join(missing)}")
        self.chain = chain
        self.addresses = dict(addresses)
        self.governor = chain.account(governor) if chain.accounts else None  # None: read-only
        self.deploy_block = deploy_block
        self._configs: dict[int, DPConfig] = {}
        self._distributed: dict[int, DistributedConfig] = {}
        self._event_cache: dict[str, tuple[list[Event], int, int]] = {}
        self.block: int | None = None  # set by snapshot(): every read is pinned to it
        self.registry = chain.contract("PeerRegistry", addresses["PeerRegistry"])
        self.ledger = chain.contract("PrivacyLedger", addresses["PrivacyLedger"])
        self.rounds = chain.contract("FedRounds", addresses["FedRounds"])
        self.fraud = chain.contract("FraudProofs", addresses["FraudProofs"])

    def _call(self, fn: Any) -> Any:
        return self.chain.call(fn, block=self.block)

    @contextmanager
    def snapshot(self, block: int | None = None) -> Iterator[int]:
        """Pin every read (view calls, event queries, code) to one block — the
        head when ``block`` is None — for the duration of the ``with`` block,
        so an audit never mixes state from two blocks (a round that moves on
        while it is read). Yields the pinned block number."""
        prev = self.block
        self.block = self.chain.block_number if block is None else int(block)
        try:
            yield self.block
        finally:
            self.block = prev

    def head(self) -> int:
        """The pinned block when a snapshot is active, else the chain's head."""
        return self.block if self.block is not None else self.chain.block_number

    def code(self, name: str) -> bytes:
        """Deployed runtime code of one contract (at the snapshot block)."""
        addr = self.addresses[name]
        if self.block is None:
            return bytes(self.chain.w3.eth.get_code(addr))  # type: ignore[arg-type]
        return bytes(self.chain.w3.eth.get_code(addr, block_identifier=self.block))  # type: ignore[arg-type]

    def _tx(self, fn: Any, sender: Sender | None, value: int = 0) -> Receipt:
        if sender is None:
            raise ConfigError("this needs a signing account; the federation was opened read-only")
        return self.chain.transact(fn, sender=sender, value=value)

    # -- registry --------------------------------------------------------------
    def register(self, *, sender: Sender, stake: int, region: int = 0, modalities: int = 7,
                 key: bytes = bytes(32)) -> Receipt:
        return self._tx(self.registry.functions.register(region, modalities, key), sender, stake)

    def request_leave(self, *, sender: Sender) -> Receipt:
        return self._tx(self.registry.functions.requestLeave(), sender)

    def withdraw_stake(self, *, sender: Sender) -> Receipt:
        return self._tx(self.registry.functions.withdraw(), sender)

    def quarantine(self, peer: str, *, sender: Sender | None = None) -> Receipt:
        return self._tx(self.registry.functions.quarantine(peer), sender or self.governor)

    def is_eligible(self, peer: str) -> bool:
        return bool(self._call(self.registry.functions.isEligible(peer)))

    def is_eligible_at(self, peer: str, block: int) -> bool:
        """Whether ``peer`` counts for a round opened at ``block``."""
        return bool(self._call(self.registry.functions.isEligibleAt(peer, block)))

    def registered_block(self, peer: str) -> int:
        return int(self._call(self.registry.functions.registeredBlock(peer)))

    def peer_at(self, i: int) -> str:
        return str(self._call(self.registry.functions.peerAt(i)))

    def eligibility_delay(self) -> int:
        return int(self._call(self.registry.functions.eligibilityDelay()))

    def set_eligibility_delay(self, blocks: int, *, sender: Sender | None = None) -> Receipt:
        return self._tx(self.registry.functions.setEligibilityDelay(blocks), sender or self.governor)

    def pool_frozen(self) -> bool:
        return bool(self._call(self.registry.functions.frozen()))

    def peers(self) -> list[str]:
        return list(self._call(self.registry.functions.peers()))

    def peer_info(self, peer: str) -> dict[str, Any]:
        stake, leave, region, modalities, registered, quarantined = self._call(
            self.registry.functions.peerInfo(peer))
        return {"stake": int(stake), "leave_block": int(leave), "region": int(region),
                "modalities": int(modalities), "registered": bool(registered),
                "quarantined": bool(quarantined)}

    def set_slasher(self, slasher: str, *, sender: Sender | None = None) -> Receipt:
        return self._tx(self.registry.functions.setSlasher(slasher), sender or self.governor)

    def total_staked(self) -> int:
        return int(self._call(self.registry.functions.totalStaked()))

    def slashed_stake(self) -> int:
        """Stake the registry slashed from proven bad dealers, not yet swept."""
        return int(self._call(self.registry.functions.slashedStake()))

    def sweep_slashed_stake(self, to: str, *, sender: Sender | None = None) -> Receipt:
        """Governor: send the registry's slashed stake to ``to``."""
        return self._tx(self.registry.functions.sweepSlashedStake(to), sender or self.governor)

    # -- ledger ------------------------------------------------------------------
    def register_config(self, cfg: DPConfig, *, sender: Sender | None = None) -> Receipt:
        fn = self.ledger.functions.registerConfig(cfg.config_id, cfg.q_ppm, cfg.sigma_milli,
                                                  cfg.steps, list(cfg.rdp_micro))
        return self._tx(fn, sender or self.governor)

    def register_distributed_config(self, cfg: DistributedConfig, *,
                                    sender: Sender | None = None) -> Receipt:
        fn = self.ledger.functions.registerDistributedConfig(
            cfg.config_id, int(cfg.mode), cfg.q_ppm, cfg.mu, cfg.delta2, cfg.delta1, cfg.k,
            cfg.floor_m, [list(v) for v in cfg.rdp_by_m])
        return self._tx(fn, sender or self.governor)

    def dp_mode(self, config_id: int) -> DPMode:
        return DPMode(int(self.chain.call(self.ledger.functions.modeOf(config_id))))

    def noise_floor_met(self, config_id: int, survivors: int) -> bool:
        return bool(self.chain.call(self.ledger.functions.noiseFloorMet(config_id, survivors)))

    def distributed_config(self, config_id: int) -> DistributedConfig:
        """A registered distributed configuration, read back from its event (cached:
        a configuration id is registered once)."""
        if config_id not in self._distributed:
            for ev in self.all_events("PrivacyLedger", self.deploy_block):
                if ev.name != "DistributedConfigRegistered":
                    continue
                a = ev.args
                self._distributed[int(a["id"])] = DistributedConfig(
                    int(a["id"]), DPMode(int(a["mode"])), int(a["qPpm"]) / 1e6, int(a["mu"]),
                    int(a["delta2"]), int(a["delta1"]), int(a["k"]), int(a["floorM"]),
                    tuple(tuple(int(x) for x in v) for v in a["rdpMicro"]))
        if config_id not in self._distributed:
            raise ConfigError(f"distributed DP configuration {config_id} is not registered on-chain")
        return self._distributed[config_id]

    def dp_config(self, config_id: int) -> DPConfig:
        """A registered DP configuration, read back from its event (cached)."""
        if config_id not in self._configs:
            for ev in self.all_events("PrivacyLedger", self.deploy_block):
                if ev.name != "DPConfigRegistered":
                    continue
                a = ev.args
                self._configs[int(a["id"])] = DPConfig(int(a["id"]), int(a["qPpm"]) / 1e6,
                                                       int(a["sigmaMilli"]) / 1e3, int(a["steps"]),
                                                       tuple(int(x) for x in a["rdpMicro"]))
        if config_id not in self._configs:
            raise ConfigError(f"DP configuration {config_id} is not registered on-chain")
        return self._configs[config_id]

    def epsilon_micro(self, peer: str) -> int:
        return int(self._call(self.ledger.functions.epsilonOf(peer)))

    def epsilon(self, peer: str) -> float:
        return self.epsilon_micro(peer) / 1_000_000

    def rdp_micro(self, peer: str) -> tuple[int, ...]:
        return tuple(self._call(self.ledger.functions.rdpOf(peer)))

    def can_afford(self, peer: str, config_id: int) -> bool:
        return bool(self._call(self.ledger.functions.canAfford(peer, config_id)))

    def epsilon_after_micro(self, peer: str, config_id: int) -> int:
        return int(self._call(self.ledger.functions.epsilonAfter(peer, config_id)))

    def orders(self) -> tuple[int, ...]:
        return tuple(self._call(self.ledger.functions.orders()))

    def cap_micro(self) -> int:
        return int(self._call(self.ledger.functions.capMicro()))

    def delta(self) -> float:
        return int(self._call(self.ledger.functions.deltaPico())) / 1e12

    def set_charger(self, charger: str, *, sender: Sender | None = None) -> Receipt:
        return self._tx(self.ledger.functions.setCharger(charger), sender or self.governor)

    def conversion(self) -> tuple[int, ...]:
        return tuple(self._call(self.ledger.functions.conversion()))

    # -- rounds ------------------------------------------------------------------
    def open_round(self, *, dp_config: int, vector_length: int, chunk_elems: int = enc.DEFAULT_CHUNK_ELEMS,
                   frac_bits: int = 16, sender: Sender | None = None,
                   select: bool = True) -> tuple[int, Receipt]:
        """Open the next round. Round 1 (governor only) fixes the quantization;
        later rounds must repeat it (the contract reverts RoundsBadQuant).

        openRound freezes the pool and names the next block as the seed's;
        with ``select`` (the default) this waits for that block and draws the
        participants (:meth:`select_participants`), and the receipt returned
        is the selection's with the gas and logs of both transactions."""
        fn = self.rounds.functions.openRound(dp_config, (vector_length, chunk_elems, frac_bits))
        opened = self._tx(fn, sender or self.governor)
        r = self.current_round()
        if not select:
            return r, opened
        chosen = self.select_participants(r, sender=sender or self.governor)
        return r, Receipt(chosen.tx_hash, chosen.block_number, opened.gas_used + chosen.gas_used,
                          None, opened.logs + chosen.logs)

    def selection_of(self, round_id: int) -> tuple[int, int, int]:
        """(target block, pool size, selection block or 0) of ``round_id``."""
        return tuple(int(x) for x in self._call(self.rounds.functions.selectionOf(round_id)))  # type: ignore[return-value]

    def select_participants(self, round_id: int, *, sender: Sender | None = None,
                            timeout: float = 120.0) -> Receipt:
        """Draw round ``round_id``'s participants once its target block is
        mined: a development chain mines up to it, another chain is polled
        for at most ``timeout`` seconds. Past the 256-block window the
        contract names a new target and this waits for that one."""
        deadline = time.monotonic() + timeout
        while True:
            target = self.selection_of(round_id)[0]
            head = self.chain.block_number
            # The transaction must run in a block > target; some nodes (anvil)
            # check it with a call at the head's own number, so wait for the
            # head itself to pass the target.
            if head <= target:
                if is_development(self.chain):
                    self.chain.mine(target + 1 - head)
                    continue
                if time.monotonic() > deadline:
                    raise ChainError(f"block {target} (round {round_id}'s selection block) "
                                     f"not mined within {timeout:.0f} s")
                time.sleep(1.0)
                continue
            rcpt = self._tx(self.rounds.functions.selectParticipants(round_id), sender or self.governor)
            if self.round_info(round_id).phase != Phase.SELECTION:
                return rcpt

    def post_keys(self, round_id: int, enc_pk: bytes, mask_pk: bytes, *, sender: Sender) -> Receipt:
        return self._tx(self.rounds.functions.postKeys(round_id, enc_pk, mask_pk), sender)

    def post_shares(self, round_id: int, bundle_cid: bytes, share_root: bytes, *,
                    sender: Sender) -> Receipt:
        return self._tx(self.rounds.functions.postShares(round_id, bundle_cid, share_root), sender)

    def commit(self, round_id: int, *, cid_digest: bytes, chunks_root: bytes, weight: int,
               dp_config: int, sender: Sender) -> Receipt:
        fn = self.rounds.functions.commit(round_id, cid_digest, chunks_root, weight, dp_config)
        return self._tx(fn, sender)

    def reveal(self, round_id: int, dealers: Sequence[int], shares: Sequence[int], *,
               sender: Sender) -> Receipt:
        return self._tx(self.rounds.functions.reveal(round_id, list(dealers), list(shares)), sender)

    def post_result(self, round_id: int, *, new_adapter_cid: bytes, masked_sum_root: bytes,
                    result_root: bytes, seeds: Sequence[tuple[int, int, bytes]], bond: int,
                    sender: Sender) -> Receipt:
        fn = self.rounds.functions.postResult(round_id, new_adapter_cid, masked_sum_root,
                                              result_root, [tuple(s) for s in seeds])
        return self._tx(fn, sender, bond)

    def finalize(self, round_id: int, *, sender: Sender = 0) -> Receipt:
        return self._tx(self.rounds.functions.finalize(round_id), sender)

    def advance(self, round_id: int, *, sender: Sender = 0) -> Receipt:
        return self._tx(self.rounds.functions.advance(round_id), sender)

    def withdraw(self, *, sender: Sender) -> Receipt:
        return self._tx(self.rounds.functions.withdraw(), sender)

    def sweep_slashed(self, to: str, *, sender: Sender | None = None) -> Receipt:
        """Governor: move the slashed pool to ``to``'s withdrawable balance."""
        return self._tx(self.rounds.functions.sweepSlashed(to), sender or self.governor)

    def stake_locks(self, peer: str) -> int:
        return int(self.chain.call(self.registry.functions.locksOf(peer)))

    def current_round(self) -> int:
        return int(self._call(self.rounds.functions.currentRound()))

    def global_adapter_cid(self) -> bytes:
        return bytes(self._call(self.rounds.functions.globalAdapterCid()))

    def global_adapter_root(self) -> bytes:
        return bytes(self.chain.call(self.rounds.functions.globalAdapterRoot()))

    def quantization(self) -> tuple[int, int, int] | None:
        """(vector_length, chunk_elems, frac_bits) fixed by round 1, or None before."""
        v = tuple(int(x) for x in self.chain.call(self.rounds.functions.quantization()))
        return None if v[0] == 0 else (v[0], v[1], v[2])

    def round_info(self, round_id: int) -> RoundInfo:
        v = self._call(self.rounds.functions.roundInfo(round_id))
        n, t, nk, ns, nc, nr, cfg, dl, att, nx, vl, ce, fb, ws, ob = (int(x) for x in v[2:17])
        return RoundInfo(round_id, Phase(v[0]), FailReason(v[1]), n, t, nk, ns, nc, nr, cfg, dl,
                         att, vl, ce, fb, ws, ob, bytes(v[17]), bytes(v[18]), bytes(v[19]), nx)

    def result_of(self, round_id: int) -> ResultInfo:
        v = self._call(self.rounds.functions.resultOf(round_id))
        return ResultInfo(v[0], int(v[1]), bytes(v[2]), bytes(v[3]), bytes(v[4]), bytes(v[5]))

    def participants(self, round_id: int) -> list[str]:
        return list(self._call(self.rounds.functions.participantsOf(round_id)))

    def status(self, round_id: int, peer: str) -> tuple[int | None, StatusFlag]:
        """(participant index or None, flags)."""
        st = int(self._call(self.rounds.functions.statusOf(round_id, peer)))
        idx = (st & 0xFFFF) - 1
        return (idx if idx >= 0 else None), StatusFlag(st & 0x3F0000)

    def keys_hash(self, round_id: int, peer: str) -> bytes:
        return bytes(self._call(self.rounds.functions.keysHashOf(round_id, peer)))

    def share_root(self, round_id: int, peer: str) -> bytes:
        return bytes(self._call(self.rounds.functions.shareRootOf(round_id, peer)))

    def commit_hash(self, round_id: int, peer: str) -> bytes:
        """The top 224 bits of the peer's commitment (low 4 bytes zero)."""
        return bytes(self._call(self.rounds.functions.commitHashOf(round_id, peer)))

    def commitment_hash(self, round_id: int, peer: str, *, cid_digest: bytes, chunks_root: bytes,
                        weight: int, dp_config: int) -> bytes:
        return bytes(self._call(self.rounds.functions.commitmentHash(
            round_id, peer, cid_digest, chunks_root, weight, dp_config)))

    def data_schema(self) -> bytes:
        """The declared data schema hash (32 bytes; all zero if none was declared)."""
        return bytes(self._call(self.rounds.functions.dataSchema()))

    def set_data_schema(self, schema_hash: bytes, *, sender: Sender | None = None) -> Receipt:
        return self._tx(self.rounds.functions.setDataSchema(schema_hash), sender or self.governor)

    def set_fraud_proofs(self, address: str, *, sender: Sender | None = None) -> Receipt:
        return self._tx(self.rounds.functions.setFraudProofs(address), sender or self.governor)

    def withdrawable(self, account: str) -> int:
        return int(self._call(self.rounds.functions.withdrawable(account)))

    def slashed_pool(self) -> int:
        return int(self._call(self.rounds.functions.slashedPool()))

    def policy(self) -> Policy:
        return Policy(*[int(x) for x in self._call(self.rounds.functions.policy())])

    # -- fraud proofs --------------------------------------------------------------
    def challenge_seed(self, round_id: int, *, seed_index: int,
                       seeds: Sequence[tuple[int, int, bytes]], commitments: Commitments,
                       secret: int = 0, enc_pk: bytes = bytes(32), mask_pk: bytes = bytes(32),
                       sender: Sender) -> Receipt:
        """FraudProofs.challengeSeed: ``commitments`` are the seed's dealer's;
        for a pairwise seed ``secret`` is the dealer's committed mask key and
        ``enc_pk``/``mask_pk`` survivor u's posted keys."""
        fn = self.fraud.functions.challengeSeed(round_id, seed_index, [tuple(s) for s in seeds],
                                                commitments.as_tuple(), secret, enc_pk, mask_pk)
        return self._tx(fn, sender)

    def prove_dealer_fault(self, round_id: int, *, dealer: int, commitments: Commitments,
                           secret: int, enc_pk: bytes, mask_pk: bytes, sender: Sender) -> Receipt:
        """FraudProofs.proveDealerFault: ``secret`` is the dropped ``dealer``'s
        committed mask key; ``enc_pk``/``mask_pk`` its posted keys."""
        fn = self.fraud.functions.proveDealerFault(round_id, dealer, commitments.as_tuple(),
                                                   secret, enc_pk, mask_pk)
        return self._tx(fn, sender)

    def prove_bad_share(self, round_id: int, *, dealer: int, kind: int, share: ShareProof,
                        commitments: Commitments, sender: Sender) -> Receipt:
        """FraudProofs.proveBadShare: ``share`` is a share ``dealer`` committed
        to (its leaf) that is off its committed polynomial ``kind``."""
        fn = self.fraud.functions.proveBadShare(round_id, dealer, kind, share.as_tuple(),
                                                commitments.as_tuple())
        return self._tx(fn, sender)

    def challenge_chunk(self, round_id: int, *, chunk_index: int,
                        seeds: Sequence[tuple[int, int, bytes]], members: Sequence[MemberChunk],
                        result_chunk: bytes, result_proof: Sequence[bytes],
                        prev_chunk: bytes = b"", prev_proof: Sequence[bytes] = (),
                        sender: Sender) -> Receipt:
        """``result_chunk`` is a chunk of the posted new adapter, ``prev_chunk``
        that chunk of the adapter the round started from (empty when the
        round's adapter root is zero)."""
        proof = (round_id, chunk_index, [tuple(s) for s in seeds],
                 [m.as_tuple() for m in members], result_chunk, list(result_proof),
                 prev_chunk, list(prev_proof))
        return self._tx(self.fraud.functions.challengeChunk(proof), sender)

    # -- data availability ---------------------------------------------------------
    def challenge_availability(self, round_id: int, peer: str, *, cid_digest: bytes,
                               chunks_root: bytes, weight: int, sender: Sender,
                               bond: int | None = None) -> Receipt:
        """FraudProofs.challengeAvailability: ``peer``'s masked vector (its
        commitment fields as committed) cannot be fetched; pays the bond."""
        fn = self.fraud.functions.challengeAvailability(round_id, peer, cid_digest, chunks_root,
                                                        weight)
        return self._tx(fn, sender, self.policy().bond if bond is None else bond)

    def answer_availability(self, round_id: int, peer: str, *, cid_digest: bytes,
                            chunks_root: bytes, weight: int, data: bytes,
                            sender: Sender) -> Receipt:
        """FraudProofs.answerAvailability: post ``peer``'s whole padded
        masked vector on-chain (``sender`` is paid its calldata out of the
        challenger's bond; the challenger gets the rest)."""
        fn = self.fraud.functions.answerAvailability(round_id, peer, cid_digest, chunks_root,
                                                     weight, data)
        return self._tx(fn, sender)

    def reclaim_availability_bond(self, round_id: int, peer: str, *, sender: Sender) -> Receipt:
        return self._tx(self.fraud.functions.reclaimAvailabilityBond(round_id, peer), sender)

    def availability_challenge(self, round_id: int, peer: str) -> tuple[str | None, int]:
        """(challenger, bond) of ``peer``'s challenge in the round; the
        challenger is None when there is none, or it was answered."""
        who, bond = self._call(self.fraud.functions.availabilityChallenge(round_id, peer))
        open_ = int(who, 16) != 0 and str(who).lower() != self.fraud.address.lower()
        return (str(who) if open_ else None), int(bond)

    # -- events ------------------------------------------------------------------
    def events(self, contract: str, name: str, from_block: int,
               to_block: int | None = None) -> list[Event]:
        """Decoded events over [from_block, to_block]; keep ranges narrow on
        the embedded chain (docs/decisions.md)."""
        c: Contract = {"PeerRegistry": self.registry, "PrivacyLedger": self.ledger,
                       "FedRounds": self.rounds, "FraudProofs": self.fraud}[contract]
        if to_block is None and self.block is not None:
            to_block = self.block
        out = []
        for e in self.chain.logs(c, name, from_block, to_block):
            out.append(Event(contract, name, int(e["blockNumber"]),
                             "0x" + bytes(e["transactionHash"]).hex(), int(e["logIndex"]),
                             dict(e["args"])))
        return out

    def all_events(self, contract: str, from_block: int, to_block: int | None = None) -> list[Event]:
        """Every event of one contract over the range, with one log query."""
        c: Contract = {"PeerRegistry": self.registry, "PrivacyLedger": self.ledger,
                       "FedRounds": self.rounds, "FraudProofs": self.fraud}[contract]

        def fetch(lo: int, hi: int | None) -> list[Event]:
            return [Event(contract, str(e["event"]), int(e["blockNumber"]),
                          "0x" + bytes(e["transactionHash"]).hex(), int(e["logIndex"]),
                          dict(e["args"]))
                    for e in self.chain.all_logs(c, lo, hi)]

        if to_block is not None and self.block is None:
            return fetch(from_block, to_block)
        # Mined events do not change below the reorg horizon, so they are
        # cached and each call scans only the blocks it has not seen (log
        # scans are linear in the range; rounds re-read their events often).
        # Under a snapshot the head is the pinned block: nothing later is read.
        latest = self.chain.block_number if self.block is None else self.block
        if to_block is not None:
            latest = min(latest, to_block)
        stable = latest - (0 if self.chain.backend in ("embedded", "anvil", "hardhat") else 64)
        cached, lo, scanned = self._event_cache.get(contract, ([], from_block, from_block - 1))
        if from_block < lo:
            cached, lo, scanned = [], from_block, from_block - 1
        if stable > scanned:
            cached = cached + fetch(scanned + 1, stable)
            scanned = stable
            self._event_cache[contract] = (cached, lo, scanned)
        fresh = fetch(scanned + 1, latest) if latest > scanned else []
        return [e for e in cached if from_block <= e.block <= latest] + fresh

    def receipt_events(self, rcpt: Receipt) -> list[Event]:
        """Every fedledger event in one receipt, decoded."""
        out = []
        by_addr = {a.lower(): n for n, a in self.addresses.items()}
        contracts = {"PeerRegistry": self.registry, "PrivacyLedger": self.ledger,
                     "FedRounds": self.rounds, "FraudProofs": self.fraud}
        for lg in rcpt.logs:
            name = by_addr.get(str(lg["address"]).lower())
            if name is None:
                continue
            c = contracts[name]
            for ev in list(c.events):  # type: ignore[call-overload]
                try:
                    d = ev.process_log(lg)
                except Exception:  # noqa: BLE001 - not this event's signature
                    continue
                out.append(Event(name, d["event"], int(d["blockNumber"]),
                                 "0x" + bytes(d["transactionHash"]).hex(), int(d["logIndex"]),
                                 dict(d["args"])))
                break
        return out


def deploy_federation(chain: Chain, *, policy: Policy = Policy(),
                      ledger_policy: LedgerPolicy = LedgerPolicy(),
                      min_stake: int = 10**17, leave_delay: int = 10,
                      initial_adapter_cid: bytes = bytes(32),
                      initial_adapter_root: bytes = bytes(32),
                      data_schema: bytes = bytes(32),
                      governor: Sender = 0) -> tuple[Federation, dict[str, Any]]:
    """Deploy and wire PeerRegistry, PrivacyLedger, FedRounds and FraudProofs;
    declare ``data_schema`` (a 32-byte schema hash) on FedRounds unless it is zero.
    ``initial_adapter_root`` is the chunk Merkle root of the initial adapter
    in fixed point (zero: the all-zero adapter); see
    :func:`coordinator.protocol._driver.initial_adapter`. The policy is
    checked first (:func:`check_policy`)."""
    check_policy(policy, development=is_development(chain))
    if len(data_schema) != 32:
        raise ConfigError(f"data_schema must be 32 bytes, got {len(data_schema)}")
    gov = chain.account(governor)
    gas: dict[str, int] = {}
    reg, r1 = chain.deploy("PeerRegistry", gov.address, min_stake, leave_delay, sender=gov)
    led, r2 = chain.deploy("PrivacyLedger", gov.address, ledger_policy.cap_micro,
                           ledger_policy.delta_pico,
                           list(conversion_constants(ledger_policy.delta)), sender=gov)
    rnd, r3 = chain.deploy("FedRounds", gov.address, reg.address, led.address, policy.as_tuple(),
                           initial_adapter_cid, initial_adapter_root, sender=gov)
    frd, r4 = chain.deploy("FraudProofs", rnd.address, sender=gov)
    for name, r in zip(CONTRACT_NAMES, (r1, r2, r3, r4), strict=True):
        gas[name] = r.gas_used
    gas["wiring"] = sum(chain.transact(fn, sender=gov).gas_used for fn in (
        rnd.functions.setFraudProofs(frd.address),
        led.functions.setCharger(rnd.address),
        reg.functions.setSlasher(rnd.address),
    ))
    if any(data_schema):
        gas["data_schema"] = chain.transact(rnd.functions.setDataSchema(data_schema),
                                            sender=gov).gas_used
    addresses: dict[str, str] = {"PeerRegistry": reg.address, "PrivacyLedger": led.address,
                 "FedRounds": rnd.address, "FraudProofs": frd.address}
    record = {
        "chain_id": chain.chain_id,
        "backend": chain.backend,
        "block": r1.block_number,
        "source_hash": source_hash(),
        "deployer": gov.address,
        "contracts": addresses,
        "gas": gas,
        "policy": asdict(policy),
        "ledger_policy": asdict(ledger_policy),
        "data_schema": "0x" + data_schema.hex(),
    }
    return Federation(chain, addresses, governor=gov, deploy_block=r1.block_number), record
