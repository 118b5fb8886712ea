"""What operators and auditors see (issue 17): no false success, a federation
that says why it stopped, clean output, and a federation of one's own from
`fedledger init`. Each case checks the exit code and the first line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

FEDLEDGER = [sys.executable, "-m", "coordinator.cli"]


def run(*args: str, timeout: float = 120, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FEDLEDGER, *args], capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else os.environ | env, cwd=cwd)


def one_line_error(proc: subprocess.CompletedProcess[str], code: int, starts: str) -> None:
    """Exit ``code``, no traceback, and the first stderr line starts with ``starts``."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert lines and lines[0].startswith(starts), proc.stderr
    assert len(lines) == 1, proc.stderr


# -- 4. clean output ------------------------------------------------------------------

def test_bare_fedledger_prints_help_and_exits_0() -> None:
    proc = run()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: fedledger") and "init" in proc.stdout


def test_verbose_works_after_the_sub_command_too(tmp_path) -> None:
    before = run("-vv", "chain", "deploy", "--out", str(tmp_path / "a.json"))
    after = run("chain", "deploy", "-vv", "--out", str(tmp_path / "b.json"))
    assert before.returncode == after.returncode == 0, after.stderr
    assert " DEBUG " in before.stderr and " DEBUG " in after.stderr
    quiet = run("chain", "deploy", "--out", str(tmp_path / "c.json"), "-vv", "-q")
    assert quiet.returncode == 0 and " DEBUG " not in quiet.stderr


def _all_commands():
    import click

    from coordinator.cli import cli

    ctx = click.Context(cli, info_name="fedledger")
    todo = [((name,), cli.get_command(ctx, name)) for name in cli.list_commands(ctx)]
    while todo:
        path, cmd = todo.pop()
        yield path, cmd
        if isinstance(cmd, click.Group):
            todo += [((*path, n), cmd.get_command(ctx, n)) for n in cmd.list_commands(ctx)]


def test_every_option_of_every_command_has_help_text() -> None:
    import click

    missing = [f"{' '.join(path)} {p.opts[0]}" for path, cmd in _all_commands()
               for p in cmd.params if isinstance(p, click.Option) and not p.help]
    assert not missing, missing


def test_round_status_offers_no_signing_options() -> None:
    proc = run("round", "status", "--help")
    assert proc.returncode == 0
    for opt in ("--account", "--keystore", "--passphrase-file", "--ipfs-api"):
        assert opt not in proc.stdout
    proc = run("round", "status", "--account", "1")
    assert proc.returncode == 2 and "No such option '--account'" in proc.stderr


def test_piped_output_is_not_wrapped_or_cut_at_80_columns(tmp_path) -> None:
    deep = tmp_path / ("a-directory-with-a-long-name-" * 4) / "federation"
    proc = run("init", str(deep))
    assert proc.returncode == 0, proc.stderr
    suggested = [ln for ln in proc.stdout.splitlines() if "federation up --config" in ln]
    assert suggested == [f"  fedledger federation up --config {deep / 'federation.toml'} "
                         f"--dir {deep / 'run'}"]
    assert len(suggested[0]) > 200


def test_bench_gas_with_three_participants_measures_instead_of_crashing(tmp_path) -> None:
    out = tmp_path / "gas.json"
    proc = run("bench", "gas", "--sizes", "3", "--backend", "embedded", "--out", str(out),
               timeout=300)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(out.read_text())["rows"][0]
    assert row["n"] == 3 and row["post_result"] > 0 and row["chunk_proof"] > 0


