"""Three chain backends behind one interface.

* ``embedded`` — eth-tester + py-evm in this process. No server; the default
  for the demo and unit tests. Its ``eth_getLogs`` scans every block from the
  start, so callers read events over narrow block ranges (see
  :meth:`Chain.logs`).
* ``anvil`` / ``hardhat`` — a local node that we start on a free 127.0.0.1
  port, wait for, and stop (:class:`LocalNode`).
* any ``http(s)://`` JSON-RPC URL, with accounts from encrypted keystore files.

Every backend signs locally with :mod:`eth_account` and sends raw
transactions, so the transaction path is one code path. A revert surfaces as
:class:`ContractRevertError` carrying the custom error's name and arguments,
whatever the backend's own exception type.
"""

from __future__ import annotations

import ast
import copy
import json
import time
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_hash.auto import keccak
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction

from ._artifacts import Artifact, load_artifact, load_artifacts
from .._errors import (
    ChainError,
    ChainUnavailableError,
    ConfigError,
    ContractRevertError,
)
from ..ops._paths import anvil_binary, hardhat_cli, node_env, project_root, state_dir
from ..ops._procs import ManagedProcess, free_port

log = logging.getLogger("fedledger.chain")

#: The well-known development mnemonic that anvil and the Hardhat node fund.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
#: Block gas limit on the chains we start (fraud proofs need headroom).
DEV_GAS_LIMIT = 60_000_000
DEV_ACCOUNTS = 20

