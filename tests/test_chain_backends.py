"""Deploy, call, events and custom-error decoding on every chain backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from coordinator import (
    Chain,
    ChainUnavailableError,
    ConfigError,
    ContractRevertError,
    LocalNode,
    RpcChain,
    connect,
    load_keystore,
)
from coordinator.chain._chain import ErrorDecoder, _tester_revert_bytes


def test_deploy_call_event_and_custom_error_on_every_backend(any_chain: Chain) -> None:
    probe, deploy_rcpt = any_chain.deploy("Probe")
    assert deploy_rcpt.gas_used > 0

    rcpt = any_chain.transact(probe.functions.set(7), sender=1)
    assert any_chain.call(probe.functions.value()) == 7
    events = any_chain.logs(probe, "ValueSet", rcpt.block_number, rcpt.block_number)
    assert [(e["args"]["by"], e["args"]["value"]) for e in events] == [
        (any_chain.accounts[1].address, 7)
    ]

    with pytest.raises(ContractRevertError) as info:
        any_chain.transact(probe.functions.set(1001), sender=1)
    assert info.value.name == "ProbeValueTooLarge"
    assert info.value.args_by_name == {"value": 1001, "limit": 1000}
    assert info.value.contract == "Probe"
    # The failed transaction changed nothing.
    assert any_chain.call(probe.functions.value()) == 7


def test_revert_is_typed_error_on_call_too(embedded_chain: Chain) -> None:
    probe, _ = embedded_chain.deploy("Probe")
    fn = probe.functions.set(5000)
    with pytest.raises(ContractRevertError) as info:
        embedded_chain.call(fn)
    assert info.value.name == "ProbeValueTooLarge"


def test_embedded_view_cache_never_answers_from_an_older_head(embedded_chain: Chain) -> None:
    """Views at the head are cached per head block: every state change (a
    transaction, a mined block, another sender's write) must be seen."""
    probe, _ = embedded_chain.deploy("Probe")
    for v in (3, 4, 4, 9):
        assert embedded_chain.call(probe.functions.value()) != v or v == 4
        embedded_chain.transact(probe.functions.set(v), sender=1 + v % 2)
        assert embedded_chain.call(probe.functions.value()) == v
        assert embedded_chain.call(probe.functions.value(), sender=2) == v
    head = embedded_chain.block_number
    embedded_chain.mine(2)
    assert embedded_chain.call(probe.functions.value()) == 9
    # A pinned read still goes to the old block, not to the cache.
    embedded_chain.transact(probe.functions.set(11), sender=1)
    assert embedded_chain.call(probe.functions.value(), block=head) == 9
    assert embedded_chain.call(probe.functions.value()) == 11


def test_error_decoder_handles_error_string_panic_and_unknown() -> None:
    from eth_abi import encode
    from eth_utils import function_signature_to_4byte_selector as sel

    dec = ErrorDecoder([])
    e = dec.decode(sel("Error(string)") + encode(["string"], ["nope"]))
    assert (e.name, e.args_by_name) == ("Error", {"message": "nope"})
    e = dec.decode(sel("Panic(uint256)") + encode(["uint256"], [0x11]))
    assert (e.name, e.args_by_name) == ("Panic", {"code": 0x11})
    e = dec.decode(b"\xde\xad\xbe\xef")
    assert e.name == "unknown error 0xdeadbeef"
    assert dec.decode(b"").name == ""


def test_tester_revert_bytes_recovers_data_from_message() -> None:
    data = b"]`\x00\xde" + bytes(64)
    assert _tester_revert_bytes(Exception(repr(data))) == data
    assert _tester_revert_bytes(Exception(data)) == data


@pytest.mark.integration
def test_url_backend_signs_with_encrypted_keystore(tmp_path: Path) -> None:
    with LocalNode("anvil", workdir=tmp_path) as node:
        # Fund a fresh key from a dev account, then use it only through its keystore.
        fresh = Account.create()
        node.send({"to": fresh.address, "value": 10**18})
        ks = tmp_path / "key.json"
        ks.write_text(json.dumps(Account.encrypt(fresh.key, "correct horse", kdf="pbkdf2",
                                                 iterations=2048)))
        chain = RpcChain(node.url, keystores=[ks], passphrase="correct horse")
        assert chain.accounts[0].address == fresh.address
        probe, _ = chain.deploy("Probe", sender=0)
        chain.transact(probe.functions.set(3), sender=fresh.address)
        assert chain.call(probe.functions.value()) == 3
        with pytest.raises(ContractRevertError) as info:
            chain.transact(probe.functions.set(2000))
        assert info.value.name == "ProbeValueTooLarge"


def test_keystore_errors_are_plain_and_never_show_the_key(tmp_path: Path) -> None:
    acct = Account.create()
    ks = tmp_path / "key.json"
    ks.write_text(json.dumps(Account.encrypt(acct.key, "right", kdf="pbkdf2", iterations=2048)))
    with pytest.raises(ConfigError) as info:
        load_keystore(ks, "wrong")
    msg = str(info.value)
    assert "wrong passphrase" in msg
    assert acct.key.hex() not in msg and "right" not in msg.replace("wrong", "")
    with pytest.raises(ConfigError, match="needs a passphrase"):
        load_keystore(ks, None)
    with pytest.raises(ConfigError, match="does not exist"):
        load_keystore(tmp_path / "missing.json", "x")
    (tmp_path / "bad.json").write_text("not json")
    with pytest.raises(ConfigError, match="not keystore JSON"):
        load_keystore(tmp_path / "bad.json", "x")


def test_unreachable_rpc_url_is_a_clear_error() -> None:
    with pytest.raises(ChainUnavailableError, match="no Ethereum JSON-RPC endpoint"):
        RpcChain("http://127.0.0.1:9")


def test_unknown_chain_spec_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown chain 'mainnet'"):
        connect("mainnet")


@pytest.mark.integration
def test_local_node_stops_cleanly(tmp_path: Path) -> None:
    node = LocalNode("anvil", workdir=tmp_path)
    pid = node.process.pid
    node.close()
    assert not node.process.alive()
    import os

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.integration
def test_unfunded_account_gets_a_plain_error(tmp_path: Path) -> None:
    from coordinator import ChainError

    with LocalNode("anvil", workdir=tmp_path) as node:
        probe, _ = node.deploy("Probe")
        broke = Account.create()
        ks = tmp_path / "broke.json"
        ks.write_text(json.dumps(Account.encrypt(broke.key, "pw", kdf="pbkdf2", iterations=2048)))
        chain = RpcChain(node.url, keystores=[ks], passphrase="pw")
        with pytest.raises(ChainError) as info:
            chain.transact(chain.contract("Probe", probe.address).functions.set(1))
        assert "too little ether" in str(info.value)
        assert not isinstance(info.value, ContractRevertError)