def test_insecure_rng_warning_is_given_once_per_process() -> None:
    import warnings

    from nodes import _train
    from nodes._data import partition
    from nodes._model import ModelConfig, build_model
    from nodes._train import TrainConfig, train_local

    _train._RNG_WARNED = False
    data = partition(2, examples_per_peer=40, seed=0)[0].train
    model = build_model(ModelConfig(encoder="tiny"))
    cfg = TrainConfig(epochs=1, batch_size=16, dp=True, noise_multiplier=1.0, secure_rng=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(3):  # three rounds in one daemon process
            train_local(model, data, cfg=cfg)
    notices = [w for w in seen if "non-cryptographic RNG" in str(w.message)]
    assert len(notices) == 1


def _peer_config(tmp_path: Path, rpc_url: str, ipfs_api: str = "http://127.0.0.1:9",
                 extra: str = "") -> Path:
    (tmp_path / "pass").write_text("a passphrase\n")
    cfg = tmp_path / "peer.toml"
    cfg.write_text(f'[node]\nrpc_url = "{rpc_url}"\nipfs_api = "{ipfs_api}"\naccount = 1\n'
                   f'passphrase_file = "pass"\n{extra}')
    return cfg


def test_node_run_names_its_config_key_not_a_flag_it_lacks(tmp_path) -> None:
    cfg = _peer_config(tmp_path, "http://127.0.0.1:9")
    rec = {"chain_id": 31337, "backend": "anvil", "block": 1, "source_hash": "x", "deployer": "0x0",
           "contracts": {}, "gas": {}, "policy": {}, "ledger_policy": {}}
    (tmp_path / ".fedledger").mkdir()
    (tmp_path / ".fedledger" / "deployment.json").write_text(json.dumps(rec))
    proc = run("node", "run", "--config", str(cfg))
    one_line_error(proc, 4, "error: no Ethereum JSON-RPC endpoint answers at http://127.0.0.1:9")
    assert "--rpc-url" not in proc.stderr and "[node] rpc_url" in proc.stderr


# -- 1. no false success (no chain needed) -----------------------------------------

def test_a_negative_examples_per_peer_is_refused_not_trained_on(tmp_path) -> None:
    cfg = tmp_path / "peer.toml"
    cfg.write_text("[data]\nexamples_per_peer = -5\n")
    one_line_error(run("node", "train", "--config", str(cfg)), 2,
                   "error: examples_per_peer = -5 must be a positive integer")
    cfg.write_text('[data]\nexamples_per_peer = "many"\n')
    one_line_error(run("node", "train", "--config", str(cfg)), 2,
                   f"error: {cfg}: [data] examples_per_peer = 'many' must be int")


@pytest.mark.parametrize("cmd", [["demo"], ["federation", "up"]])
def test_a_threshold_above_the_peers_is_refused_not_lowered(cmd, tmp_path) -> None:
    proc = run(*cmd, "--threshold", "10", "--peers", "3", *(["--dir", str(tmp_path)]
                                                           if cmd[0] == "federation" else []))
    one_line_error(proc, 2, "error: ")
    assert "10" in proc.stderr and "--threshold 3 or less" in proc.stderr
    assert not (tmp_path / "federation.json").exists()


# -- 2. say why nothing happens (embedded chain) --------------------------------------

def test_driver_logs_why_no_round_opens_once_and_status_names_at_cap(caplog) -> None:
    import logging

    from coordinator import connect
    from coordinator.chain._contracts import LedgerPolicy, Policy, deploy_federation
    from coordinator.privacy._privacy import dp_config
    from coordinator.protocol._driver import RoundDriver, initial_adapter_args, stall_reason
    from coordinator.store._store import EmbeddedStore

    with connect("embedded") as chain:
        chain.ensure_accounts(6)
        store = EmbeddedStore()
        pol = Policy(participants=4, threshold=3, keys_blocks=5, shares_blocks=5,
                     commit_blocks=5, reveal_blocks=5, aggregate_blocks=5, challenge_blocks=2,
                     bond=10**17)
        # A cap below one round's ε: every peer is at its cap from the start.
        fed, _ = deploy_federation(chain, policy=pol, ledger_policy=LedgerPolicy(epsilon_cap=0.01),
                                   **initial_adapter_args(store, np.zeros(8, np.float32)))
        for i in range(1, 5):
            fed.register(sender=i, stake=10**17)
        fed.register_config(dp_config(config_id=1, q=0.2, sigma=1.0, steps=10))
        driver = RoundDriver(fed, store, aggregator=chain.account(1).address, dp_config=1,
                             vector_length=8)
        with caplog.at_level(logging.INFO, logger="fedledger.driver"):
            first = driver.tick()
            again = [driver.tick() for _ in range(3)]
        assert first is not None and first.startswith("waiting: only 0 of 4 registered peers")
        assert "4 at cap" in first and "threshold 3" in first
        assert again == [None, None, None] and driver.opened == []
        warned = [r for r in caplog.records if "no round can open" in r.getMessage()]
        assert len(warned) == 1 and "4 at cap" in warned[0].getMessage()
        assert stall_reason(fed, 1) == driver.stalled


# -- 6. a federation of one's own ------------------------------------------------------

def test_init_writes_commented_files_that_the_commands_accept(tmp_path) -> None:
    from nodes._scaffold import spec_from_file
    from nodes.cli import load_config

    proc = run("init", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    fed_text = (tmp_path / "federation.toml").read_text()
    peer_text = (tmp_path / "peer.toml").read_text()
    for text in (fed_text, peer_text):
        comments = [ln for ln in text.splitlines() if ln.startswith("#")]
        assert len(comments) >= 15
    assert "epsilon_cap" in tomllib.loads(fed_text)["policy"]
    spec = spec_from_file(tmp_path / "federation.toml")
    assert (spec.peers, spec.threshold) == (3, 2)
    cfg = load_config(tmp_path / "peer.toml")
    assert cfg["node"]["deployment"] == "deployment.json" and cfg["train"]["secure_rng"] is True
    # An operator's edits are read back, and never overwritten by a second init.
    (tmp_path / "federation.toml").write_text(fed_text.replace("threshold = 2", "threshold = 5"))
    one_line_error(run("init", str(tmp_path)), 2, f"error: {tmp_path / 'federation.toml'} "
                                                  "already exists")
    one_line_error(run("federation", "up", "--config", str(tmp_path / "federation.toml"),
                       "--dir", str(tmp_path / "run")), 2,
                   f"error: {tmp_path / 'federation.toml'}: threshold 5 must be between 2")
    assert spec_from_file(tmp_path / "federation.toml", threshold=3).threshold == 3
    (tmp_path / "bad.toml").write_text("[policy]\nepsilon_cap = -1.0\n")
    from coordinator import ConfigError

    with pytest.raises(ConfigError, match="epsilon_cap = -1.0 must be positive"):
        spec_from_file(tmp_path / "bad.toml")


# -- on a running chain (anvil) ---------------------------------------------------------

@pytest.fixture(scope="module")
def stalled_federation(tmp_path_factory):
    """anvil with a deployment whose 4 peers are all at their ε cap (one
    withdrawn instead), and its deployment record."""
    from coordinator import LocalNode
    from coordinator.chain._contracts import LedgerPolicy, Policy, deploy_federation
    from coordinator.chain._deploy import DeploymentRecord
    from coordinator.privacy._privacy import dp_config

    tmp = tmp_path_factory.mktemp("stalled")
    with LocalNode("anvil", workdir=tmp) as node:
        pol = Policy(participants=3, threshold=3, keys_blocks=5, shares_blocks=5, commit_blocks=5,
                     reveal_blocks=5, aggregate_blocks=5, challenge_blocks=2, bond=10**17)
        fed, rec = deploy_federation(node, policy=pol, ledger_policy=LedgerPolicy(epsilon_cap=0.01))
        for i in range(1, 5):
            fed.register(sender=i, stake=10**17)
        fed.request_leave(sender=4)
        fed.register_config(dp_config(config_id=1, q=0.2, sigma=1.0, steps=10))
        path = tmp / "deployment.json"
        DeploymentRecord(**rec).save(path)
        yield node, path, [node.account(i).address for i in range(1, 5)]


@pytest.mark.integration
def test_round_status_json_says_why_no_round_opens(stalled_federation) -> None:
    node, rec, peers = stalled_federation
    proc = run("round", "status", "--rpc-url", node.url, "--deployment", str(rec), "--json")
    assert proc.returncode == 0, proc.stderr
    view = json.loads(proc.stdout)
    assert view["phase"] == "NONE"
    assert view["stalled"].startswith("only 0 of 4 registered peers are eligible")
    assert "3 at cap" in view["stalled"] and "1 left" in view["stalled"]
    assert {p["address"]: p["status"] for p in view["peers"]} == {
        peers[0]: "at cap", peers[1]: "at cap", peers[2]: "at cap", peers[3]: "left"}
    human = run("round", "status", "--rpc-url", node.url, "--deployment", str(rec))
    assert "no round can open: only 0 of 4" in human.stdout


@pytest.mark.integration
def test_inspect_shows_real_peer_status_in_an_unwrapped_table(stalled_federation) -> None:
    node, rec, peers = stalled_federation
    proc = run("audit", "inspect", "--rpc-url", node.url, "--deployment", str(rec))
    assert proc.returncode == 0, proc.stderr
    rows = {ln.split()[1]: ln for ln in proc.stdout.splitlines() if ln.split()[1:2]
            and ln.split()[1] in peers}
    assert set(rows) == set(peers)  # every address whole, on one line
    assert all("at cap" in rows[p] for p in peers[:3]) and rows[peers[3]].rstrip(" │").endswith("left")
    assert "no round can open" in proc.stdout
    assert "DP config 1: local (q " in proc.stdout  # which mode the federation runs in
    log = json.loads(run("audit", "inspect", "--rpc-url", node.url, "--deployment", str(rec),
                         "--json").stdout)
    assert [p["status"] for p in log["peers"]].count("at cap") == 3


@pytest.mark.integration
@pytest.mark.parametrize("args,starts", [
    (["round", "status", "--round", "999"], "error: round 999 does not exist: the federation "
                                            "has no rounds yet"),
    (["audit", "inspect", "--round", "999"], "error: round 999 does not exist"),
    (["audit", "inspect", "--peer", "0xnotanaddress"], "error: --peer '0xnotanaddress' is not "
                                                      "an address"),
    (["audit", "inspect", "--peer", "0x" + "12" * 20], "error: 0x1212"),
    (["audit", "verify", "--round", "999"], "error: round 999 does not exist"),
    (["round", "aggregate", "--round", "999", "--account", "1", "--ipfs-api",
      "http://127.0.0.1:9"], "error: round 999 does not exist"),
])
def test_what_does_not_exist_is_a_one_line_error_not_an_empty_success(stalled_federation, args,
                                                                       starts) -> None:
    node, rec, _ = stalled_federation
    t0 = time.monotonic()
    proc = run(*args, "--rpc-url", node.url, "--deployment", str(rec), timeout=60)
    one_line_error(proc, 2, starts)
    assert time.monotonic() - t0 < 30  # answered, not after a long wait


@pytest.mark.integration
def test_a_record_pointing_at_no_contract_says_so(stalled_federation, tmp_path) -> None:
    node, rec, _ = stalled_federation
    data = json.loads(rec.read_text())
    data["contracts"]["FedRounds"] = "0x" + "ab" * 20
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(data))
    proc = run("audit", "inspect", "--rpc-url", node.url, "--deployment", str(wrong))
    from web3 import Web3

    one_line_error(proc, 2, f"error: no contract at {Web3.to_checksum_address('0x' + 'ab' * 20)} "
                            "(FedRounds in the deployment record)")
    assert "transaction failed" not in proc.stderr


@pytest.mark.integration
def test_chain_up_prints_accounts_and_record_and_sigterm_stops_anvil(tmp_path) -> None:
    from web3 import Web3

    out = tmp_path / "dep.json"
    proc = subprocess.Popen([*FEDLEDGER, "chain", "up", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("record written" in ln for ln in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
        text = "\n".join(lines)
        assert lines[0].startswith("anvil ready at http://127.0.0.1:"), text
        url = lines[0].split()[3]
        assert "(0) 0x" in text and "(9) 0x" in text
        assert f"deployment record written to {out}" in text and out.exists()
        assert Web3(Web3.HTTPProvider(url)).is_connected()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    time.sleep(0.5)
    assert not Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 3})).is_connected()


@pytest.mark.integration
def test_wrong_passphrase_is_one_line_without_resource_warning(stalled_federation, tmp_path,
                                                               kubo_a) -> None:
    node, rec, _ = stalled_federation
    cfg = _peer_config(tmp_path, node.url, kubo_a.api, f'deployment = "{rec}"\n')
    warn = {"PYTHONWARNINGS": "always::ResourceWarning"}
    from nodes._state import PeerState

    rounds = json.loads(rec.read_text())["contracts"]["FedRounds"]
    PeerState(tmp_path / ".fedledger" / "peer" / "state.sqlite", b"the right one",
              deployment=(31337, rounds)).close()
    proc = run("node", "run", "--config", str(cfg), env=warn, timeout=120)
    one_line_error(proc, 2, "error: the passphrase does not open")
    assert "ResourceWarning" not in proc.stderr


@pytest.mark.integration
def test_explorer_client_disconnects_print_no_traceback(stalled_federation) -> None:
    node, rec, _ = stalled_federation
    proc = subprocess.Popen([*FEDLEDGER, "audit", "serve", "--rpc-url", node.url, "--deployment",
                             str(rec), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("explorer at http://127.0.0.1:"), first
        port = int(first.split(":")[2].split("/")[0])
        for path in ("/api/log", "/", "/api/log"):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()  # reset before the answer is written
        time.sleep(3)
        import urllib.request

        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/log", timeout=30).read()
        assert json.loads(body)["events"] > 0  # still serving
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert "Traceback" not in err and "BrokenPipe" not in err and "ConnectionReset" not in err, err


# -- 5. report ---------------------------------------------------------------------------

def test_participation_map_and_round_verdicts() -> None:
    from ledger_tools._report import STAGES, participation_matrix, round_verdicts

    a, b, c, d = ("0xa", "0xb", "0xc", "0xd")
    log = {"peers": [{"address": x} for x in (a, b, c, d)], "rounds": [
        {"round": 1, "participants": [a, b, c], "U1": [0, 1, 2], "U2": [0, 1], "U3": [0],
         "revealed": [0]},
        {"round": 2, "participants": [c, b], "U1": [0, 1], "U2": [0, 1], "U3": [0, 1],
         "revealed": [1]}]}
    peers, rounds, m = participation_matrix(log)
    assert peers == [a, b, c, d] and rounds == [1, 2]
    assert [[STAGES[s] for s in row] for row in m] == [
        ["committed, revealed", "not selected"],
        ["shares (U2)", "committed, revealed"],
        ["keys (U1)", "committed (U3)"],
        ["not selected", "not selected"]]
    v = round_verdicts([{"scope": "round 1", "check": "result", "ok": False, "detail": "chunk 2"},
                        {"scope": "round 1", "check": "seeds", "ok": True, "detail": ""},
                        {"scope": "round 2", "check": "result", "ok": True, "detail": ""},
                        {"scope": "round 3", "check": "has a result", "ok": True,
                         "detail": "skipped: phase KEYS"},
                        {"scope": "peer 0xa", "check": "ε", "ok": False, "detail": ""}])
    assert v[1]["text"] == "FAIL" and v[1]["detail"] == "result: chunk 2"
    assert (v[2]["text"], v[3]["text"]) == ("ok", "skipped") and set(v) == {1, 2, 3}


@pytest.mark.integration
def test_report_in_headless_chromium_has_verdicts_status_and_integer_round_axes(tmp_path) -> None:
    from dataclasses import asdict

    from test_audit import _Tables, _chromium, _federation, _two_rounds

    from ledger_tools._inspect import build_log
    from ledger_tools._report import report
    from ledger_tools._verify import verify_rounds

    chain, fed, store = _federation()
    with chain:
        _two_rounds(chain, fed, store)
        log = build_log(fed)
        verdicts = [asdict(v) for v in verify_rounds(fed, store, [1, 2])]
        verdicts[0] = dict(verdicts[0], ok=False, detail="chunk 3 differs")  # as a failed verify
        out = tmp_path / "r.html"
        info = report(fed, log, out, {1: {"accuracy": 0.61}, 2: {"accuracy": 0.66}}, verdicts)
        plain = report(fed, log, tmp_path / "plain.html")
    assert info["verified_rounds"] == [1, 2] and plain["verified_rounds"] == []
    dom = _chromium(tmp_path, out.as_uri(), "report.png")
    rows = _Tables(dom).rows
    assert [(r[0], r[-2], r[-1]) for r in rows["rounds"]] == [("1", "0.610", "FAIL"),
                                                             ("2", "0.660", "ok")]
    assert [(r[0], r[1]) for r in rows["peers"]] == [(p["address"], p["status"])
                                                    for p in log["peers"]]
    assert "chunk 3 differs" in dom and "1 of" in dom and "checks FAIL" in dom
    assert dom.count("data:image/png;base64,") == 5
    assert "not given" in (tmp_path / "plain.html").read_text()


def test_report_round_axes_have_whole_numbers_only(tmp_path, monkeypatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.figure

    from ledger_tools import _report

    ticks: list[list[float]] = []
    real = _report._png

    def capture(fig):
        fig.canvas.draw()
        for ax in fig.axes:
            if ax.get_xlabel() == "round":
                ticks.append([t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]])
        return real(fig)

    monkeypatch.setattr(_report, "_png", capture)
    monkeypatch.setattr(_report, "gas_per_phase", lambda fed: {})
    log = {"deployment": {"chain_id": 1, "block": 1, "contracts": {"FedRounds": "0x0"}},
           "ledger": {"cap": 8.0, "delta": 1e-5}, "events": 0, "stalled": None,
           "peers": [{"address": "0x" + "a" * 40, "charges": [{"round": 1, "epsilon_after": 1.0},
                                                           {"round": 2, "epsilon_after": 1.5},
                                                           {"round": 3, "epsilon_after": 2.0}],
                      "rounds_joined": [1, 2, 3], "epsilon": 2.0, "cap": 8.0, "status": "active"}],
           "rounds": [{"round": r, "phase": "FINAL", "fail_reason": "NONE",
                       "participants": ["0x" + "a" * 40], "U1": [0], "U2": [0], "U3": [0],
                       "revealed": [0], "voided": [], "vectorLength": 10, "chunkElems": 8}
                      for r in (1, 2, 3)]}
    _report.report(None, log, tmp_path / "r.html", {1: {"accuracy": .5}, 3: {"accuracy": .6}})
    assert len(ticks) == 5
    assert all(t == int(t) for axis in ticks for t in axis) and all(axis for axis in ticks)


@pytest.mark.parametrize("line, says", [
    ("[training]\nq = 1.5\n", "q = 1.5 must be in (0, 1]"),
    ("[training]\nlr = 0.0\n", "lr = 0.0 must be positive"),
    ("[peers]\nexamples_per_peer = 1\n", "examples_per_peer = 1 must be at least 2"),
    ("[dp]\nmode = \"central\"\n", "mode = 'central' must be one of local, distributed-record"),
    ("[dp]\nmode = \"distributed-user\"\n", "q = 0.25: the distributed user level takes q = 1"),
    # TOML has inf: an unbounded clip or σ has no Δ2 or μ (was an OverflowError
    # traceback, after the chain and Kubo had started)
    ("[dp]\nclip = inf\nmode = \"distributed-record\"\n", "clip = inf must be positive and finite"),
    ("[dp]\nsigma = inf\nmode = \"distributed-user\"\nq = 1\n",
     "sigma = inf must be positive and finite"),
    ("[peers]\nlr = inf\n", "lr = inf must be positive and finite"),
])
def test_federation_values_are_checked_before_anything_starts(tmp_path, line, says) -> None:
    from nodes._scaffold import SPEC_KEYS

    section, key = line.split("]")[0][1:], line.split("\n")[1].split(" = ")[0]
    if key not in SPEC_KEYS.get(section, {}):  # the file's sections as init writes them
        section = next(s for s, keys in SPEC_KEYS.items() if key in keys)
        line = f"[{section}]\n" + line.split("\n", 1)[1]
    (tmp_path / "f.toml").write_text(line)
    proc = run("federation", "up", "--config", str(tmp_path / "f.toml"), "--dir", str(tmp_path / "run"),
               timeout=60)
    one_line_error(proc, 2, f"error: {tmp_path / 'f.toml'}: {says}")
    assert not (tmp_path / "run" / "federation.json").exists()
    assert not (tmp_path / "run" / "logs").exists()  # no chain or Kubo was started


@pytest.mark.parametrize("flags, blocks", [([], 30), (["--phase-blocks", "12"], 12)])
def test_federation_up_keeps_the_files_phase_blocks_and_says_how_to_audit(
        tmp_path, monkeypatch, flags, blocks) -> None:
    """`[policy] phase_blocks` in federation.toml was always replaced by the
    --phase-blocks default 0 (fitted windows), though a flag wins only when
    given; and the printed commands gave no way to find the Kubo API that
    `audit verify --all` needs (its error suggested 127.0.0.1:5001)."""
    from click.testing import CliRunner

    import nodes._federation
    from nodes.cli import federation

    seen = []

    def fake_up(spec, root, log):
        seen.append(spec)
        return {"dir": str(root), "rpc_url": "http://127.0.0.1:1111",
                "deployment": str(root / "deployment.json"), "ipfs_api": "http://127.0.0.1:2222"}

    monkeypatch.setattr(nodes._federation, "up", fake_up)
    (tmp_path / "f.toml").write_text("[policy]\nphase_blocks = 30\n")
    res = CliRunner().invoke(federation, ["up", "--config", str(tmp_path / "f.toml"),
                                          "--dir", str(tmp_path / "run"), *flags])
    assert res.exit_code == 0, res.output
    assert seen[0].phase_blocks == blocks
    at = f"--rpc-url http://127.0.0.1:1111 --deployment {tmp_path / 'run' / 'deployment.json'}"
    assert f"fedledger audit inspect {at}" in res.output
    assert f"fedledger audit verify --all {at} --ipfs-api http://127.0.0.1:2222" in res.output


def test_init_template_and_threshold_errors_give_the_real_range(tmp_path) -> None:
    """federation.toml said "threshold t (1..peers)" though t = 1 is refused,
    and a threshold of 1 was told to "pass --threshold 3 or less"; the [dp]
    comments did not say what q is in the record level, nor k's range."""
    from coordinator import ConfigError
    from nodes._federation import FederationSpec
    from nodes._scaffold import write_templates

    write_templates(tmp_path)
    text = (tmp_path / "federation.toml").read_text()
    assert "threshold t (2..peers)" in text and "1..peers" not in text
    assert "records Poisson-sampled at q" in text and "k (0..threshold − 1)" in text
    with pytest.raises(ConfigError) as low:
        FederationSpec(peers=3, threshold=1)
    assert low.value.hint == "set a threshold of 2 or more"
    with pytest.raises(ConfigError) as high:
        FederationSpec(peers=3, threshold=4)
    assert high.value.hint == "pass --threshold 3 or less, or more --peers"


def test_inspect_names_each_dp_configurations_mode() -> None:
    """`audit inspect` printed the ε cap but not the DP mode: an operator who
    had set mode = "distributed-record" could not see it without --json."""
    from ledger_tools.cli import dp_config_lines

    log = {"dp_configs": {2: {"id": 2, "q": 0.25, "sigma": 1.5, "steps": 10}},
           "distributed_configs": {1: {"id": 1, "mode": "DISTRIBUTED_RECORD", "q": 0.25, "k": 0,
                                       "floor_m": 2}}}
    assert dp_config_lines(log) == [
        "DP config 1: distributed record level (q 0.25, k 0, floor 2 noisy shares)",
        "DP config 2: local (q 0.25, σ 1.5, T 10 per round)"]