_ERROR_STRING = function_signature_to_4byte_selector("Error(string)")
_PANIC = function_signature_to_4byte_selector("Panic(uint256)")


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a caller needs from a mined transaction."""

    tx_hash: str
    block_number: int
    gas_used: int
    contract_address: str | None
    logs: tuple[Any, ...]


class ErrorDecoder:
    """Maps 4-byte error selectors to custom errors over a set of ABIs."""

    def __init__(self, abis: Iterable[tuple[str, Sequence[dict[str, Any]]]]) -> None:
        self._by_selector: dict[bytes, tuple[str, str, list[str], list[str]]] = {}
        for contract, abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                types = [_abi_type(i) for i in item["inputs"]]
                sig = f"{item['name']}({','.join(types)})"
                selector = function_signature_to_4byte_selector(sig)
                names = [i["name"] or f"arg{n}" for n, i in enumerate(item["inputs"])]
                self._by_selector.setdefault(selector, (item["name"], contract, types, names))

    def decode(self, data: bytes) -> ContractRevertError:
        if len(data) < 4:
            return ContractRevertError("", {}, data=data)
        selector, body = data[:4], data[4:]
        if selector == _ERROR_STRING:
            (msg,) = abi_decode(["string"], body)
            return ContractRevertError("Error", {"message": msg}, data=data)
        if selector == _PANIC:
            (code,) = abi_decode(["uint256"], body)
            return ContractRevertError("Panic", {"code": code}, data=data)
        known = self._by_selector.get(selector)
        if known is None:
            return ContractRevertError(f"unknown error 0x{selector.hex()}", {}, data=data)
        name, contract, types, names = known
        values = [to_checksum_address(v) if t == "address" else v
                  for t, v in zip(types, abi_decode(types, body), strict=True)]
        return ContractRevertError(name, dict(zip(names, values)), contract=contract, data=data)


def _abi_type(item: dict[str, Any]) -> str:
    t: str = item["type"]
    if t.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){t[5:]}"
    return t


class Chain:
    """A connected chain with signing accounts. Use :func:`connect`."""

    backend: str

    def __init__(self, w3: Web3, accounts: Sequence[LocalAccount], *, backend: str) -> None:
        self.w3 = w3
        self.accounts = list(accounts)
        self.backend = backend
        self.chain_id = int(w3.eth.chain_id)
        self._decoder: ErrorDecoder | None = None
        self._nonces: dict[str, int] = {}
        self.fixed_gas: int | None = None  # set: skip gas estimation (in-process chains)

    # -- errors -------------------------------------------------------------
    @property
    def decoder(self) -> ErrorDecoder:
        if self._decoder is None:
            self._decoder = ErrorDecoder(
                (a.name, a.abi) for a in load_artifacts(check=False).values()
            )
        return self._decoder

    def _revert_data(self, tx: dict[str, Any], block: int | str = "latest") -> bytes | None:
        """Revert data of ``tx`` replayed as a call, or None if it succeeds."""
        call = {k: tx[k] for k in ("from", "to", "data", "value", "gas") if k in tx}
        for k in ("value", "gas"):
            if k in call:
                call[k] = hex(int(call[k]))
        if isinstance(block, int):
            block = hex(block)
        resp = self.w3.provider.make_request("eth_call", [call, block])  # type: ignore[arg-type]
        err = resp.get("error")
        if not err:
            return None
        data = err.get("data") if isinstance(err, dict) else None
        if isinstance(data, dict):  # some nodes nest it: {"data": "0x.."}
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x"):
            return bytes.fromhex(data[2:])
        return b""

    def _raise_revert(self, tx: dict[str, Any], exc: Exception | None, block: int | str = "latest") -> None:
        # Prefer the data the failed estimate/send carried: a replay at
        # "latest" runs one block earlier than the pending transaction did,
        # and deadline checks can differ between the two.
        text = str(exc) if exc is not None else ""
        if "insufficient funds" in text.lower():
            raise ChainError(f"account {tx.get('from')} has too little ether for gas and value",
                             hint="fund the account, or use another --keystore") from exc
        data = _exception_revert_data(exc) if exc is not None else None
        if data is None:
            data = self._revert_data(tx, block)
        if data is None and exc is None:
            return
        if data is None or (not data and exc is not None and "revert" not in text.lower()):
            raise ChainError(f"transaction failed: {text or 'no reason given'}") from exc
        raise self.decoder.decode(data) from exc

    def _traced_revert_data(self, tx_hash: str) -> bytes | None:
        """The return data of a mined, failed transaction from the node's call
        tracer (anvil, geth, Hardhat); None where the node has no tracer."""
        try:
            resp = self.w3.provider.make_request(
                "debug_traceTransaction",  # type: ignore[arg-type]
                [tx_hash, {"tracer": "callTracer", "tracerConfig": {"onlyTopCall": True}}])
        except Exception:  # noqa: BLE001 - a node without the debug namespace
            return None
        result = resp.get("result") if isinstance(resp, dict) else None
        out = result.get("output") if isinstance(result, dict) else None
        if isinstance(out, str) and out.startswith("0x") and len(out) > 2:
            try:
                return bytes.fromhex(out[2:])
            except ValueError:
                return None
        return None

    def _raise_mined_revert(self, tx: dict[str, Any], tx_hash: str, block: int) -> None:
        """Decode why a mined transaction failed. A replay one block earlier
        runs with another ``block.number``, so a deadline that had just passed
        "succeeds" there: ask the tracer for the real return data first, then
        replay at the failing block itself (the revert left its state as
        before), and only then one block earlier."""
        data = self._traced_revert_data(tx_hash)
        if data:
            raise self.decoder.decode(data)
        for at in (block, block - 1):
            data = self._revert_data(tx, at)
            if data:
                raise self.decoder.decode(data)

    # -- transactions -------------------------------------------------------
    def account(self, who: int | str | LocalAccount) -> LocalAccount:
        if isinstance(who, int):
            try:
                return self.accounts[who]
            except IndexError:
                raise ConfigError(
                    f"account index {who} out of range; this chain has {len(self.accounts)} accounts"
                ) from None
        if isinstance(who, str):
            for a in self.accounts:
                if a.address.lower() == who.lower():
                    return a
            raise ConfigError(f"no signing key for account {who} on this chain")
        return who

    def _next_nonce(self, address: str) -> int:
        chain_nonce = int(self.w3.eth.get_transaction_count(address, "pending"))  # type: ignore[arg-type]
        nonce = max(chain_nonce, self._nonces.get(address, 0))
        self._nonces[address] = nonce + 1
        return nonce

    def send(self, tx: dict[str, Any], *, sender: int | str | LocalAccount = 0) -> Receipt:
        """Estimate, sign, send and wait for ``tx``; decode any revert."""
        acct = self.account(sender)
        tx = dict(tx)
        tx["from"] = acct.address
        tx.setdefault("value", 0)
        tx.setdefault("chainId", self.chain_id)
        if "gas" not in tx and self.fixed_gas:
            tx["gas"] = self.fixed_gas  # reverts are still decoded below, from a call
        if "gas" not in tx:
            try:
                tx["gas"] = int(self.w3.eth.estimate_gas(tx) * 1.2) + 10_000  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - backends raise different types
                self._raise_revert(tx, exc)
                raise ChainError(f"gas estimation failed: {exc}") from exc
        if "maxFeePerGas" not in tx and "gasPrice" not in tx:
            base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
            tip = 1_000_000_000
            tx["maxPriorityFeePerGas"] = tip
            tx["maxFeePerGas"] = 2 * base + tip
        if tx.get("to") in (b"", "", None):
            tx.pop("to", None)
        for attempt in range(5):
            tx["nonce"] = self._next_nonce(acct.address)
            signed = acct.sign_transaction(tx)
            try:
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
                break
            except Exception as exc:  # noqa: BLE001
                self._nonces.pop(acct.address, None)
                if "nonce" in str(exc).lower() and attempt < 4:
                    # Another process signed with this account meanwhile
                    # (e.g. a peer that also aggregates): take the next nonce.
                    time.sleep(0.05 * (attempt + 1))
                    continue
                self._raise_revert(tx, exc)
                raise ChainError(f"sending the transaction failed: {exc}") from exc
        rcpt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if rcpt["status"] != 1:
            self._raise_mined_revert(tx, "0x" + bytes(tx_hash).hex(), int(rcpt["blockNumber"]))
            raise ChainError(f"transaction 0x{bytes(tx_hash).hex()} reverted without data")
        log.debug("tx %s gas=%d", tx_hash.hex(), rcpt["gasUsed"])
        addr = rcpt.get("contractAddress")
        return Receipt(
            tx_hash="0x" + bytes(tx_hash).hex(),
            block_number=int(rcpt["blockNumber"]),
            gas_used=int(rcpt["gasUsed"]),
            contract_address=to_checksum_address(addr) if addr else None,
            logs=tuple(rcpt["logs"]),
        )

    def transact(self, fn: ContractFunction, *, sender: int | str | LocalAccount = 0,
                 value: int = 0) -> Receipt:
        acct = self.account(sender)
        tx: dict[str, Any] = {
            "to": fn.address,
            "data": fn._encode_transaction_data(),
            "value": value,
            "from": acct.address,
        }
        return self.send(tx, sender=acct)

    def call(self, fn: ContractFunction, *, sender: int | str | LocalAccount = 0,
             block: int | None = None) -> Any:
        """A view call, at ``block`` when given (an auditor's snapshot), else
        at the head."""
        # A read-only view (no signing accounts) calls from the zero address.
        frm = self.account(sender).address if self.accounts else "0x" + "00" * 20
        try:
            if block is None:
                return fn.call({"from": frm})
            return fn.call({"from": frm}, block_identifier=block)
        except Exception as exc:  # noqa: BLE001
            tx = {"to": fn.address, "data": fn._encode_transaction_data(), "from": frm}
            self._raise_revert(tx, exc)
            raise ChainError(f"call failed: {exc}") from exc

    def deploy(self, name: str | Artifact, *args: Any,
               sender: int | str | LocalAccount = 0, value: int = 0) -> tuple[Contract, Receipt]:
        art = name if isinstance(name, Artifact) else load_artifact(name)
        factory = self.w3.eth.contract(abi=list(art.abi), bytecode=art.bytecode)
        data = factory.constructor(*args).data_in_transaction
        rcpt = self.send({"data": data, "value": value}, sender=sender)
        assert rcpt.contract_address is not None
        return self.contract(art, rcpt.contract_address), rcpt

    def contract(self, name: str | Artifact, address: str) -> Contract:
        art = name if isinstance(name, Artifact) else load_artifact(name)
        return self.w3.eth.contract(address=to_checksum_address(address), abi=list(art.abi))

    def logs(self, contract: Contract, event: str, from_block: int, to_block: int | None = None) -> list[Any]:
        """Decoded events of one type over [from_block, to_block]; callers keep
        ranges narrow because eth-tester's log scan is linear in chain length."""
        ev = getattr(contract.events, event)
        return list(ev.get_logs(from_block=from_block, to_block=to_block or "latest"))

    def all_logs(self, contract: Contract, from_block: int, to_block: int | None = None) -> list[Any]:
        """Every decodable event of ``contract`` over the range, in order, with
        one log query (cheaper than one query per event type)."""
        from web3._utils.events import get_event_data

        by_topic: dict[bytes, Any] = {}
        entries: list[dict[str, Any]] = [dict(e) for e in contract.abi]
        for ev in entries:
            if ev.get("type") == "event" and not ev.get("anonymous"):
                sig = f"{ev['name']}({','.join(_canonical(i) for i in ev['inputs'])})"
                by_topic[keccak(sig.encode())] = ev
        raw = self.w3.eth.get_logs({"address": contract.address, "fromBlock": from_block,
                                    "toBlock": to_block if to_block is not None else "latest"})
        out = []
        for entry in raw:
            event_abi = by_topic.get(bytes(entry["topics"][0])) if entry["topics"] else None
            if event_abi is not None:
                out.append(get_event_data(self.w3.codec, event_abi, entry))
        return out

    def ensure_accounts(self, count: int, *, fund: int = 10**20) -> None:
        """Grow the signing accounts to ``count`` (development chains): new
        keys are derived deterministically and funded from account 0."""
        i = len(self.accounts)
        while len(self.accounts) < count:
            acct = _derived_account(i)
            self.send({"to": acct.address, "value": fund}, sender=0)
            self.accounts.append(acct)
            i += 1

    @property
    def block_number(self) -> int:
        return int(self.w3.eth.block_number)

    def mine(self, blocks: int = 1) -> None:
        """Mine empty blocks (development chains only)."""
        raise ChainError(f"mining on demand is not supported on the {self.backend} backend")

    def close(self) -> None:
        pass

    def __enter__(self) -> Chain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _canonical(inp: dict[str, Any]) -> str:
    """The canonical ABI type of an event input (tuples expanded)."""
    t = str(inp["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_canonical(c) for c in inp["components"]) + ")" + t[len("tuple"):]
    return t


class EmbeddedChain(Chain):
    """eth-tester + py-evm in this process."""

    def __init__(self, *, gas_limit: int = DEV_GAS_LIMIT) -> None:
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import EthereumTesterProvider

        params = PyEVMBackend.generate_genesis_params(overrides={"gas_limit": gas_limit})
        backend = PyEVMBackend(genesis_parameters=params)
        self.tester = EthereumTester(backend)
        w3 = Web3(EthereumTesterProvider(self.tester))
        accounts = [Account.from_key(k.to_bytes()) for k in backend.account_keys]
        super().__init__(w3, accounts, backend="embedded")
        # py-evm's gas estimation re-executes a transaction many times (a
        # binary search); in process a fixed limit costs nothing and a revert
        # is still decoded from a call. Gas *used* does not depend on it.
        self.fixed_gas = gas_limit // 2
        # View results at the head, valid until the head changes (see call).
        self._views: dict[tuple[str, str, str], Any] = {}
        self._views_head: bytes = b""

    def call(self, fn: ContractFunction, *, sender: int | str | LocalAccount = 0,
             block: int | None = None) -> Any:
        """A view call; at the head, answered from a cache of this head's
        results. In process this object is the chain's only writer and every
        transaction mines its own block, so state changes iff the head's hash
        does (a snapshot revert changes it too): a cached answer is the answer
        py-evm would compute, which costs ~30 ms a call. Peers stepped in
        one process poll the same views many times per block."""
        if block is not None:
            return super().call(fn, sender=sender, block=block)
        head = bytes(self.tester.backend.chain.get_canonical_head().hash)
        if head != self._views_head:
            self._views.clear()
            self._views_head = head
        frm = self.account(sender).address if self.accounts else ""
        key = (str(fn.address), fn._encode_transaction_data(), frm)
        if key not in self._views:
            self._views[key] = super().call(fn, sender=sender)  # a revert raises: not cached
        return copy.deepcopy(self._views[key])

    def _revert_data(self, tx: dict[str, Any], block: int | str = "latest") -> bytes | None:
        from eth_tester.exceptions import TransactionFailed

        call: dict[str, Any] = {"from": tx["from"], "to": tx.get("to") or "",
                                "data": tx.get("data", "0x"), "value": int(tx.get("value", 0)),
                                "gas": int(tx.get("gas", DEV_GAS_LIMIT // 2))}
        if isinstance(call["data"], bytes):
            call["data"] = "0x" + call["data"].hex()
        try:
            self.tester.call(call, block if isinstance(block, int) else "latest")
        except TransactionFailed as exc:
            return _tester_revert_bytes(exc)
        return None

    def mine(self, blocks: int = 1) -> None:
        self.tester.mine_blocks(blocks)


def _exception_revert_data(exc: BaseException) -> bytes | None:
    """Revert data carried by a backend's exception, if any."""
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, dict) and isinstance(data.get("data"), str):
        return bytes.fromhex(data["data"].removeprefix("0x"))
    if type(exc).__name__ == "TransactionFailed":
        text = str(exc.args[0]) if exc.args else ""
        text = text.removeprefix("execution reverted: ")
        if text.startswith(("b'", 'b"')):
            return _tester_revert_bytes(Exception(text))
    return None


def _tester_revert_bytes(exc: Exception) -> bytes:
    """eth-tester reports revert data as the repr of a bytes object in its
    message (or as the decoded text for ``Error(string)``); recover the bytes."""
    arg = exc.args[0] if exc.args else b""
    if isinstance(arg, Exception):
        arg = arg.args[0] if arg.args else b""
    if isinstance(arg, bytes):
        return arg
    text = str(arg)
    if text.startswith(("b'", 'b"')):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return b""
        return value if isinstance(value, bytes) else b""
    if text:
        return _ERROR_STRING + abi_encode(["string"], [text])
    return b""


def _derived_account(i: int) -> LocalAccount:
    """Development account ``i`` beyond the mnemonic's: a key derived from
    the index, funded by :meth:`Chain.ensure_accounts` (never on real chains)."""
    acct: LocalAccount = Account.from_key(keccak(b"fedledger.dev-account" + i.to_bytes(4, "big")))
    return acct


def _dev_accounts(n: int = DEV_ACCOUNTS) -> list[LocalAccount]:
    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(n)
    ]


class LocalNode(Chain):
    """An anvil or Hardhat node that we start on 127.0.0.1 and stop ourselves."""

    KINDS = ("anvil", "hardhat")

    def __init__(self, kind: str = "anvil", *, port: int | None = None,
                 workdir: Path | None = None, timeout: float = 60.0,
                 block_time: float | None = None) -> None:
        if kind not in self.KINDS:
            raise ConfigError(f"unknown local node {kind!r}; choose one of {', '.join(self.KINDS)}")
        self.kind = kind
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir = workdir or state_dir() / "chains"
        log_path = workdir / f"{kind}-{self.port}.log"
        if kind == "anvil":
            argv = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(self.port),
                    "--accounts", str(DEV_ACCOUNTS), "--mnemonic", DEV_MNEMONIC,
                    "--gas-limit", str(DEV_GAS_LIMIT), "--chain-id", "31337",
                    "--silent"]
            if block_time:
                argv += ["--block-time", str(block_time)]
            env = None
        else:
            argv = [str(hardhat_cli()), "node", "--hostname", "127.0.0.1", "--port", str(self.port)]
            env = node_env()
        self.process = ManagedProcess(kind, argv, log_path=log_path, env=env, cwd=project_root())
        w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 60}))
        try:
            self.process.wait_ready(w3.is_connected, timeout=timeout,
                                    what=f"JSON-RPC on {self.url}")
        except Exception as exc:
            self.process.stop()
            raise ChainUnavailableError(str(exc)) from exc
        super().__init__(w3, _dev_accounts(), backend=kind)

    def mine(self, blocks: int = 1) -> None:
        method = "anvil_mine" if self.kind == "anvil" else "hardhat_mine"
        self.w3.provider.make_request(method, [hex(blocks)])  # type: ignore[arg-type]

    def close(self) -> None:
        self.process.stop()


