"""The `fedledger` command line: help, JSON output, errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FEDLEDGER = [sys.executable, "-m", "coordinator.cli"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FEDLEDGER, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("cmd", [[], ["chain"], ["chain", "up"], ["chain", "deploy"],
                                 ["chain", "compile"], ["ipfs", "up"], ["doctor"], ["demo"]])
def test_every_command_has_help(cmd: list[str]) -> None:
    proc = run(*cmd, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: fedledger" in proc.stdout
    assert len(proc.stdout.splitlines()) >= 5


def test_user_mistake_gives_one_line_and_exit_code() -> None:
    proc = run("chain", "deploy", "--rpc-url", "mainnet")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: unknown chain 'mainnet'")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unreachable_chain_exit_code() -> None:
    proc = run("chain", "deploy", "--rpc-url", "http://127.0.0.1:9")
    assert proc.returncode == 4
    assert "Traceback" not in proc.stderr


def test_unknown_option_is_a_usage_error() -> None:
    proc = run("demo", "--frobnicate")
    assert proc.returncode == 2
    assert "No such option" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_chain_deploy_writes_a_record(tmp_path) -> None:
    out = tmp_path / "dep.json"
    proc = run("chain", "deploy", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert set(record) == {"chain_id", "backend", "block", "source_hash", "deployer",
                           "contracts", "gas", "policy", "ledger_policy", "data_schema"}
    assert set(record["contracts"]) == {"PeerRegistry", "PrivacyLedger", "FedRounds", "FraudProofs"}
    assert json.loads(proc.stdout)["record"] == record
    assert record["data_schema"] == "0x" + "00" * 32  # nothing declared
    proc = run("chain", "deploy", "--out", str(out), "--data-schema", "0x" + "ab" * 32)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["data_schema"] == "0x" + "ab" * 32
    for bad in ("0x1234", "0x" + "00" * 32, "zz" * 32):
        proc = run("chain", "deploy", "--out", str(out), "--data-schema", bad)
        assert proc.returncode == 2 and "--data-schema" in proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.integration
def test_doctor_is_all_green_after_setup() -> None:
    proc = run("doctor", "--json", timeout=300)
    report = json.loads(proc.stdout)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert not failed, failed
    assert proc.returncode == 0


@pytest.mark.integration
def test_deploy_to_url_chain_with_keystore(tmp_path) -> None:
    from eth_account import Account

    from coordinator import LocalNode

    with LocalNode("anvil", workdir=tmp_path) as node:
        key = Account.from_key(node.accounts[3].key)
        ks = tmp_path / "ks.json"
        ks.write_text(json.dumps(Account.encrypt(key.key, "pw", kdf="pbkdf2", iterations=2048)))
        pw = tmp_path / "pw.txt"
        pw.write_text("pw\n")
        out = tmp_path / "dep.json"
        proc = run("chain", "deploy", "--rpc-url", node.url, "--keystore", str(ks),
                   "--passphrase-file", str(pw), "--out", str(out), "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(out.read_text())["deployer"] == key.address
        # Without a keystore there is no account to sign with: a plain error.
        proc = run("chain", "deploy", "--rpc-url", node.url)
        assert proc.returncode == 2
        assert "no account to sign with" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_node_run_names_each_bad_input_in_one_line(tmp_path) -> None:
    cfg = tmp_path / "peer.toml"
    cfg.write_text('[node]\nrpc_url = "http://127.0.0.1:9"\nipfs_api = "http://127.0.0.1:9"\n'
                   'account = 1\nfrobnicate = 3\n')
    proc = run("node", "run", "--config", str(cfg))
    assert proc.returncode == 2 and "unknown key 'frobnicate' in [node]" in proc.stderr
    cfg.write_text('[node]\nrpc_url = "http://127.0.0.1:9"\nipfs_api = "http://127.0.0.1:9"\n'
                   'account = 1\n')
    proc = run("node", "run", "--config", str(cfg))
    assert proc.returncode == 2 and "passphrase" in proc.stderr  # nothing seals the state
    (tmp_path / "pass").write_text("a passphrase\n")
    cfg.write_text('[node]\nrpc_url = "http://127.0.0.1:9"\nipfs_api = "http://127.0.0.1:9"\n'
                   'account = 1\npassphrase_file = "pass"\n')
    proc = run("node", "run", "--config", str(cfg))
    assert proc.returncode == 2 and "deployment.json does not exist" in proc.stderr
    rec = {"chain_id": 31337, "backend": "anvil", "block": 1, "source_hash": "x", "deployer": "0x0",
           "contracts": {}, "gas": {}, "policy": {}, "ledger_policy": {}}
    (tmp_path / ".fedledger").mkdir()
    (tmp_path / ".fedledger" / "deployment.json").write_text(json.dumps(rec))
    last = run("node", "run", "--config", str(cfg))
    assert last.returncode == 4 and "no Ethereum JSON-RPC endpoint answers" in last.stderr
    for p in (proc, last):
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) <= 2


def test_synthetic_learner_is_refused_off_development_chains() -> None:
    from coordinator import ConfigError
    from nodes.cli import check_synthetic_allowed

    for dev in (31337, 1337):
        check_synthetic_allowed(dev)
    for prod in (1, 5, 10, 11155111):
        with pytest.raises(ConfigError, match=f"refused on chain {prod}"):
            check_synthetic_allowed(prod)


@pytest.mark.integration
def test_node_run_with_the_synthetic_fake_on_a_non_development_chain_exits_2(tmp_path) -> None:
    """`node run` with [node] synthetic_parameters against a chain whose id is
    not a development chain's (anvil started with --chain-id 11155111)."""
    import time
    import urllib.request

    from coordinator.ops._paths import anvil_binary
    from coordinator.ops._procs import free_port

    port = free_port()
    anvil = subprocess.Popen([str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port),
                              "--chain-id", "11155111",
                              "--silent"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                req = urllib.request.Request(url, data=b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}',
                                             headers={"Content-Type": "application/json"})
                urllib.request.urlopen(req, timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "anvil did not start within 60 s"
                time.sleep(0.2)
        (tmp_path / "pass").write_text("a passphrase\n")
        cfg = tmp_path / "peer.toml"
        cfg.write_text(f'[node]\nrpc_url = "{url}"\nipfs_api = "http://127.0.0.1:9"\naccount = 1\n'
                       f'passphrase_file = "pass"\nsynthetic_parameters = 100\n')
        rec = {"chain_id": 11155111, "backend": "url", "block": 1, "source_hash": "x",
               "deployer": "0x0", "contracts": {}, "gas": {}, "policy": {}, "ledger_policy": {}}
        (tmp_path / ".fedledger").mkdir()
        (tmp_path / ".fedledger" / "deployment.json").write_text(json.dumps(rec))
        proc = run("node", "run", "--config", str(cfg))
        assert proc.returncode == 2, proc.stderr
        assert "refused on chain 11155111" in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    finally:
        anvil.terminate()
        anvil.wait(timeout=30)


@pytest.mark.parametrize("cmd", [["round", "status"], ["audit", "verify", "--all"]])
def test_commands_on_a_running_chain_ask_for_its_url_and_do_not_offer_embedded(
        cmd: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDLEDGER_RPC_URL", raising=False)
    helptext = run(*cmd, "--help").stdout
    assert "--rpc-url URL" in helptext and "default: embedded" not in helptext
    proc = run(*cmd)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "pass --rpc-url URL of the running chain" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("args, says", [
    (["--peers", "3"], "--peers 3 with dropouts leaves 1 survivor(s)"),
    (["--peers", "4", "--threshold", "3"], "--threshold 3 with dropouts needs --peers ≥ 5"),
])
def test_demo_settings_the_dropouts_cannot_satisfy_are_a_user_mistake(args, says) -> None:
    proc = run("demo", "--encoder", "tiny", *args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {says}"), proc.stderr


@pytest.mark.parametrize("text, says", [
    ("{bad", "not JSON"),
    ("[1, 2]", "the JSON is not an object"),
    ('{"chain_id": 31337, "colour": "red"}', "unknown keys colour; missing keys backend"),
])
def test_a_broken_deployment_record_is_named_without_python_internals(
        tmp_path, text: str, says: str) -> None:
    rec = tmp_path / "deployment.json"
    rec.write_text(text)
    proc = run("round", "status", "--rpc-url", "http://127.0.0.1:9", "--deployment", str(rec))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"error: not a deployment record: {says}" in proc.stderr, proc.stderr
    assert "__init__" not in proc.stderr and "argument" not in proc.stderr
