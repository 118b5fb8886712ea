"""Participant selection, recomputed from chain data alone.

Mirrors ``FedRounds._select`` (contracts/FedRounds.sol) so that an auditor or
a peer can check who a round selected without trusting the contract's event:
:func:`select` is the pure algorithm, :func:`selection_seed` the seed the
contract derives from the hash of the block ``openRound`` named, and
:func:`recompute` reads the frozen pool and eligibility from the chain and
applies both.

The pool is the first ``poolSize`` registry entries at ``openRound`` (the
registry refuses leaves and withdrawals until the selection, so those entries
stay put; later registrations append after them). A peer is eligible when it
is registered, not quarantined, not leaving, registered at least the
registry's eligibility delay before the round opened, and can afford the
round's DP configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from eth_abi.abi import encode as abi_encode
from eth_hash.auto import keccak

if TYPE_CHECKING:
    from ._contracts import Federation


def selection_seed(block_hash: bytes, round_id: int, rounds_address: str) -> bytes:
    """keccak256(abi.encode(blockhash(target), round, address(FedRounds)))."""
    return keccak(abi_encode(["bytes32", "uint256", "address"], [block_hash, round_id, rounds_address]))


def _draw(seed: bytes, i: int) -> int:
    return int.from_bytes(keccak(abi_encode(["bytes32", "uint256"], [seed, i])), "big")


def select(seed: bytes, pool: Sequence[str], eligible: Callable[[str], bool], want: int) -> list[str]:
    """The contract's selection over ``pool`` (registry order) with ``want``
    participants. Returns fewer than the threshold when too few are eligible
    (the contract then fails the round NotEnoughEligible)."""
    count = len(pool)
    if count <= 2 * want:
        cand = [a for a in pool if eligible(a)]
        m = len(cand)
        chosen = []
        for i in range(min(m, want)):
            j = i + _draw(seed, i) % (m - i)
            cand[i], cand[j] = cand[j], cand[i]
            chosen.append(cand[i])
        return chosen
    chosen, seen = [], set()
    for d in range(4 * want):
        if len(chosen) >= want:
            break
        j = _draw(seed, d) % count
        if j in seen:
            continue
        seen.add(j)
        if eligible(pool[j]):
            chosen.append(pool[j])
    return chosen


def recompute(fed: Federation, round_id: int) -> list[str]:
    """Who round ``round_id`` selected, from the registry and ledger state at
    the block before the selection transaction and the hash of the block the
    round named. Raises ValueError if the round has not been selected."""
    target, pool_size, selected_block = fed.selection_of(round_id)
    if selected_block == 0:
        raise ValueError(f"round {round_id} has no selection yet")
    block_hash = bytes(fed.chain.w3.eth.get_block(target)["hash"])
    seed = selection_seed(block_hash, round_id, fed.rounds.address)
    info = fed.round_info(round_id)
    with fed.snapshot(selected_block - 1):
        pool = [fed.peer_at(i) for i in range(pool_size)]

        def eligible(a: str) -> bool:
            return fed.is_eligible_at(a, info.opened_block) and fed.can_afford(a, info.dp_config)

        return select(seed, pool, eligible, fed.policy().participants)