class RpcChain(Chain):
    """Any JSON-RPC endpoint; accounts come from encrypted keystore files."""

    def __init__(self, url: str, *, keystores: Sequence[Path] = (), passphrase: str | None = None,
                 dev_accounts: bool = False) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"RPC URL {url!r} must start with http:// or https://")
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
        try:
            connected = w3.is_connected()
        except Exception:  # noqa: BLE001
            connected = False
        if not connected:
            raise ChainUnavailableError(
                f"no Ethereum JSON-RPC endpoint answers at {url}",
                hint="start a node there, or pass --rpc-url with the right address",
            )
        accounts = [load_keystore(p, passphrase) for p in keystores]
        if dev_accounts:  # the mnemonic's, then the derived ones ensure_accounts funds
            accounts += _dev_accounts() + [_derived_account(i) for i in range(DEV_ACCOUNTS, 128)]
        super().__init__(w3, accounts, backend="url")
        self.url = url

    def mine(self, blocks: int = 1) -> None:
        """Mine on a development node at this URL (anvil, Hardhat, or any node
        with ``evm_mine``); other chains make blocks on their own."""
        for method, params in (("anvil_mine", [hex(blocks)]), ("hardhat_mine", [hex(blocks)])):
            resp = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
            if "error" not in resp:
                return
        for _ in range(blocks):
            resp = self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            if "error" in resp:
                raise ChainError(f"the node at {self.url} does not mine on demand: "
                                 f"{resp['error']}")


