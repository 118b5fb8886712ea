"""A whole federation in a distributed DP mode, in one process: the embedded
chain and content store, the peers' real :class:`nodes._peer.PeerNode` code
with the model, secure aggregation with Skellam noise shares, and the
on-chain ledger charging every survivor from |U3| and k. The demo's
distributed phase and `bench compare`'s distributed arms run it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from coordinator.chain._contracts import Phase
from coordinator.privacy import _noise as nz


#: The one distributed configuration an in-process federation registers.
CONFIG_ID = 2


def _gas(chain: Any, lo: int, hi: int) -> int:
    return sum(int(chain.w3.eth.get_block(b)["gasUsed"]) for b in range(lo, hi + 1))


def drive(fed: Any, driver: Any, nodes: list[Any], r: int) -> None:
    """Step ``nodes`` through round ``r`` until it leaves the waiting phases;
    when a pass moves nothing (someone is missing), mine to the phase's
    deadline and let the driver advance it."""
    from coordinator.protocol._driver import WAITING

    while fed.round_info(r).phase in WAITING:
        phase = fed.round_info(r).phase
        for nd in nodes:
            nd.step(r)
        if fed.round_info(r).phase == phase:
            if driver.tick() is not None:
                continue  # the driver acted (an availability check, say): peers react first
            info = fed.round_info(r)
            fed.chain.mine(max(1, info.deadline - fed.chain.block_number + 1))
            driver.tick()


def run_distributed(*, mode: nz.DPMode, model: Any, parts: list[Any], rounds: int, threshold: int,
                   lr: float, clip: float, sigma: float, k: int, floor_m: int, q: float = 1.0,
                   delta: float = 1e-5, epsilon_cap: float = 50.0, frac_bits: int = 16,
                   epochs: int = 1, optimizer: str = "adam",
                   drop_last_peer_from_round: int | None = None,
                   workdir: Any = None,
                   progress: Callable[[int, np.ndarray], None] | None = None,
                   verify_rounds: bool = False) -> dict[str, Any]:
    """A whole federation in a distributed DP mode, in process (embedded
    chain and store, real peers with the model, secure aggregation, the
    on-chain ledger): returns the final adapter, the ledger's ε, and cost.
    ``parts`` are the peers' data partitions (``.train``), as in compare.py.
    Record level: the first round releases the class counts (the label
    round, :mod:`nodes._distributed`), each later one is one class-weighted
    DP-SGD step (sampling rate ``q``);
    user level: ``q`` must be 1 and each round is one local training pass.
    ``progress(r, adapter)`` sees each finalized round's global adapter;
    ``verify_rounds`` runs the auditors' verify on each posted result."""
    import secrets
    import tempfile
    from pathlib import Path

    from coordinator import connect
    from coordinator.chain._contracts import LedgerPolicy, Policy, deploy_federation
    from coordinator import FedLedgerError
    from coordinator.protocol._aggregate import load_adapter, verify
    from coordinator.protocol._driver import RoundDriver, initial_adapter_args
    from coordinator.store._store import EmbeddedStore
    from nodes._model import get_flat
    from nodes._peer import ModelLearner, PeerNode
    from nodes._state import PeerState
    from nodes._train import TrainConfig

    n, stake = len(parts), 10**17
    start = get_flat(model)
    chain = connect("embedded")
    chain.ensure_accounts(n + 2)
    store = EmbeddedStore()
    # Every peer's transaction of a phase is a block on the embedded chain, so
    # a window must hold n of them (8 blocks lost every round past 8 peers).
    w = max(8, n + 4)
    pol = Policy(participants=n, threshold=threshold, keys_blocks=w, shares_blocks=w,
                 commit_blocks=w, reveal_blocks=w, aggregate_blocks=w, challenge_blocks=1,
                 bond=stake)
    with chain, tempfile.TemporaryDirectory(prefix="fedledger-dist-") as tmp:
        work = Path(workdir or tmp)
        fed, _ = deploy_federation(chain, policy=pol,
                                   ledger_policy=LedgerPolicy(epsilon_cap=epsilon_cap, delta=delta),
                                   **initial_adapter_args(store, start, frac_bits=frac_bits,
                                                          policy=(n, threshold)))
        cfg = nz.distributed_config(config_id=CONFIG_ID, mode=mode, q=q, clip=clip,
                                    frac_bits=frac_bits, dim=len(start), sigma=sigma, k=k, floor_m=floor_m,
                                    max_m=max(floor_m, n))
        fed.register_distributed_config(cfg)
        for i in range(1, n + 1):
            fed.register(sender=i, stake=stake)
        nodes = [PeerNode(fed, store, chain.account(i + 1).address,
                          PeerState(work / f"p{i}.sqlite", secrets.token_bytes(32),
                                    deployment=(chain.chain_id, fed.rounds.address)),
                          ModelLearner(model, parts[i].train,
                                       TrainConfig(lr=lr, epochs=epochs, optimizer=optimizer)))
                 for i in range(n)]
        driver = RoundDriver(fed, store, aggregator=chain.account(1).address, dp_config=CONFIG_ID,
                             vector_length=len(start), frac_bits=frac_bits, rounds=rounds)
        survivors, seconds, gas = [], [], []
        verified = 0
        for _ in range(rounds):
            t0, lo = time.perf_counter(), chain.block_number + 1
            r = int(str(driver.tick()).split()[-1])
            active = nodes[:-1] if (drop_last_peer_from_round is not None
                                    and r >= drop_last_peer_from_round) else nodes
            drive(fed, driver, active, r)
            info = fed.round_info(r)
            if info.phase == Phase.AGGREGATE:
                driver.tick()
                if verify_rounds:
                    bad = [f"{c.name}: {c.detail}" for c in verify(fed, store, r) if not c.ok]
                    if bad:
                        raise FedLedgerError(f"round {r} does not verify: {'; '.join(bad)}")
                    verified += 1
                chain.mine(pol.challenge_blocks + 1)
                driver.tick()
            if fed.round_info(r).phase == Phase.FINAL:  # a released (charged) sum
                survivors.append(fed.round_info(r).n_commits)
            seconds.append(time.perf_counter() - t0)
            gas.append(_gas(chain, lo, chain.block_number))
            if progress is not None:
                progress(r, load_adapter(store, fed.global_adapter_cid()))
        final = load_adapter(store, fed.global_adapter_cid())
        eps = max(fed.epsilon(nd.address) for nd in nodes)
        phases = [fed.round_info(r).phase.name for r in range(1, rounds + 1)]
        label = nodes[0].label_release(CONFIG_ID) or (None, None)
        return {"final": final, "label_round": label[0],
                "class_weights": None if label[1] is None else [float(w) for w in label[1]],
                "start": start, "config": cfg, "epsilon": eps,
                "verified_rounds": verified,
                "epsilon_per_peer": [fed.epsilon(nd.address) for nd in nodes],
                "rdp_micro_per_peer": [fed.rdp_micro(nd.address) for nd in nodes],
                "survivors": survivors,
                "phases": phases, "seconds_per_round": float(np.mean(seconds)),
                "gas_per_round": float(np.mean(gas)),
                "epsilon_dp_accounting": nz.dp_accounting_epsilon(cfg, survivors, delta),
                "epsilon_opacus_gaussian": nz.opacus_gaussian_epsilon(cfg, survivors, delta)}
