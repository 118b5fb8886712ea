"""Distributed DP: Skellam noise shares, their sum over U3, the accounting
from |U3| and k, and the on-chain charge (noise floor, refunds, modes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from benchmarks.roundsim import RoundSim, setup_federation
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from coordinator import Chain, ContractRevertError
from coordinator._errors import ConfigError
from coordinator.chain._contracts import FailReason, Phase, Policy
from coordinator.privacy import _noise as nz
from coordinator.protocol import _secagg as sa
from coordinator.privacy._privacy import ORDERS, conversion_constants, epsilon_micro

DELTA = 1e-5


def _cfg(mode: nz.DPMode = nz.DPMode.DISTRIBUTED_USER, *, q: float = 1.0, sigma: float = 1.0,
         k: int = 1, floor_m: int = 2, config_id: int = 5, dim: int = 300) -> nz.DistributedConfig:
    return nz.distributed_config(config_id=config_id, mode=mode, q=q, clip=1.0, frac_bits=12,
                                 dim=dim, sigma=sigma, k=k, floor_m=floor_m, max_m=floor_m + 6)


# -- the noise ---------------------------------------------------------------------

def test_sum_of_survivor_shares_is_skellam_by_moments_and_goodness_of_fit() -> None:
    mu, survivors, n = 3.5, 4, 200_000
    total = sum(nz.skellam_share(mu=mu, size=n, rng=nz.noise_rng()) for _ in range(survivors))
    lam = survivors * mu
    # Moments: mean 0, variance 2λ, excess kurtosis 1/(2λ) (Skellam(λ, λ)).
    assert abs(total.mean()) < 4 * math.sqrt(2 * lam / n)
    assert abs(total.var() / (2 * lam) - 1) < 0.02
    assert abs(stats.kurtosis(total) - 1 / (2 * lam)) < 0.05
    # Chi-square goodness of fit against the Skellam pmf, tails pooled.
    lo, hi = -15, 15
    obs = np.array([(total <= lo).sum()] + [(total == v).sum() for v in range(lo + 1, hi)]
                   + [(total >= hi).sum()])
    pmf = stats.skellam(lam, lam)
    exp = np.array([pmf.cdf(lo)] + [pmf.pmf(v) for v in range(lo + 1, hi)] + [pmf.sf(hi - 1)]) * n
    assert stats.chisquare(obs, exp).pvalue > 1e-3
    # ... and the sum of Poisson differences is *not* a Gaussian of that variance at this λ.
    assert stats.skellam(lam, lam).pmf(0) != pytest.approx(stats.norm(0, math.sqrt(2 * lam)).pdf(0),
                                                           rel=1e-3)


def test_noise_generators_are_fresh_and_need_a_secret_seed() -> None:
    a = nz.skellam_share(mu=1e6, size=64, rng=nz.noise_rng())
    b = nz.skellam_share(mu=1e6, size=64, rng=nz.noise_rng())
    assert not np.array_equal(a, b)
    s = b"\x07" * 32
    assert np.array_equal(nz.skellam_share(mu=9.0, size=32, rng=nz.noise_rng(s)),
                          nz.skellam_share(mu=9.0, size=32, rng=nz.noise_rng(s)))
    with pytest.raises(ConfigError):
        nz.noise_rng(b"short")
    with pytest.raises(ConfigError):
        nz.skellam_share(mu=0.0, size=3, rng=nz.noise_rng())


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.integers(0, 2**32 - 1), min_size=8, max_size=8), min_size=1, max_size=6),
       st.integers(0, 2**32 - 1))
def test_shares_added_in_z32_survive_the_sum_exactly(xs: list[list[int]], seed: int) -> None:
    rng = nz.noise_rng(seed.to_bytes(16, "little"))
    qs = [np.array(x, dtype=np.uint32) for x in xs]
    noise = [nz.skellam_share(mu=1e5, size=8, rng=rng) for _ in xs]
    noisy = sum((nz.add_share(q, n).astype(np.uint64) for q, n in zip(qs, noise)), np.zeros(8, np.uint64))
    plain = sum((q.astype(np.int64) for q in qs), np.zeros(8, np.int64)) + sum(noise)
    assert np.array_equal((noisy % 2**32).astype(np.int64), plain % 2**32)


def test_wrap_around_bound_holds_empirically_and_is_negligible_at_defaults() -> None:
    # At a small modulus the bound can be checked against a simulation.
    mu, dim, trials, modulus = 20.0, 4, 50_000, 2**6
    rng = nz.noise_rng()
    x = sum(nz.skellam_share(mu=mu, size=trials * dim, rng=rng) for _ in range(3)).reshape(trials, dim)
    freq = float((np.abs(x + 2) >= modulus // 2).any(axis=1).mean())
    bound = math.exp(nz.wrap_log_probability(mu_total=3 * mu, signal_bound=2, dim=dim,
                                             modulus=modulus))
    assert 0 < freq <= bound < 0.5
    cfg = _cfg(sigma=1.0, floor_m=2)
    lp = nz.wrap_log_probability(mu_total=8 * cfg.mu, signal_bound=8 * cfg.delta2, dim=300)
    assert lp < math.log(1e-30)


# -- the accounting ------------------------------------------------------------------

def test_skellam_bound_is_above_the_exact_one_dimensional_renyi_divergence() -> None:
    # 1-D, shift Δ: D_α(Sk(μ)+Δ || Sk(μ)) computed from the pmf, vs the closed form.
    mu, delta = 40.0, 3
    from scipy.special import logsumexp

    sk = stats.skellam(mu, mu)
    ks = np.arange(-150, 151)  # ±16 standard deviations; the rest is below float precision
    for a in (2, 3, 5, 8):
        exact = logsumexp(a * sk.logpmf(ks - delta) + (1 - a) * sk.logpmf(ks)) / (a - 1)
        xi, rho = nz.zcdp(mu_total=mu, delta2=delta, delta1=delta)
        assert exact <= xi + rho * a
        assert exact >= a * delta**2 / (4 * mu) * 0.9  # and not absurdly loose


@settings(max_examples=25, deadline=None)
@given(st.floats(0.001, 0.5), st.floats(0.5, 5.0))
def test_subsampling_bound_never_below_the_exact_subsampled_gaussian(q: float, sigma: float) -> None:
    from dp_accounting.rdp.rdp_privacy_accountant import _compute_rdp_poisson_subsampled_gaussian

    base = [0.0, 0.0] + [ell / (2 * sigma**2) for ell in range(2, 33)]
    exact = _compute_rdp_poisson_subsampled_gaussian(q, sigma, [float(a) for a in ORDERS])
    for a, e in zip(ORDERS, exact, strict=True):
        ours = nz.poisson_subsampled_rdp(q, base, a)
        assert ours >= e - 1e-12  # float error only; the ledger rounds up to 1e-6
        assert ours <= base[a] + 1e-9  # subsampling never hurts


def test_user_level_charge_equals_dp_accounting_for_u3_and_k() -> None:
    cfg = _cfg(nz.DPMode.DISTRIBUTED_USER, k=1, floor_m=2)
    for survivors in ([5, 5, 5], [3, 4, 9, 6], [3] * 10):
        ours = nz.ledger_epsilon(cfg, survivors, DELTA)
        theirs = nz.dp_accounting_epsilon(cfg, survivors, DELTA)
        assert ours >= theirs - 1e-9
        assert ours == pytest.approx(theirs, abs=2e-5 * len(survivors))
    # k matters: assuming one more colluder costs more ε for the same U3.
    more_k = _cfg(nz.DPMode.DISTRIBUTED_USER, k=2, floor_m=2)
    assert nz.ledger_epsilon(more_k, [6] * 4, DELTA) > nz.ledger_epsilon(cfg, [6] * 4, DELTA)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from([nz.DPMode.DISTRIBUTED_RECORD, nz.DPMode.DISTRIBUTED_USER]),
       st.floats(0.005, 0.3), st.floats(0.6, 3.0), st.integers(0, 2),
       st.lists(st.integers(3, 12), min_size=1, max_size=30))
def test_ledger_never_below_opacus_or_dp_accounting(mode: nz.DPMode, q: float, sigma: float, k: int,
                                                    survivors: list[int]) -> None:
    cfg = _cfg(mode, q=q if mode == nz.DPMode.DISTRIBUTED_RECORD else 1.0, sigma=sigma, k=k, floor_m=1)
    survivors = [max(s, k + 1) for s in survivors]
    ours = nz.ledger_epsilon(cfg, survivors, DELTA)
    assert ours >= nz.opacus_gaussian_epsilon(cfg, survivors, DELTA) - 1e-9
    assert ours >= nz.dp_accounting_epsilon(cfg, survivors, DELTA, gaussian_equivalent=True) - 1e-9
    assert ours >= nz.dp_accounting_epsilon(cfg, survivors, DELTA) - 1e-9


def test_registered_vectors_recompute_and_fall_with_more_noise() -> None:
    cfg = _cfg(nz.DPMode.DISTRIBUTED_RECORD, q=0.02)
    assert nz.recompute(cfg) == cfg.rdp_by_m
    for a, b in zip(cfg.rdp_by_m, cfg.rdp_by_m[1:]):
        assert all(y <= x for x, y in zip(a, b))
    assert cfg.sigma_effective(cfg.floor_m + cfg.k) == pytest.approx(1.0, rel=1e-3)
    assert not cfg.meets_floor(cfg.floor_m + cfg.k - 1)
    with pytest.raises(ConfigError):
        cfg.rdp_for(cfg.floor_m + cfg.k - 1)


@pytest.mark.parametrize("kwargs", [
    {"mode": nz.DPMode.LOCAL}, {"mode": nz.DPMode.DISTRIBUTED_USER, "q": 0.5},
    {"q": 0.0}, {"sigma": 0.0}, {"k": -1}, {"floor_m": 0}, {"config_id": 0},
])
def test_bad_distributed_configs_are_refused_in_a_sentence(kwargs: dict) -> None:
    base = {"config_id": 5, "mode": nz.DPMode.DISTRIBUTED_RECORD, "q": 0.1, "clip": 1.0,
            "frac_bits": 12, "dim": 10, "sigma": 1.0, "k": 1, "floor_m": 2}
    with pytest.raises(ConfigError):
        nz.distributed_config(**{**base, **kwargs})


# -- on-chain: charged from the chain-fixed U3 ------------------------------------------

def _federation(chain: Chain, cfg: nz.DistributedConfig, peers: int = 5):  # type: ignore[no-untyped-def]
    fed, _ = setup_federation(chain, peers=peers)
    fed.register_distributed_config(cfg)
    return fed


def _sim(fed, cfg: nz.DistributedConfig) -> RoundSim:  # type: ignore[no-untyped-def]
    return RoundSim(fed, cfg, vector_length=64, chunk_elems=64)  # type: ignore[arg-type]


def test_distributed_round_charges_every_survivor_from_u3_and_k(embedded_chain: Chain) -> None:
    cfg = _cfg(nz.DPMode.DISTRIBUTED_RECORD, q=0.05, k=1, floor_m=2)
    fed = _federation(embedded_chain, cfg)
    assert fed.dp_mode(cfg.config_id) == nz.DPMode.DISTRIBUTED_RECORD
    assert fed.distributed_config(cfg.config_id) == cfg
    sim = _sim(fed, cfg)
    sim.keys()
    sim.shares()
    sim.commit(drop={4}, noise_mu=float(cfg.mu))
    # Nothing is charged at commit: U3 is not fixed yet.
    assert all(fed.epsilon_micro(p.address) == 0 for p in sim.peers)
    sim.run_to(Phase.REVEAL)
    for p in sim.peers:
        got = fed.rdp_micro(p.address)
        if p.index in sim.u3:
            assert got == cfg.rdp_for(len(sim.u3))
            assert fed.epsilon(p.address) == pytest.approx(
                nz.ledger_epsilon(cfg, [len(sim.u3)], fed.delta()), abs=1e-6)
        else:
            assert not any(got)
    sim.reveal()
    seeds = sim.reconstruct_seeds()
    total = sa.unmask(sim.ctx, sim.masked_sum(), seeds)[:64].astype(np.int64)
    signal = sum(sim.peers[u].signal.astype(np.int64) for u in sim.u3)  # type: ignore[union-attr]
    noise = ((total - signal + 2**31) % 2**32) - 2**31
    # The released sum carries |U3| shares of Skellam(μ) noise: variance 2|U3|μ.
    assert 0.5 < noise.var() / (2 * len(sim.u3) * cfg.mu) < 1.8


def test_round_below_the_noise_floor_is_never_unmasked_and_charges_nothing(embedded_chain: Chain) -> None:
    cfg = _cfg(nz.DPMode.DISTRIBUTED_USER, k=1, floor_m=3)  # needs |U3| ≥ 4
    fed = _federation(embedded_chain, cfg)
    sim = _sim(fed, cfg)
    sim.keys()
    sim.shares()
    sim.commit(drop={0, 1}, noise_mu=float(cfg.mu))  # |U3| = 3 ≥ t but 3 − k < floor
    start = embedded_chain.block_number
    sim.run_to(Phase.FAILED)
    info = fed.round_info(sim.round_id)
    assert info.fail_reason == FailReason.NOISE_BELOW_FLOOR
    assert fed.events("FedRounds", "RoundFailed", start)[0].args["reason"] == FailReason.NOISE_BELOW_FLOOR
    with pytest.raises(ContractRevertError) as e:
        sim.reveal()
    assert e.value.name == "RoundsWrongPhase"
    assert all(fed.epsilon_micro(p.address) == 0 for p in sim.peers)
    assert not fed.events("PrivacyLedger", "BudgetCharged", start)


@pytest.mark.parametrize("reveals", [0, 2])
def test_distributed_charges_are_refunded_only_when_nobody_revealed(embedded_chain: Chain,
                                                                     reveals: int) -> None:
    # Issue 12 item 7: one public reveal plus t−1 colluders' shares is t, so
    # a round short of reveals refunds only if nobody revealed at all.
    cfg = _cfg(nz.DPMode.DISTRIBUTED_USER, k=0, floor_m=3)
    fed = _federation(embedded_chain, cfg)
    sim = _sim(fed, cfg)
    sim.keys()
    sim.shares()
    sim.commit()
    charged = {p.address: fed.epsilon_micro(p.address) for p in sim.peers}
    assert all(v > 0 for v in charged.values())
    sim.reveal(drop={p.index for p in sim.peers[reveals:]})
    sim.run_to(Phase.FAILED)
    after = {p.address: fed.epsilon_micro(p.address) for p in sim.peers}
    assert after == ({a: 0 for a in charged} if reveals == 0 else charged)


def test_local_mode_still_charges_at_commit(embedded_chain: Chain) -> None:
    fed, cfg = setup_federation(embedded_chain, peers=5, policy=Policy(
        participants=5, threshold=3, keys_blocks=20, shares_blocks=20, commit_blocks=20,
        reveal_blocks=20, aggregate_blocks=20, challenge_blocks=3, bond=10**18))
    assert fed.dp_mode(cfg.config_id) == nz.DPMode.LOCAL
    assert fed.noise_floor_met(cfg.config_id, 0)
    sim = RoundSim(fed, cfg)
    sim.keys()
    sim.shares()
    sim.commit(drop={0})
    assert fed.rdp_micro(sim.peers[1].address) == cfg.rdp_micro
    conv = conversion_constants(fed.delta())
    assert fed.epsilon_micro(sim.peers[1].address) == epsilon_micro(cfg.rdp_micro, conv)
    assert fed.epsilon_micro(sim.peers[0].address) == 0


# -- auditors ------------------------------------------------------------------------

def test_auditor_recomputes_distributed_charges_with_two_accountants(embedded_chain: Chain) -> None:
    from ledger_tools._inspect import build_log
    from ledger_tools._verify import verify_budgets

    cfg = _cfg(nz.DPMode.DISTRIBUTED_USER, k=1, floor_m=2, config_id=6)
    fed = _federation(embedded_chain, cfg)
    sim = _sim(fed, cfg)
    sim.keys()
    sim.shares()
    sim.commit(drop={2})
    sim.run_to(Phase.REVEAL)
    # The on-chain charge for the round equals the independent accountant's
    # for its |U3| and k (user level: the Skellam zCDP pair), up to micro-units.
    for u in sim.u3:
        assert fed.epsilon(sim.peers[u].address) == pytest.approx(
            nz.dp_accounting_epsilon(cfg, [len(sim.u3)], fed.delta()), abs=2e-5)
    log = build_log(fed)
    assert log["distributed_configs"][6]["k"] == 1
    verdicts = verify_budgets(fed, log)
    assert verdicts and all(v.ok for v in verdicts), [v for v in verdicts if not v.ok]
    checks = {v.check for v in verdicts}
    assert "dp-accounting ε (independent accountant) never above the ledger's" in checks
    assert any("Skellam" in c for c in checks)
    # A governor that registers vectors for less noise than it declares is flagged.
    bad = nz.DistributedConfig(7, cfg.mode, cfg.q, cfg.mu * 4, cfg.delta2, cfg.delta1, cfg.k,
                               cfg.floor_m, cfg.rdp_by_m)
    fed.register_distributed_config(bad)
    fails = [v for v in verify_budgets(fed, build_log(fed)) if not v.ok]
    assert [v.scope for v in fails] == ["config 7"]
    # A log whose charge names a round below the floor is flagged, not trusted.
    log = build_log(fed)
    for r in log["rounds"]:
        r["U3"] = r["U3"][:2]
    fails = [v for v in verify_budgets(fed, log) if not v.ok]
    assert any(v.check == "distributed charges respect the noise floor" for v in fails)


# -- end to end: peers, training, noise shares, aggregation, on the embedded chain ----------

@pytest.mark.parametrize("mode", [nz.DPMode.DISTRIBUTED_RECORD, nz.DPMode.DISTRIBUTED_USER])
def test_federation_in_distributed_mode_end_to_end(tmp_path, mode: nz.DPMode) -> None:  # type: ignore[no-untyped-def]
    """Tiny encoder, 4 peers, 2 rounds, one peer drops out of round 2: real
    peers train, add Skellam shares at commit, secure aggregation unmasks, the
    ledger charges every survivor from |U3| and k."""
    from nodes._inprocess import run_distributed
    from nodes._data import partition
    from nodes._model import ModelConfig, build_model

    model = build_model(ModelConfig(encoder="tiny", seed=0))
    parts = partition(4, examples_per_peer=20, seed=1)
    res = run_distributed(mode=mode, model=model, parts=parts, rounds=2, threshold=3, lr=1e-2,
                         clip=0.05, sigma=1.0, k=1, floor_m=2,
                         q=0.5 if mode == nz.DPMode.DISTRIBUTED_RECORD else 1.0,
                         drop_last_peer_from_round=2, workdir=tmp_path)
    assert res["phases"] == ["FINAL", "FINAL"] and res["survivors"] == [4, 3]
    # The adapter moved, by about the noise the sum carries, not by a wrapped sum.
    step = np.abs(res["final"] - res["start"]).max()
    assert 0 < step < 1.0
    cfg = res["config"]
    both, first = nz.ledger_epsilon(cfg, [4, 3], 1e-5), nz.ledger_epsilon(cfg, [4], 1e-5)
    assert res["epsilon_per_peer"] == pytest.approx([both, both, both, first], abs=1e-6)
    assert res["epsilon"] >= res["epsilon_opacus_gaussian"]
    assert res["epsilon"] >= res["epsilon_dp_accounting"] - 1e-6


def test_peer_refuses_a_configuration_that_understates_its_privacy_cost() -> None:
    from nodes._distributed import check_config, clip_of

    cfg = _cfg(nz.DPMode.DISTRIBUTED_RECORD, q=0.05, dim=300)
    check_config(cfg, dim=300)
    # The recovered clip is the largest the registered Δ2 accounts for.
    c = clip_of(cfg, frac_bits=12, dim=300)
    assert c * 2**12 + math.sqrt(300) <= cfg.delta2 + 1e-6 and c == pytest.approx(1.0, abs=2**-12)
    # Vectors computed for 4x the declared noise: the ledger would under-charge.
    lying = nz.distributed_config(config_id=5, mode=cfg.mode, q=cfg.q, clip=1.0, frac_bits=12,
                                  dim=300, sigma=2.0, k=cfg.k, floor_m=cfg.floor_m,
                                  max_m=cfg.max_m)
    forged = nz.DistributedConfig(5, cfg.mode, cfg.q, cfg.mu, cfg.delta2, cfg.delta1, cfg.k,
                                  cfg.floor_m, lying.rdp_by_m)
    with pytest.raises(ConfigError, match="not those of"):
        check_config(forged, dim=300)
    # An L1 sensitivity too small for the vector length hides the ξ term.
    small_l1 = nz.DistributedConfig(5, cfg.mode, cfg.q, cfg.mu, cfg.delta2, 0, cfg.k,
                                    cfg.floor_m, cfg.rdp_by_m)
    with pytest.raises(ConfigError, match="Δ1"):
        check_config(small_l1, dim=300)


def test_verify_dp_accounting_check_logs_no_absl_warnings(caplog) -> None:
    """`audit verify --all` on a record-level federation (q 0.25, σ 1.5, 3
    peers, 2 rounds) printed 42 absl 'failed to converge' warnings from
    dp-accounting's fractional orders; leaving those orders out only raises
    its ε, so they are silenced."""
    import logging

    from ledger_tools._verify import _dp_accounting

    cfg = nz.distributed_config(config_id=1, mode=nz.DPMode.DISTRIBUTED_RECORD, q=0.25,
                                clip=0.01, frac_bits=16, dim=7936, sigma=1.5, k=0,
                                floor_m=2, max_m=3)
    before = logging.getLogger("absl").level
    with caplog.at_level(logging.WARNING):
        eps = _dp_accounting([(cfg, 3), (cfg, 3)], 1e-5)
    assert not [r for r in caplog.records if r.name == "absl"], caplog.text[:500]
    assert logging.getLogger("absl").level == before
    # Its default orders include the ledger's: never above dp-accounting on those alone.
    assert math.isfinite(eps) and 0 < eps <= nz.dp_accounting_epsilon(cfg, [3, 3], 1e-5) + 1e-9


# -- class balance at record level: the label round and the class weights ------------------

@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                          st.integers(-2**31, 2**31 - 1).map(float)), min_size=0, max_size=6))
def test_class_weights_stay_in_their_bounds_whatever_a_label_round_released(released) -> None:
    """The release is public and any survivor can skew it (its vector is
    unchecked, issue 16): whatever it holds, every weight is in (0, 1], so a
    record still moves a step by at most the clip, and no class is weighed
    below the floor relative to the heaviest."""
    from nodes._distributed import class_weights

    w = class_weights(np.array(released, dtype=np.float64), floor=0.05)
    if w is None:
        return
    assert len(w) == len(released) and np.all(np.isfinite(w))
    assert np.all(w > 0) and np.all(w <= 1) and w.max() == 1.0
    assert w.min() >= 0.05 * (1 / len(w)) - 1e-12  # floor·mean ≤ a count ≤ Σ = len·mean


def test_class_weights_undo_the_unions_prior() -> None:
    from nodes._distributed import class_weights

    w = class_weights(np.array([300.0, 100.0]))
    assert w == pytest.approx([1 / 3, 1.0])
    assert (w * [300, 100]).tolist() == pytest.approx([100, 100])  # each class weighs the same
    assert class_weights(np.array([0.0, 0.0])) is None and class_weights(np.array([5.0])) is None


@pytest.mark.parametrize("what", ["label", "weighted step"])
def test_one_record_moves_a_label_round_and_a_weighted_step_by_at_most_the_clip(what: str) -> None:
    """The sensitivity the ledger charges for: adding any one record to a
    peer's data moves its record-level contribution by ≤ clip in L2, in the
    label round and in a class-weighted DP-SGD step (q = 1: the same records)."""
    from nodes._data import generate
    from nodes._distributed import label_vector, record_sum
    from nodes._model import ModelConfig, build_model, get_flat, output_bias_slots

    model = build_model(ModelConfig(encoder="tiny", seed=0))
    flat, slots, clip = get_flat(model), output_bias_slots(model), 0.3
    assert len(slots) == 2 and slots.max() < len(flat)
    data = generate(16, seed=4)
    weights = np.array([0.4, 1.0])
    moved = []
    for extra in range(12, 16):
        base, more = data.subset(np.arange(12)), data.subset(np.r_[np.arange(12), extra])
        if what == "label":
            a, _ = label_vector(base, len(flat), slots, q=1.0, clip=clip, rng=np.random.default_rng(0))
            b, _ = label_vector(more, len(flat), slots, q=1.0, clip=clip, rng=np.random.default_rng(0))
        else:
            a, _ = record_sum(model, base, flat, q=1.0, clip=clip, lr=0.5, weights=weights,
                              rng=np.random.default_rng(0))
            b, _ = record_sum(model, more, flat, q=1.0, clip=clip, lr=0.5, weights=weights,
                              rng=np.random.default_rng(0))
        moved.append(float(np.linalg.norm(b - a)))
    assert max(moved) <= clip + 1e-9 and min(moved) > 0
    if what == "label":  # exactly clip at the record's class slot, nothing anywhere else
        assert sorted(set(np.round(moved, 9))) == [clip]
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        record_sum(model, data, flat, q=1.0, clip=clip, lr=0.5, weights=np.array([1.5, 1.0]),
                   rng=np.random.default_rng(0))


def test_record_level_federation_releases_the_unions_class_counts_in_its_first_round(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Round 1 of a record-level configuration is its label round: the chain's
    adapter moves by clip·(class share) at the output bias, every peer reads
    the counts back from the two chain-verified adapters, and weighs its
    records by them from round 2 on. The union here is 3:1 by construction."""
    from nodes._data import generate
    from nodes._inprocess import run_distributed
    from nodes._model import ModelConfig, build_model, output_bias_slots

    model = build_model(ModelConfig(encoder="tiny", seed=0))
    slots = output_bias_slots(model)
    parts = []
    for i in range(4):
        ex = generate(160, seed=10 + i)
        pos, neg = np.flatnonzero(ex.labels == 1)[:10], np.flatnonzero(ex.labels == 0)[:30]
        parts.append(type("Part", (), {"train": ex.subset(np.r_[pos, neg])})())
    seen: list[np.ndarray] = []
    res = run_distributed(mode=nz.DPMode.DISTRIBUTED_RECORD, model=model, parts=parts, rounds=3,
                          threshold=3, lr=0.1, clip=0.1, sigma=1.0, k=1, floor_m=2, q=1.0,
                          workdir=tmp_path, progress=lambda r, a: seen.append(a.copy()))
    assert res["phases"] == ["FINAL"] * 3 and res["label_round"] == 1
    share = (seen[0] - res["start"])[slots] / 0.1  # the adapter moved by clip · count_y / N
    assert share == pytest.approx([0.75, 0.25], abs=0.05)
    assert res["class_weights"] == pytest.approx([1 / 3, 1.0], abs=0.06)
    others = np.setdiff1d(np.arange(len(res["start"])), slots)
    assert np.abs(seen[0] - res["start"])[others].max() < 0.02  # noise only: no gradient step
    import sqlite3  # every peer kept the release: a restart fetches no old adapter

    for i in range(4):
        with sqlite3.connect(tmp_path / f"p{i}.sqlite") as db:
            rows = db.execute("SELECT round, sealed FROM kv WHERE name = 'label_release'").fetchall()
        assert rows == [(1, 1)]