def load_keystore(path: Path, passphrase: str | None) -> LocalAccount:
    """Decrypt an Ethereum keystore (v3 JSON) file. The key never leaves memory."""
    if passphrase is None:
        raise ConfigError(f"keystore {path} needs a passphrase",
                          hint="set FEDLEDGER_KEYSTORE_PASSPHRASE or pass --passphrase-file")
    try:
        blob = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"keystore file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"keystore file {path} is not keystore JSON") from None
    try:
        key = Account.decrypt(blob, passphrase)
    except ValueError:
        # Deliberately say nothing about the passphrase or key material.
        raise ConfigError(f"could not decrypt keystore {path}: wrong passphrase or corrupt file") from None
    acct: LocalAccount = Account.from_key(key)
    return acct


def connect(spec: str = "embedded", **kwargs: Any) -> Chain:
    """Open a chain by name: ``embedded``, ``anvil``, ``hardhat`` or an RPC URL."""
    if spec == "embedded":
        return EmbeddedChain(**kwargs)
    if spec in LocalNode.KINDS:
        return LocalNode(spec, **kwargs)
    if spec.startswith(("http://", "https://")):
        return RpcChain(spec, **kwargs)
    raise ConfigError(
        f"unknown chain {spec!r}",
        hint="use embedded, anvil, hardhat or an http(s):// JSON-RPC URL",
    )
