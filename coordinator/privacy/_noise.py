"""Distributed integer noise (Skellam) and its accounting from |U3| and k.

In the *distributed* DP modes no peer adds enough noise to protect its own
update. Each peer adds a **share**: an integer vector drawn i.i.d. from the
symmetric Skellam distribution Sk(μ) = Poisson(μ) − Poisson(μ) (variance 2μ),
added to its quantized update in Z_2^32 before masking. Skellam is closed
under summation, so the noise in the released sum of the survivors U3 is
*exactly* Sk(|U3|·μ); with up to k survivors assumed to collude (their
shares known to the adversary) the protecting noise is Sk((|U3| − k)·μ).
(Agarwal, Kairouz, Liu 2021, "The Skellam Mechanism for Differentially
Private Federated Learning".) Why Skellam and not the distributed discrete
Gaussian is in docs/decisions.md.

Accounting, per released sum, with m = |U3| − k noisy shares:

* base mechanism (sum + Sk(mμ)), L2 / L1 sensitivities Δ2, Δ1 in integer
  units: (ξ, ρ)-zCDP with ρ = Δ2²/(4mμ), ξ = 3Δ1/(4mμ) — the second branch
  of Agarwal et al. Thm 3.5's min, so RDP(α) = ξ + ρα at every order;
* user level (DP-FedAvg): one peer's whole update changes, no amplification
  (the participant set is public on-chain, so selection is not secret);
* record level: each peer Poisson-samples its records with rate q from a
  secret CSPRNG, so the round is one Poisson-subsampled release; RDP by the
  general upper bound for Poisson subsampling of Zhu & Wang (2019, Thm 6),
  valid for any base mechanism at integer orders (the ledger's orders are).

Sensitivity after stochastic rounding: with the rounding coins fixed, each
coordinate of Q(x) − Q(x') is at most |x_i − x'_i| + 1, so
Δ2 ≤ C·2^f + √d and Δ1 ≤ √d·Δ2; averaging over the data-independent coins
keeps the RDP bound (joint convexity of the Rényi divergence).

Noise is drawn from a generator seeded from the OS CSPRNG (``secrets``);
``seed`` is the single plumbing point for a sealed per-round secret seed
(never derive it from public data).
"""

from __future__ import annotations

import enum
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._errors import ConfigError
from ._privacy import (MICRO, ORDERS, _ceil_micro, conversion_constants, epsilon_micro,
                       rdp_epsilon)

MODULUS = 2**32
HALF = 2**31


class DPMode(enum.IntEnum):
    """Mirrors IPrivacyLedger.DPMode."""

    LOCAL = 0
    DISTRIBUTED_RECORD = 1
    DISTRIBUTED_USER = 2


# ----------------------------------------------------------------- sampling

def noise_rng(seed: bytes | None = None) -> np.random.Generator:
    """A generator for noise shares: from ``seed`` (a secret of ≥ 16 bytes,
    e.g. the sealed per-round seed) or, by default, 256 fresh OS-CSPRNG bits."""
    if seed is None:
        seed = secrets.token_bytes(32)
    if not isinstance(seed, bytes) or len(seed) < 16:
        raise ConfigError("a noise seed must be at least 16 secret bytes")
    return np.random.Generator(np.random.PCG64DXSM(int.from_bytes(seed, "little")))


