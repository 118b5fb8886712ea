"""Deploying the contract suite and recording where it went.

The deployment record is the auditors' starting point: addresses, chain id,
the deployment block and the hash of the sources that were compiled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._artifacts import load_artifacts, source_hash
from ._chain import Chain
from ._errors import ConfigError
from ._procs import atomic_write

#: Contracts `fedledger chain deploy` deploys, in order. The protocol
#: contracts join this list as they land; Probe is the foundation's smoke
#: contract (deploy, event, custom error) used by `fedledger doctor`.
DEPLOY_PLAN: tuple[str, ...] = ("Probe",)


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    chain_id: int
    backend: str
    block: int
    source_hash: str
    deployer: str
    contracts: dict[str, str]
    gas: dict[str, int]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DeploymentRecord:
        try:
            data: dict[str, Any] = json.loads(text)
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise ConfigError(f"not a deployment record: {exc}") from None

    def save(self, path: Path) -> None:
        atomic_write(path, self.to_json().encode())

    @classmethod
    def load(cls, path: Path) -> DeploymentRecord:
        try:
            return cls.from_json(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"deployment record {path} does not exist",
                              hint="run `fedledger chain deploy` first") from None


def deploy_all(chain: Chain, *, sender: int = 0) -> DeploymentRecord:
    """Deploy :data:`DEPLOY_PLAN` and return the record."""
    arts = load_artifacts()
    addresses: dict[str, str] = {}
    gas: dict[str, int] = {}
    first_block = None
    for name in DEPLOY_PLAN:
        _, rcpt = chain.deploy(arts[name], sender=sender)
        assert rcpt.contract_address is not None
        addresses[name] = rcpt.contract_address
        gas[name] = rcpt.gas_used
        first_block = rcpt.block_number if first_block is None else first_block
    return DeploymentRecord(
        chain_id=chain.chain_id,
        backend=chain.backend,
        block=first_block or 0,
        source_hash=source_hash(),
        deployer=chain.account(sender).address,
        contracts=addresses,
        gas=gas,
    )
