"""DP configurations and the on-chain privacy ledger's fixed-point arithmetic.

One function, :func:`dp_config`, turns (q, σ, steps) into what the governor
registers on-chain: the configuration's RDP vector over the ledger's seven
fixed orders, in micro-units rounded *up*. The same module converts RDP to ε
exactly as ``PrivacyLedger`` does, with the conversion constants of Balle et
al. (2020, Thm. 21) — the one Opacus' RDP accountant uses — also rounded up.

Why it stays conservative: for each order the on-chain value is ≥ the exact
RDP (rounded up, summed in integers) and c_α is ≥ the exact constant, so each
candidate ε_α is ≥ the exact one; the min over our 7 orders is ≥ the min over
any superset of orders (e.g. Opacus' default 150), so the ledger never
reports less ε than Opacus' RDP accountant for the same history. Tests check
both directions: never below, and within fixed-point rounding when Opacus
uses our orders.
"""

from __future__ import annotations

import functools

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .._errors import ConfigError

#: The ledger's fixed orders α (PrivacyLedger.orders()).
ORDERS: tuple[int, ...] = (2, 3, 5, 8, 12, 20, 32)
MICRO = 1_000_000
LANE_MAX = 2**32 - 1  # a saturated lane counts as infinite


def _ceil_micro(x: float) -> int:
    if math.isnan(x) or x < 0:
        raise ConfigError(f"RDP value {x} is not a non-negative number")
    v = math.ceil(x * MICRO)
    while v / MICRO < x:  # guard against float error rounding below x
        v += 1
    return min(v, LANE_MAX)


@dataclass(frozen=True, slots=True)
class DPConfig:
    """A DP-SGD configuration as registered on-chain."""

    config_id: int
    q: float
    sigma: float
    steps: int
    rdp_micro: tuple[int, ...]

    @property
    def q_ppm(self) -> int:
        return round(self.q * MICRO)

    @property
    def sigma_milli(self) -> int:
        return round(self.sigma * 1000)


@functools.lru_cache(maxsize=1024)
def rdp_curve(q: float, sigma: float, steps: int, orders: tuple[float, ...]) -> tuple[float, ...]:
    """Opacus' RDP of ``steps`` subsampled Gaussian steps at each order,
    memoised: a pure function of its arguments, and every peer of a round
    (and every round of a configuration) asks for the same one — uncached it
    was a quarter of the demo's time (fractional orders are slow)."""
    from opacus.accountants.analysis.rdp import compute_rdp

    return tuple(float(r) for r in compute_rdp(q=q, noise_multiplier=sigma, steps=steps,
                                               orders=list(orders)))


def dp_config(*, config_id: int, q: float, sigma: float, steps: int) -> DPConfig:
    """The configuration and its one-round RDP vector over :data:`ORDERS`."""
    if not isinstance(config_id, int) or not 0 < config_id < 2**32:
        raise ConfigError(f"config id {config_id!r} must be an integer in 1..2^32-1")
    if not 0 < q <= 1:
        raise ConfigError(f"sampling rate q={q} must be in (0, 1]")
    if not sigma > 0:
        raise ConfigError(f"noise multiplier sigma={sigma} must be positive")
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps={steps!r} must be a positive integer")
    rdp = rdp_curve(float(q), float(sigma), steps, tuple(ORDERS))
    return DPConfig(config_id, q, sigma, steps, tuple(_ceil_micro(float(r)) for r in rdp))


def conversion_constants(delta: float) -> tuple[int, ...]:
    """c_α = log((α−1)/α) − (log δ + log α)/(α−1), micro-units, rounded up,
    clamped at 0 (a clamp only raises ε, so it stays conservative)."""
    if not 0 < delta < 1:
        raise ConfigError(f"delta={delta} must be in (0, 1)")
    out = []
    for a in ORDERS:
        c = math.log((a - 1) / a) - (math.log(delta) + math.log(a)) / (a - 1)
        out.append(_ceil_micro(max(c, 0.0)))
    return tuple(out)


def add_rdp(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """Lane-wise saturating addition (PrivacyLedger._add)."""
    return tuple(min(x + y, LANE_MAX) for x, y in zip(a, b, strict=True))


def epsilon_micro(rdp_micro: Sequence[int], conv_micro: Sequence[int]) -> int:
    """PrivacyLedger._epsilon: min over finite lanes of rdp + c; 0 if nothing charged."""
    if not any(rdp_micro):
        return 0
    finite = [r + c for r, c in zip(rdp_micro, conv_micro, strict=True) if r != LANE_MAX]
    return min(finite) if finite else 2**64 - 1


def opacus_epsilon(history: Sequence[DPConfig], delta: float,
                   orders: Sequence[float] | None = None) -> float:
    """ε of a peer's history by Opacus' RDP analysis (default: Opacus' orders)."""
    return rdp_epsilon([(c.sigma, c.q, c.steps) for c in history], delta, orders)


def rdp_epsilon(history: Sequence[tuple[float, float, int]], delta: float,
                orders: Sequence[float] | None = None) -> float:
    """ε of (σ, q, steps) mechanisms composed, by Opacus' RDP analysis over the
    memoised curves: what Opacus' ``RDPAccountant`` reports for that history."""
    import warnings

    from opacus.accountants.analysis.rdp import get_privacy_spent
    from opacus.accountants.rdp import RDPAccountant

    if not history:
        return 0.0
    alphas = tuple(orders) if orders is not None else tuple(RDPAccountant.DEFAULT_ALPHAS)
    total = [0.0] * len(alphas)
    for sigma, q, steps in history:
        curve = rdp_curve(float(q), float(sigma), int(steps), alphas)
        total = [t + r for t, r in zip(total, curve, strict=True)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eps, _ = get_privacy_spent(orders=list(alphas), rdp=total, delta=delta)
    return float(eps)