def skellam_share(*, mu: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """One peer's noise share: ``size`` i.i.d. Sk(μ) values as int64."""
    if not mu > 0 or not math.isfinite(mu):
        raise ConfigError(f"Skellam parameter mu={mu} must be a positive number")
    if size < 0:
        raise ConfigError(f"size={size} must be non-negative")
    return rng.poisson(mu, size).astype(np.int64) - rng.poisson(mu, size).astype(np.int64)


def add_share(q: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Add an integer noise share to a quantized uint32 vector, mod 2^32."""
    if q.shape != noise.shape:
        raise ConfigError(f"noise length {noise.shape} does not match update {q.shape}")
    out: np.ndarray = ((q.astype(np.int64) + noise) % MODULUS).astype(np.uint32)
    return out


def wrap_log_probability(*, mu_total: float, signal_bound: float, dim: int,
                         modulus: int = MODULUS) -> float:
    """log of an upper bound on P(some coordinate of the noisy sum wraps
    around Z_modulus), i.e. |signal + Sk(μ_total)| ≥ modulus/2 with |signal| ≤
    ``signal_bound`` per coordinate. Chernoff on the Skellam MGF
    E e^{λX} = exp(2μ(cosh λ − 1)) at λ = asinh(t/2μ), both tails, union
    bound over ``dim`` coordinates."""
    t = modulus // 2 - signal_bound
    if t <= 0 or mu_total <= 0:
        return 0.0
    lam = math.asinh(t / (2 * mu_total))
    log_tail = 2 * mu_total * (math.cosh(lam) - 1) - lam * t
    return min(0.0, math.log(2 * dim) + log_tail)


# --------------------------------------------------------------- accounting

def sensitivities(*, clip: float, frac_bits: int, dim: int) -> tuple[int, int]:
    """(Δ2, Δ1) in integer units of one peer's quantized contribution whose
    L2 norm is clipped to ``clip`` before quantization with scale 2^frac_bits."""
    if not clip > 0:
        raise ConfigError(f"clip={clip} must be positive")
    if dim < 1:
        raise ConfigError(f"dim={dim} must be positive")
    d2 = math.ceil(clip * 2**frac_bits + math.sqrt(dim))
    return d2, math.ceil(math.sqrt(dim) * d2)


def zcdp(*, mu_total: float, delta2: float, delta1: float) -> tuple[float, float]:
    """(ξ, ρ) of the Skellam mechanism Sk(μ_total) with these sensitivities."""
    return 3 * delta1 / (4 * mu_total), delta2**2 / (4 * mu_total)


def _logsumexp(xs: Sequence[float]) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def _log_binom(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def poisson_subsampled_rdp(q: float, base: Sequence[float], alpha: int) -> float:
    """Zhu & Wang (2019) Thm 6: RDP at integer order α ≥ 2 of Poisson
    subsampling with rate q of a mechanism whose RDP at order ℓ is
    ``base[ℓ]`` (ℓ = 2..α)."""
    if alpha < 2:
        raise ConfigError(f"order {alpha} must be an integer ≥ 2")
    if q >= 1:
        return float(base[alpha])
    lq, l1q = math.log(q), math.log1p(-q)
    terms = [(alpha - 1) * l1q + math.log1p(alpha * q - q),
             _log_binom(alpha, 2) + 2 * lq + (alpha - 2) * l1q + base[2]]
    for ell in range(3, alpha + 1):
        terms.append(math.log(3) + _log_binom(alpha, ell) + (alpha - ell) * l1q + ell * lq
                     + (ell - 1) * base[ell])
    # Subsampling never hurts (joint convexity), and Thm 6's factor 3 can
    # exceed the base at large q: take the smaller of the two sound bounds.
    return min(float(base[alpha]), max(0.0, _logsumexp(terms) / (alpha - 1)))


def skellam_rdp(*, q: float, mu_total: float, delta2: float, delta1: float,
                orders: Sequence[int] = ORDERS) -> list[float]:
    """RDP of one release of the (subsampled, rate q) Skellam mechanism."""
    xi, rho = zcdp(mu_total=mu_total, delta2=delta2, delta1=delta1)
    top = max(orders)
    base = [0.0, 0.0] + [xi + rho * ell for ell in range(2, top + 1)]
    return [poisson_subsampled_rdp(q, base, int(a)) for a in orders]


@dataclass(frozen=True, slots=True)
class DistributedConfig:
    """A distributed-DP configuration as registered on-chain.

    ``rdp_by_m[i]`` is the RDP vector (micro-units, rounded up) charged to
    every survivor of a round with m = floor_m + i noisy shares
    (m = |U3| − k); rounds with more than ``floor_m + len(rdp_by_m) − 1``
    noisy shares are charged the last vector (less noise assumed: safe)."""

    config_id: int
    mode: DPMode
    q: float
    mu: int
    delta2: int
    delta1: int
    k: int
    floor_m: int
    rdp_by_m: tuple[tuple[int, ...], ...]

    @property
    def q_ppm(self) -> int:
        return round(self.q * MICRO)

    @property
    def max_m(self) -> int:
        return self.floor_m + len(self.rdp_by_m) - 1

    def noisy(self, survivors: int) -> int:
        """m = |U3| − k, the shares assumed unknown to the adversary."""
        return max(0, survivors - self.k)

    def meets_floor(self, survivors: int) -> bool:
        return self.noisy(survivors) >= self.floor_m

    def rdp_for(self, survivors: int) -> tuple[int, ...]:
        """The vector the ledger charges each survivor for |U3| = survivors."""
        m = self.noisy(survivors)
        if m < self.floor_m:
            raise ConfigError(f"{survivors} survivors leave {m} noisy shares, below the floor "
                              f"{self.floor_m}: the sum must not be unmasked")
        return self.rdp_by_m[min(m, self.max_m) - self.floor_m]

    def sigma_effective(self, survivors: int) -> float:
        """Gaussian-equivalent noise multiplier √(2mμ)/Δ2 of the released sum."""
        return math.sqrt(2 * min(self.noisy(survivors), self.max_m) * self.mu) / self.delta2


def distributed_config(*, config_id: int, mode: DPMode, q: float, clip: float, frac_bits: int,
                       dim: int, sigma: float, k: int, floor_m: int, max_m: int | None = None
                       ) -> DistributedConfig:
    """Choose each peer's μ so that ``floor_m`` noisy shares give a sum with
    Gaussian-equivalent noise multiplier ``sigma``, and compute the RDP
    vectors for m = floor_m..max_m (default floor_m + 16)."""
    if not isinstance(config_id, int) or not 0 < config_id < 2**32:
        raise ConfigError(f"config id {config_id!r} must be an integer in 1..2^32-1")
    mode = DPMode(mode)
    if mode == DPMode.LOCAL:
        raise ConfigError("a distributed configuration needs a distributed mode; "
                          "register local configurations with dp_config")
    if mode == DPMode.DISTRIBUTED_USER and q != 1:
        raise ConfigError("user-level mode takes q=1: the on-chain selection is public, so it "
                          "gives no amplification")
    if not 0 < q <= 1:
        raise ConfigError(f"sampling rate q={q} must be in (0, 1]")
    if not sigma > 0:
        raise ConfigError(f"noise multiplier sigma={sigma} must be positive")
    if not isinstance(k, int) or k < 0:
        raise ConfigError(f"collusion bound k={k!r} must be a non-negative integer")
    if not isinstance(floor_m, int) or floor_m < 1:
        raise ConfigError(f"noise floor {floor_m!r} must be a positive number of shares")
    max_m = floor_m + 16 if max_m is None else max_m
    if max_m < floor_m or max_m - floor_m > 255:
        raise ConfigError(f"max_m={max_m} must be in floor_m..floor_m+255")
    d2, d1 = sensitivities(clip=clip, frac_bits=frac_bits, dim=dim)
    mu = math.ceil(sigma**2 * d2**2 / (2 * floor_m))
    if mu >= 2**64:
        raise ConfigError(f"per-peer noise mu={mu} does not fit 64 bits; lower frac_bits")
    vecs = tuple(tuple(_ceil_micro(r) for r in skellam_rdp(q=q, mu_total=m * mu, delta2=d2,
                                                             delta1=d1))
                 for m in range(floor_m, max_m + 1))
    return DistributedConfig(config_id, mode, q, mu, d2, d1, k, floor_m, vecs)


def recompute(cfg: DistributedConfig) -> tuple[tuple[int, ...], ...]:
    """An auditor's recomputation of the registered vectors from (q, μ, Δ2, Δ1)."""
    return tuple(tuple(_ceil_micro(r) for r in skellam_rdp(
        q=cfg.q, mu_total=m * cfg.mu, delta2=cfg.delta2, delta1=cfg.delta1))
        for m in range(cfg.floor_m, cfg.max_m + 1))


def ledger_epsilon(cfg: DistributedConfig, survivors_per_round: Sequence[int], delta: float) -> float:
    """ε the ledger reports after these rounds (fixed point, as on-chain)."""
    total = [0] * len(ORDERS)
    for s in survivors_per_round:
        total = [min(a + b, 2**32 - 1) for a, b in zip(total, cfg.rdp_for(s), strict=True)]
    return epsilon_micro(total, conversion_constants(delta)) / MICRO


def dp_accounting_epsilon(cfg: DistributedConfig, survivors_per_round: Sequence[int],
                          delta: float, *, gaussian_equivalent: bool = False) -> float:
    """ε by Google's ``dp-accounting`` (an accountant independent of ours and
    of Opacus) over the ledger's orders.

    User level: the Skellam mechanism composed as ZCDpEvent(ξ, ρ) per round —
    the same mechanism the ledger charges, so the two agree up to fixed-point
    rounding. Record level (or ``gaussian_equivalent``): dp-accounting has no
    subsampled-Skellam event, so this is the Poisson-subsampled *Gaussian*
    of the same variance, a lower bound the ledger must never go below."""
    import dp_accounting as dpa
    from dp_accounting.rdp import RdpAccountant

    acc = RdpAccountant(orders=[float(a) for a in ORDERS])
    for s in survivors_per_round:
        m = min(cfg.noisy(s), cfg.max_m)
        if cfg.q >= 1 and not gaussian_equivalent:
            xi, rho = zcdp(mu_total=m * cfg.mu, delta2=cfg.delta2, delta1=cfg.delta1)
            acc.compose(dpa.ZCDpEvent(xi=xi, rho=rho))
        else:
            sigma = math.sqrt(2 * m * cfg.mu) / cfg.delta2
            acc.compose(dpa.PoissonSampledDpEvent(cfg.q, dpa.GaussianDpEvent(sigma)))
    return float(acc.get_epsilon(delta))


def opacus_gaussian_epsilon(cfg: DistributedConfig, survivors_per_round: Sequence[int],
                            delta: float) -> float:
    """ε by Opacus' RDP accountant (its default orders) for the
    Gaussian-equivalent mechanism: the ledger never reports less."""
    return rdp_epsilon([(math.sqrt(2 * min(cfg.noisy(s), cfg.max_m) * cfg.mu) / cfg.delta2,
                         cfg.q, 1) for s in survivors_per_round], delta)
