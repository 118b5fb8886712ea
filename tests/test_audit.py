"""Auditors' verification from public data: passes on honest rounds and
fails, naming the reason, for each kind of tampering."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from coordinator import connect
from coordinator import _encoding as enc
from coordinator.protocol._agent import Aggregator, PeerAgent
from coordinator.protocol._aggregate import aggregate, apply_update, collect
from coordinator.chain._contracts import Federation, LedgerPolicy, Phase, Policy, deploy_federation
from coordinator.protocol._driver import initial_adapter_args
from coordinator.privacy._privacy import dp_config
from coordinator.store._store import EmbeddedStore
from ledger_tools._inspect import build_log, event_rows
from ledger_tools._verify import verify_budgets, verify_code, verify_rounds

STAKE = 10**17
L = 200  # 4 chunks of 64


def _federation(*, lying_config: bool = False):
    chain = connect("embedded")
    chain.ensure_accounts(8)
    store = EmbeddedStore()
    pol = Policy(participants=5, threshold=3, keys_blocks=30, shares_blocks=30, commit_blocks=30,
                 reveal_blocks=30, aggregate_blocks=30, challenge_blocks=3, bond=STAKE)
    fed, _ = deploy_federation(chain, policy=pol, ledger_policy=LedgerPolicy(epsilon_cap=40),
                               **initial_adapter_args(store, np.zeros(L, np.float32),
                                                                       chunk_elems=64))
    for i in range(1, 6):
        fed.register(sender=i, stake=STAKE)
    cfg = dp_config(config_id=1, q=0.2, sigma=1.0, steps=10)
    if lying_config:  # the governor registers an RDP vector smaller than the truth
        cfg = dataclasses.replace(cfg, rdp_micro=tuple(v // 2 for v in cfg.rdp_micro))
    fed.register_config(cfg)
    return chain, fed, store


def _round_to_aggregate(fed: Federation, store, *, wrong_root_for: int | None = None) -> int:
    r, _ = fed.open_round(dp_config=1, vector_length=L, chunk_elems=64)
    agents = [PeerAgent(fed, store, a, r) for a in fed.participants(r)]
    for step in ("post_keys", "post_shares", "receive_shares"):
        for a in agents:
            getattr(a, step)()
    for a in agents:
        x = np.arange(L, dtype=np.uint32) * (a.index + 1)
        if a.index == wrong_root_for:  # commits a CID whose bytes are not the committed root's
            y = a.masked(x)
            cid = store.add(enc.to_bytes(y))
            other = y.copy()
            other[0] += 1
            fed.commit(r, cid_digest=cid.digest, chunks_root=enc.vector_root(other, 64),
                       weight=1, dp_config=1, sender=a.address)
        else:
            a.commit(x, weight=10, dp_config=1)
    for a in agents:
        a.reveal()
    assert fed.round_info(r).phase == Phase.AGGREGATE
    return r


def test_honest_rounds_pass_every_check_and_inspect_rebuilds_them_from_events() -> None:
    chain, fed, store = _federation()
    with chain:
        for _ in range(2):
            r = _round_to_aggregate(fed, store)
            Aggregator(fed, store, chain.account(1).address).run(r)
            chain.mine(4)
            fed.finalize(r)
        verdicts = verify_rounds(fed, store, [1, 2]) + verify_budgets(fed, build_log(fed)) \
            + verify_code(fed)
        assert all(v.ok for v in verdicts), [v for v in verdicts if not v.ok]
        assert {v.scope for v in verdicts} >= {"round 1", "round 2", "config 1", "code FedRounds"}
        log = build_log(fed)
        assert [r["phase"] for r in log["rounds"]] == ["FINAL", "FINAL"]
        assert all(sorted(r["U3"]) == [0, 1, 2, 3, 4] for r in log["rounds"])
        assert {p["epsilon"] for p in log["peers"]} == {fed.epsilon(p["address"]) for p in log["peers"]}
        assert all(len(p["rounds_joined"]) == 2 for p in log["peers"])
        assert len(event_rows(fed)) == log["events"]


def _global(fed, store, r):
    from coordinator.protocol._aggregate import blob_fixed, round_start

    return blob_fixed(round_start(fed, store, r))


def _failing(verdicts):
    return {(v.check, v.detail) for v in verdicts if not v.ok}


def test_a_wrong_result_chunk_is_named() -> None:
    chain, fed, store = _federation()
    with chain:
        r = _round_to_aggregate(fed, store)
        agg = aggregate(collect(fed, r), store)
        bad_total = agg.total.copy()
        bad_total[2 * 64 + 5] += 1000  # chunk 2
        bad = dataclasses.replace(agg, total=bad_total)
        new = apply_update(_global(fed, store, r), bad)
        Aggregator(fed, store, chain.account(1).address).post(r, bad, new)
        fails = _failing(verify_rounds(fed, store, [r]))
        assert ("new adapter = f(global, Σx, Σn), chunk by chunk", "first wrong chunk: 2") in fails


def test_a_wrong_posted_seed_is_caught() -> None:
    chain, fed, store = _federation()
    with chain:
        r = _round_to_aggregate(fed, store)
        agg = aggregate(collect(fed, r), store)
        seeds = list(agg.seeds)
        u, v, _ = seeds[1]
        seeds[1] = (u, v, b"\x07" * 32)
        bad = dataclasses.replace(agg, seeds=seeds)
        Aggregator(fed, store, chain.account(1).address).post(
            r, bad, apply_update(_global(fed, store, r), agg))
        assert any(c == "posted seeds" for c, _ in _failing(verify_rounds(fed, store, [r])))


def test_a_masked_vector_that_differs_from_its_commitment_is_rejected() -> None:
    chain, fed, store = _federation()
    with chain:
        r = _round_to_aggregate(fed, store, wrong_root_for=2)
        from coordinator._errors import AggregationError
        from coordinator.chain._contracts import FailReason

        with pytest.raises(AggregationError, match="participant 2 does not match its committed Merkle root"):
            aggregate(collect(fed, r), store)
        fed.chain.mine(40)
        fed.advance(r)  # nobody can aggregate it honestly: the round fails after its deadline
        info = fed.round_info(r)
        assert (info.phase, info.fail_reason) == (Phase.FAILED, FailReason.NO_RESULT)
        assert fed.result_of(r).bond == 0
        # Its sum was computable in principle (enough reveals), so charges stay.
        assert all(fed.epsilon_micro(p) > 0 for p in fed.participants(r))
        verdicts = verify_rounds(fed, store, [r])
        assert [(v.check, v.status) for v in verdicts] == [
            ("failure reason matches the on-chain counts", "ok")]


def test_a_ledger_whose_epsilon_disagrees_with_the_accountant_is_flagged() -> None:
    chain, fed, store = _federation(lying_config=True)
    with chain:
        r = _round_to_aggregate(fed, store)
        Aggregator(fed, store, chain.account(1).address).run(r)
        fails = _failing(verify_budgets(fed, build_log(fed)))
        checks = {c for c, _ in fails}
        assert "registered RDP vector = Opacus RDP of (q, σ, T)" in checks
        assert "Opacus RDP ε never above the ledger's" in checks


def test_deployed_code_from_another_source_is_flagged() -> None:
    chain, fed, store = _federation()
    with chain:
        other, _ = chain.deploy("EncodingHarness")
        forged = Federation(chain, {**fed.addresses, "FraudProofs": other.address},
                            deploy_block=fed.deploy_block)
        verdicts = verify_code(forged)
        bad = [v for v in verdicts if not v.ok]
        assert [v.scope for v in bad] == ["code FraudProofs"]
        assert all(v.ok for v in verify_code(fed))


@pytest.mark.parametrize("tamper", ["chunk", "seed"])
def test_a_dishonest_aggregator_is_proven_wrong_slashed_and_replaced(tamper: str) -> None:
    from coordinator.protocol._challenge import challenge, find_fraud

    chain, fed, store = _federation()
    with chain:
        r = _round_to_aggregate(fed, store)
        agg = aggregate(collect(fed, r), store)
        start = _global(fed, store, r)
        if tamper == "chunk":
            total = agg.total.copy()
            total[64 + 3] ^= 0x10000  # chunk 1
            bad = dataclasses.replace(agg, total=total)
        else:
            seeds = list(agg.seeds)
            seeds[3] = (seeds[3][0], seeds[3][1], b"\x09" * 32)
            bad = dataclasses.replace(agg, seeds=seeds)
        liar = chain.account(1).address
        Aggregator(fed, store, liar).post(r, bad, apply_update(start, bad))
        fraud = find_fraud(fed, store, r)
        assert fraud is not None and (fraud.kind, fraud.index) == ((tamper, 1) if tamper == "chunk"
                                                                   else (tamper, 3))
        auditor = chain.account(7).address  # not a peer: anyone may challenge
        rcpt = challenge(fed, store, r, fraud, sender=auditor)
        voided = [e for e in fed.receipt_events(rcpt) if e.name == "ResultVoided"]
        assert voided and voided[0].args["aggregator"] == liar
        assert voided[0].args["slashed"] == STAKE and fed.withdrawable(auditor) == voided[0].args["reward"]
        assert fed.round_info(r).phase == Phase.AGGREGATE and fed.peer_info(liar)["quarantined"]
        # An honest peer re-aggregates; the round verifies and finalizes.
        Aggregator(fed, store, chain.account(2).address).run(r)
        assert find_fraud(fed, store, r) is None
        assert all(v.ok for v in verify_rounds(fed, store, [r]))
        chain.mine(4)
        fed.finalize(r)
        assert fed.round_info(r).phase == Phase.FINAL


def _two_rounds(chain, fed, store) -> None:
    for _ in range(2):
        r = _round_to_aggregate(fed, store)
        Aggregator(fed, store, chain.account(1).address).run(r)
        chain.mine(4)
        fed.finalize(r)


def test_export_and_html_report_cover_the_whole_log(tmp_path) -> None:
    import csv
    import json as _json

    from ledger_tools._report import export, gas_per_phase, report

    chain, fed, store = _federation()
    with chain:
        _two_rounds(chain, fed, store)
        log = build_log(fed)
        n = export(fed, log, "csv", tmp_path / "log.csv")
        rows = list(csv.DictReader((tmp_path / "log.csv").open()))
        assert n == len(rows) == log["events"]
        assert sum(r["event"] == "UpdateCommitted" for r in rows) == 10
        export(fed, log, "json", tmp_path / "log.json")
        assert _json.loads((tmp_path / "log.json").read_text())["log"]["rounds"][1]["phase"] == "FINAL"
        gas = gas_per_phase(fed)
        assert set(gas) == {1, 2} and all(g["commit"] > 5 * 60_000 for g in gas.values())
        info = report(fed, log, tmp_path / "r.html", {1: {"accuracy": 0.6}, 2: {"accuracy": 0.7}})
        page = (tmp_path / "r.html").read_text()
        assert info["plots"] == ["accuracy", "bytes", "epsilon", "gas", "participation"]
        assert page.count("data:image/png;base64,") == 5 and "http" not in page.split("<body>")[1]


class _Tables:
    """Rows of every <table id=...> of a page, as lists of cell texts."""

    def __init__(self, dom: str) -> None:
        from html.parser import HTMLParser

        rows: dict[str, list[list[str]]] = {}
        state: dict[str, Any] = {"table": None, "cell": None}

        class P(HTMLParser):
            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                if tag == "table":
                    state["table"] = a.get("id")
                    rows.setdefault(state["table"], [])
                elif tag == "tr" and state["table"]:
                    rows[state["table"]].append([])
                elif tag == "td":
                    state["cell"] = ""

            def handle_data(self, data):
                if state["cell"] is not None:
                    state["cell"] += data

            def handle_endtag(self, tag):
                if tag == "td" and state["table"] and state["cell"] is not None:
                    rows[state["table"]][-1].append(state["cell"])
                    state["cell"] = None
                elif tag == "table":
                    state["table"] = None

        P().feed(dom)
        self.rows = {k: [r for r in v if r] for k, v in rows.items()}


def _chromium(tmp_path, url: str, shot: str) -> str:
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=20000"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120).stdout
    subprocess.run([*flags, f"--screenshot={tmp_path / shot}", "--window-size=1400,1000", url],
                   capture_output=True, timeout=120)
    png = (tmp_path / shot).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    return dom


@pytest.mark.integration
def test_explorer_page_in_headless_chromium_matches_inspect_and_drills_into_a_round(tmp_path) -> None:
    from ledger_tools._serve import Explorer

    chain, fed, store = _federation()
    with chain:
        _two_rounds(chain, fed, store)
        fed.quarantine(chain.account(5).address)  # a peer whose real status is not "active"
        want = build_log(fed)  # what `audit inspect --json` prints
        running = Explorer(fed, store, refresh_seconds=0).start(0)
        try:
            dom = _chromium(tmp_path, running.url, "explorer.png")
            drill = _chromium(tmp_path, running.url + "#round=2", "explorer-round2.png")
        finally:
            running.stop()

    page = _Tables(dom).rows
    assert [r[:8] for r in page["rounds"]] == [
        [str(r["round"]), r["phase"], str(len(r["participants"])), str(len(r["U1"])),
         str(len(r["U2"])), str(len(r["U3"])), str(len(r["revealed"])), str(len(r["voided"]))]
        for r in want["rounds"]]
    assert [r[8] for r in page["rounds"]] == ["ok", "ok"]  # every round re-verified in the page
    assert [(r[0], r[2], r[4]) for r in page["peers"]] == [
        (x["address"], f"{x['epsilon']:.4f}", x["status"]) for x in want["peers"]]
    assert sorted(r[4] for r in page["peers"]) == ["active"] * 4 + ["quarantined"]
    assert "verification checks pass" in dom and 'id="detail" hidden' in dom.replace('=""', "")
    assert dom.count("<polyline") >= 5  # ε lines, cap aside, and 4 participation series
    # Drill-down into round 2: its sets, every commitment, the result, no proofs.
    r2 = want["rounds"][1]
    rows = _Tables(drill).rows
    assert sorted(r[0] for r in rows["detail-commits"]) == sorted(c["peer"] for c in r2["commits"])
    assert sorted(r[2] for r in rows["detail-commits"]) == sorted(c["cid_digest"] for c in r2["commits"])
    assert [(r[0], r[1], r[6]) for r in rows["detail-results"]] == [
        (str(x["attempt"]), x["aggregator"], x["tx"]) for x in r2["results"]]
    assert rows["detail-proofs"] == [["none"]]
    assert "round 2: FINAL" in drill and 'data-set="U3"' in drill


def test_verify_names_a_masked_vector_whose_stored_bytes_differ_from_its_cid() -> None:
    from coordinator.protocol._aggregate import cid_for

    chain, fed, store = _federation()
    with chain:
        r = _round_to_aggregate(fed, store)
        Aggregator(fed, store, chain.account(1).address).run(r)
        assert all(v.ok for v in verify_rounds(fed, store, [r]))
        pub = collect(fed, r)
        cid = cid_for(pub.commits[2][0], 4 * pub.ctx.padded_length, store.opts)
        block = bytearray(store._blocks[cid])
        block[-1] ^= 1  # the bytes served for participant 2's masked vector were altered
        store._blocks[cid] = bytes(block)
        verdicts = verify_rounds(fed, store, [r])
        fails = [v for v in verdicts if v.status == "fail"]
        assert len(fails) == 1 and "masked vector of participant 2" in fails[0].detail
        # What depends on the unusable vector is reported as not checked, never as a pass.
        assert [v.check for v in verdicts if v.status == "not checked"] == ["aggregate recomputes"]