def test_per_record_gradients_sum_to_the_batch_gradient_for_channels_last_images() -> None:
    """Images loaded from files arrive as a channels-last view (H, W, C
    transposed): Opacus 1.6's per-sample Conv2d gradients were wrong for it
    (every conv weight but the first was 0 in the record level's sum on the
    digits example), so the record level and pooled DP-SGD trained the image
    tower on garbage. Unclipped, the per-record sum must be the gradient."""
    from torch import nn

    from nodes._data import generate
    from nodes._distributed import record_sum
    from nodes._model import ModelConfig, build_model, get_flat, set_flat, trainable

    model = build_model(ModelConfig(encoder="tiny", seed=0, image_tower="photo", image_size=16))
    from dataclasses import replace

    data = generate(12, seed=5)
    hwc = np.ascontiguousarray(np.resize(data.images, (12, 3, 16, 16)).transpose(0, 2, 3, 1))
    data = replace(data, images=hwc.transpose(0, 3, 1, 2))  # as decoded from H×W×C files
    assert not data.images.flags["C_CONTIGUOUS"]
    flat = get_flat(model)
    v, _ = record_sum(model, data, flat, q=1.0, clip=1e9, lr=1.0, rng=np.random.default_rng(0))
    set_flat(model, flat)
    model.train()
    t = model.encode(data)
    for _, p in trainable(model):
        p.grad = None
    nn.CrossEntropyLoss(reduction="sum")(model(*t[:-1]), t[-1]).backward()
    want = np.concatenate([p.grad.detach().numpy().ravel() for _, p in trainable(model)])
    np.testing.assert_allclose(-v, want, rtol=1e-4, atol=1e-5)
