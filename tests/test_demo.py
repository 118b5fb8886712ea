"""`fedledger demo`: the whole system in one process — training, secure
aggregation with dropouts, verification, privacy accounting."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from coordinator.privacy._privacy import conversion_constants, dp_config, epsilon_micro


@pytest.mark.heavy
@pytest.mark.integration
def test_demo_runs_five_verified_rounds_with_dropouts_ends_at_eps_8_and_prints_only_json() -> None:
    proc = subprocess.run([sys.executable, "-m", "coordinator.cli", "demo", "--encoder", "tiny",
                           "--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout)  # stdout is only JSON; progress went to stderr
    assert "round 2: peer 6 drops out after shares" in proc.stderr
    rounds = {r["round"]: r for r in res["rounds"]}
    assert sorted(rounds) == [1, 2, 3, 4, 5]
    for r in rounds.values():
        assert r["verified"].split()[0] == "8/8", r
        assert r["gas"] > 0 and r["bytes_moved"] > 4 * res["vector_length"] * r["survivors"]
    # Round 2: peer 6 shared its keys and vanished (in U2, not U3: its mask
    # key was reconstructed); peer 7 committed and vanished (no reveal).
    assert (rounds[2]["keys"], rounds[2]["shares"], rounds[2]["survivors"], rounds[2]["reveals"]) \
        == (8, 8, 7, 6)
    assert all(rounds[r]["survivors"] == 8 for r in (1, 3, 4, 5))
    # The global model learned something: AUC on the held-out set went up.
    assert rounds[5]["auc"] > res["initial"]["auc"] + 0.05
    # The ledger charged each committed round, and nothing for the missed one.
    cfg = res["config"]
    one = dp_config(config_id=1, q=cfg["q"], sigma=cfg["sigma"], steps=cfg["steps"])
    conv = conversion_constants(cfg["delta"])

    def eps(k: int) -> float:
        return epsilon_micro([k * v for v in one.rdp_micro], conv) / 1e6

    spent = {p["peer"]: p["epsilon"] for p in res["peers"]}
    assert spent[6] == pytest.approx(eps(4), abs=1e-4)  # never committed in round 2
    assert all(spent[p] == pytest.approx(eps(5), abs=1e-4) for p in (0, 1, 2, 3, 4, 5, 7))
    # The defaults end every peer at ε ≤ 8 (δ = 1e-5 ≤ 1/records), and say so.
    assert max(spent.values()) <= 8.0 and cfg["epsilon_cap"] == 8.0
    assert all(p["epsilon"] <= p["cap"] for p in res["peers"])
    # Then the distributed record level on a fresh deployment: every round
    # verified, ε on the ledger ≤ 2 and never below dp-accounting's for the
    # same survivors; the model learned; the better mode is the one released.
    modes = {m["mode"]: m for m in res["modes"]}
    rec = modes["distributed-record"]
    assert rec["rounds"] == cfg["record_rounds"] == rec["verified_rounds"] == 20
    assert rec["epsilon"] <= 2.0 and rec["epsilon"] >= rec["epsilon_dp_accounting"] - 1e-6
    assert rec["auc"] > res["initial"]["auc"] + 0.05
    assert modes["local"]["epsilon"] == max(spent.values())
    # The same records paid for both modes: the demo reports their RDP
    # composed, above either ledger's ε, below their sum, and ≤ 8 at the defaults.
    assert max(spent.values()) < res["epsilon_total"] < max(spent.values()) + rec["epsilon"]
    assert res["epsilon_total"] <= 8.0 and res["delta_total"] == cfg["delta"]
    assert res["released"] == max(res["modes"], key=lambda m: m["macro_f1"])["mode"]
    assert "released model: the" in proc.stderr


@pytest.mark.integration
def test_demo_with_a_dishonest_aggregator_slashes_it_and_recovers() -> None:
    proc = subprocess.run([sys.executable, "-m", "coordinator.cli", "demo", "--encoder", "tiny",
                           "--rounds", "2", "--peers", "4", "--threshold", "3", "--no-dropouts",
                           "--dishonest-aggregator", "--record-rounds", "0", "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    d = res["dishonest_aggregator"]
    assert d["round"] == 2 and d["fraud"]["kind"] == "chunk"
    assert any(f"first wrong chunk: {d['fraud']['index']}" in line for line in d["verify_failed"])
    assert d["slashed_wei"] == 10**17 and 0 < d["reward_wei"] <= d["slashed_wei"]
    assert d["liar_quarantined"]
    # Then the correct Σx with a wrong adapter: proven wrong on-chain too.
    wrong_adapter = d["proofs"][1]
    assert wrong_adapter["posted"] == "the correct aggregate with a wrong adapter"
    assert wrong_adapter["fraud"]["kind"] == "chunk" and wrong_adapter["poster_quarantined"]
    assert wrong_adapter["slashed_wei"] == 10**17
    assert [r["verified"].split()[0] for r in res["rounds"]] == ["8/8", "8/8"]  # checks, not peers


@pytest.mark.heavy
@pytest.mark.integration
def test_demo_with_a_malicious_dealer_slashes_and_excludes_it_and_the_round_completes() -> None:
    """Issue 12 item 2: a dealer deals a share off its Feldman-committed
    polynomial; the holder proves it before the dealer's commit, the dealer
    loses its stake and its place in the round (a dropout after shares), its
    framing seed proof is refused, the round verifies for everyone else and
    no later round selects it."""
    proc = subprocess.run([sys.executable, "-m", "coordinator.cli", "demo", "--encoder", "tiny",
                           "--rounds", "2", "--peers", "5", "--threshold", "3", "--no-dropouts",
                           "--malicious-dealer", "--record-rounds", "0", "--json"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    m = res["malicious_dealer"]
    assert m["round"] == 1 and m["complaints"] == 1 and m["complaint_gas"] > 0
    assert m["dealer_quarantined"] and m["framing_attempt"] == "FraudNotProven"
    assert m["dealer_slashed_wei"] > 0 and m["dealer_excluded"] and not m["dealer_in_u3"]
    assert m["dealer_in_later_rounds"] == []
    assert [r["survivors"] for r in res["rounds"]] == [4, 4]  # everyone but the dealer
    assert all(r["verified"].split()[0] == "8/8" for r in res["rounds"])


def test_demo_charges_each_peer_for_both_modes_on_the_same_records(tmp_path) -> None:
    """The distributed phase runs on a fresh deployment but on the same
    peers' records as the local rounds: what each peer's data has spent is
    the two ledgers' RDP vectors added and converted at δ once (RDP composes
    by addition), whichever model the demo releases; the local ledger alone
    under-reports it."""
    import warnings

    from nodes._demo import DemoConfig, run_demo

    cfg = DemoConfig(peers=3, threshold=2, rounds=1, record_rounds=1, dropouts=False,
                     examples_per_peer=24, steps=2, test_examples=64)
    lines: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_demo(cfg, progress=lines.append, workdir=tmp_path)
    modes = {m["mode"]: m for m in res["modes"]}
    local, record = modes["local"]["epsilon"], modes["distributed-record"]["epsilon"]
    assert local > 0 and record > 0
    from coordinator.privacy._privacy import rdp_epsilon

    for p in res["peers"]:
        assert max(p["epsilon"], p["epsilon_record"]) < p["epsilon_total"] \
            <= p["epsilon"] + p["epsilon_record"] + 1e-4
    assert res["epsilon_total"] == pytest.approx(max(p["epsilon_total"] for p in res["peers"]))
    assert res["epsilon_total"] > local and res["delta_total"] == cfg.delta
    # Opacus' accountant over the same local history alone stays below the total.
    assert rdp_epsilon([(cfg.sigma, cfg.q, cfg.steps)] * cfg.rounds, cfg.delta) < res["epsilon_total"]
    released = next(s for s in lines if s.startswith("released model"))
    assert f"at most ε {res['epsilon_total']:.2f}" in released and "same records" in released


@pytest.mark.parametrize("kw, says", [(dict(k=1.5), "k=1.5"), (dict(k=True), "k=True"),
                                      (dict(record_sigma=0.0), "record_sigma=0.0"),
                                      (dict(record_lr=float("inf")), "record_lr=inf")])
def test_demo_refuses_a_bad_distributed_phase_before_the_local_rounds(kw, says) -> None:
    """The distributed phase's settings are checked with the rest, not
    after the local rounds have run (a fractional k made a fractional floor)."""
    from coordinator import ConfigError
    from nodes._demo import DemoConfig

    with pytest.raises(ConfigError, match=re.escape(says)):
        DemoConfig(**kw)


def _fake_demo(both: bool) -> dict:
    util = {"accuracy": 0.5, "macro_f1": 0.4, "auc": 0.6}
    peers = [{"peer": i, "address": f"0x{i:040x}", "examples": 100, "heldout_accuracy": 0.5,
              "heldout_macro_f1": 0.4, "epsilon": 4.821, "cap": 8.0,
              **({"epsilon_record": 0.851, "epsilon_total": 4.932} if both else {})}
             for i in range(3)]
    modes = [{"mode": "local", "rounds": 2, "epsilon": 4.821, **util}]
    if both:
        modes.append({"mode": "distributed-record", "rounds": 5, "epsilon": 0.851, **util,
                      "macro_f1": 0.45})
    return {"vector_length": 10, "initial": util, "rounds": [], "peers": peers, "modes": modes,
            "released": modes[-1]["mode"], "epsilon_total": 4.932 if both else 4.821,
            "delta_total": 1e-5, "seconds": 1.0}


@pytest.mark.parametrize("both", [True, False])
def test_demo_tables_show_what_each_peer_spent_in_each_mode(monkeypatch, both) -> None:
    """With both modes the per-peer table showed only the local ledger's ε
    (4.821) under a title saying "on-chain ledger" while the privacy line
    said 4.93, and the footnote said each peer spent "the sum" (it is the
    RDP composition, below the sum of the two ε); with --record-rounds 0 the
    one-row table was still titled "the two DP modes"."""
    from click.testing import CliRunner

    import nodes._demo
    from nodes.cli import demo

    monkeypatch.setattr(nodes._demo, "run_demo", lambda cfg, progress: _fake_demo(both))
    out = CliRunner().invoke(demo, ["--encoder", "tiny", "--record-rounds",
                                    "5" if both else "0"]).output
    lines = out.splitlines()
    header = next(s for s in lines if "held-out F1" in s)
    row = next(s for s in lines if "0x00000000" in s)
    if both:
        assert all(c in header for c in ("ε local", "ε distributed", "ε both"))
        assert all(v in row for v in ("4.821", "0.851", "4.932"))
        assert "the two DP modes" in out and "spent the sum" not in out
        assert "ε both: the two ledgers' RDP composed" in out
    else:
        assert "ε spent" in header and "ε both" not in header and "ε local" not in header
        assert "the two DP modes" not in out and "--record-rounds 0" in out
    assert "held-out: the local mode's final global model" in out
