"""The on-chain ledger's ε against Opacus' RDP accountant, for the same history."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from benchmarks.roundsim import STAKE

from coordinator import Chain, ConfigError, ContractRevertError
from coordinator.chain._contracts import LedgerPolicy, deploy_federation
from coordinator.privacy._privacy import (
    LANE_MAX,
    ORDERS,
    add_rdp,
    conversion_constants,
    dp_config,
    epsilon_micro,
    opacus_epsilon,
)

DELTA = 1e-5
configs = st.builds(
    lambda q, s, t: dp_config(config_id=1, q=q, sigma=s, steps=t),
    st.floats(0.001, 0.3), st.floats(0.6, 4.0), st.integers(1, 400))


@settings(max_examples=60, deadline=None)
@given(cfg=configs, k=st.integers(1, 30))
def test_ledger_epsilon_never_below_opacus_and_tight_on_its_orders(cfg, k) -> None:
    conv = conversion_constants(DELTA)
    rdp = tuple([0] * len(ORDERS))
    for _ in range(k):
        rdp = add_rdp(rdp, cfg.rdp_micro)
    ours = epsilon_micro(rdp, conv) / 1e6
    history = [cfg] * k
    # Never below Opacus with its default 150 orders...
    assert ours >= opacus_epsilon(history, DELTA) - 1e-9
    # ...and equal (up to fixed-point rounding) when Opacus uses our orders,
    # unless a lane saturated (then that order counts as infinite: larger ε).
    exact = opacus_epsilon(history, DELTA, orders=ORDERS)
    assert ours >= exact - 1e-9
    if all(r < LANE_MAX for r in rdp):
        assert ours <= exact + (k + 2) * 1e-6


def test_contract_epsilon_after_k_rounds_matches_opacus(embedded_chain: Chain) -> None:
    fed, _ = deploy_federation(embedded_chain, ledger_policy=LedgerPolicy(epsilon_cap=50.0,
                                                                          delta=DELTA))
    cfgs = [dp_config(config_id=1, q=0.02, sigma=1.0, steps=50),
            dp_config(config_id=2, q=0.05, sigma=1.5, steps=30)]
    for c in cfgs:
        fed.register_config(c)
    assert fed.conversion() == conversion_constants(DELTA)
    # Charge through the ledger as the rounds contract would: impersonate by
    # deploying a second ledger whose charger is the governor.
    from coordinator.privacy._privacy import conversion_constants as cc

    ledger, _ = embedded_chain.deploy("PrivacyLedger", embedded_chain.accounts[0].address,
                                      50_000_000, 10_000_000, list(cc(DELTA)))
    embedded_chain.transact(ledger.functions.setCharger(embedded_chain.accounts[0].address))
    for c in cfgs:
        embedded_chain.transact(ledger.functions.registerConfig(
            c.config_id, c.q_ppm, c.sigma_milli, c.steps, list(c.rdp_micro)))
    peer = embedded_chain.accounts[5].address
    embedded_chain.transact(ledger.functions.prepare(peer))
    history = []
    for r, c in enumerate([cfgs[0], cfgs[1], cfgs[0], cfgs[0], cfgs[1]], start=1):
        rcpt = embedded_chain.transact(ledger.functions.charge(peer, r, c.config_id))
        history.append(c)
        on_chain = embedded_chain.call(ledger.functions.epsilonOf(peer)) / 1e6
        assert on_chain >= opacus_epsilon(history, DELTA) - 1e-9
        assert on_chain <= opacus_epsilon(history, DELTA, orders=ORDERS) + 1e-5
        assert rcpt.gas_used < 60_000
    # A charge over the cap is refused with the named error and changes nothing.
    cap_ledger, _ = embedded_chain.deploy("PrivacyLedger", embedded_chain.accounts[0].address,
                                          1, 10_000_000, list(cc(DELTA)))
    embedded_chain.transact(cap_ledger.functions.setCharger(embedded_chain.accounts[0].address))
    c = cfgs[0]
    embedded_chain.transact(cap_ledger.functions.registerConfig(
        c.config_id, c.q_ppm, c.sigma_milli, c.steps, list(c.rdp_micro)))
    with pytest.raises(ContractRevertError) as e:
        embedded_chain.transact(cap_ledger.functions.charge(peer, 1, 1))
    assert e.value.name == "LedgerBudgetExceeded"
    assert e.value.args_by_name["cap"] == 1
    assert embedded_chain.call(cap_ledger.functions.epsilonOf(peer)) == 0


def test_only_the_charger_and_governor_can_write(embedded_chain: Chain) -> None:
    fed, _ = deploy_federation(embedded_chain)
    fed.register(sender=3, stake=STAKE)
    cfg = dp_config(config_id=7, q=0.01, sigma=1.0, steps=10)
    with pytest.raises(ContractRevertError) as e:
        fed.register_config(cfg, sender=3)
    assert e.value.name == "LedgerUnauthorized"
    with pytest.raises(ContractRevertError) as e:
        embedded_chain.transact(fed.ledger.functions.charge(embedded_chain.accounts[3].address, 1, 7),
                                sender=3)
    assert e.value.name == "LedgerUnauthorized"
    fed.register_config(cfg)
    with pytest.raises(ContractRevertError) as e:
        fed.register_config(cfg)
    assert e.value.name == "LedgerConfigExists"


@pytest.mark.parametrize("kwargs", [dict(q=0, sigma=1, steps=1), dict(q=0.1, sigma=0, steps=1),
                                    dict(q=0.1, sigma=1, steps=0), dict(q=1.5, sigma=1, steps=1)])
def test_dp_config_validates_with_plain_errors(kwargs) -> None:
    with pytest.raises(ConfigError):
        dp_config(config_id=1, **kwargs)
