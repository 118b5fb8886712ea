"""The centralized-orchestration baseline: a FedAvg server that sees every
update in the clear. No chain, no masks, no content store — what the
decentralized protocol is compared against (issue 7). Training is the
callers' (the same peers, model and DP training as the federation), passed
in as functions, so this package stays free of any model code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

#: A client's local round: (global adapter, round) -> (adapter delta, weight n_u).
Client = Callable[[np.ndarray, int], tuple[np.ndarray, int]]


@dataclass
class CentralFedAvg:
    """FedAvg with a trusted server: new = global + Σ n_u·Δ_u / Σ n_u."""

    clients: Sequence[Client]
    seconds: list[float] = field(default_factory=list)
    bytes_per_client: list[int] = field(default_factory=list)

    def round(self, global_flat: np.ndarray, round_id: int) -> np.ndarray:
        t0 = time.perf_counter()
        acc = np.zeros(len(global_flat), np.float64)
        total = 0
        for client in self.clients:
            delta, weight = client(global_flat, round_id)
            acc += np.asarray(delta, np.float64) * weight
            total += weight
        if total <= 0:
            raise ValueError("no client contributed a positive weight")
        self.seconds.append(time.perf_counter() - t0)
        # Each client downloads the global adapter and uploads its update (float32).
        self.bytes_per_client.append(2 * 4 * len(global_flat))
        return (global_flat.astype(np.float64) + acc / total).astype(np.float32)
