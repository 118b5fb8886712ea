"""Deploying the contract suite and recording where it went.

The deployment record is the auditors' starting point: addresses, chain id,
the deployment block and the hash of the sources that were compiled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._chain import Chain
from ._contracts import Federation, LedgerPolicy, Policy, deploy_federation
from .._errors import ConfigError
from ..ops._procs import atomic_write


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    chain_id: int
    backend: str
    block: int
    source_hash: str
    deployer: str
    contracts: dict[str, str]
    gas: dict[str, int]
    policy: dict[str, int]
    ledger_policy: dict[str, float]
    data_schema: str = "0x" + "00" * 32  # the declared schema hash (zero: none declared)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DeploymentRecord:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not a deployment record: not JSON ({exc.msg} at line "
                              f"{exc.lineno})") from None
        if not isinstance(data, dict):
            raise ConfigError("not a deployment record: the JSON is not an object")
        from dataclasses import MISSING, fields

        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        missing = sorted(n for n, f in known.items() if n not in data and f.default is MISSING)
        if unknown or missing:
            parts = ([f"unknown keys {', '.join(unknown)}"] if unknown else []) + (
                [f"missing keys {', '.join(missing)}"] if missing else [])
            raise ConfigError(f"not a deployment record: {'; '.join(parts)}",
                              hint="a record written by another fedledger version? redeploy "
                                   "with `fedledger chain deploy`")
        return cls(**data)

    def save(self, path: Path) -> None:
        atomic_write(path, self.to_json().encode())

    @classmethod
    def load(cls, path: Path) -> DeploymentRecord:
        try:
            return cls.from_json(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"deployment record {path} does not exist",
                              hint="run `fedledger chain deploy` first") from None


def deploy_all(chain: Chain, *, sender: int = 0, policy: Policy = Policy(),
               ledger_policy: LedgerPolicy = LedgerPolicy(),
               data_schema: bytes = bytes(32)) -> DeploymentRecord:
    """Deploy the contract suite and return the record."""
    _, rec = deploy_federation(chain, policy=policy, ledger_policy=ledger_policy, governor=sender,
                               data_schema=data_schema)
    return DeploymentRecord(**rec)


def attach(chain: Chain, record: DeploymentRecord) -> Federation:
    """Bindings for a recorded deployment, after checking it is on this chain."""
    if record.chain_id != chain.chain_id:
        raise ConfigError(f"the deployment record is for chain {record.chain_id}, "
                          f"but the RPC endpoint is chain {chain.chain_id}")
    from web3 import Web3

    contracts: dict[str, str] = {}
    for name in sorted(record.contracts):
        address = record.contracts[name]
        if not isinstance(address, str) or not Web3.is_address(address):
            raise ConfigError(f"the deployment record's {name} address {address!r} is not an "
                              "address", hint="check --deployment")
        address = contracts[name] = Web3.to_checksum_address(address)
        code = bytes(chain.w3.eth.get_code(address))
        if not code:  # a read on an empty account would only fail later, obscurely
            raise ConfigError(f"no contract at {address} ({name} in the deployment record) on "
                              f"chain {chain.chain_id}",
                              hint="check --deployment and --rpc-url: the record must be the one "
                                   "written when this chain was deployed to")
    return Federation(chain, record.contracts | contracts, deploy_block=record.block)
