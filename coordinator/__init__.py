"""fedledger coordinator: the protocol core every role shares.

Chain backends and contract bindings, the content store (IPFS), and — as
later issues land — quantization, masks, secret sharing, commitments,
aggregation and the round driver. It imports nothing else of ours.
"""

from .chain._artifacts import Artifact, check_fresh, load_artifact, load_artifacts, source_hash, strip_metadata
from .chain._chain import Chain, EmbeddedChain, LocalNode, Receipt, RpcChain, connect, load_keystore
from ._errors import (
    BuildError,
    ChainError,
    ChainUnavailableError,
    ComponentMissingError,
    ConfigError,
    ContentMismatchError,
    ContentTooLargeError,
    ContractRevertError,
    FedLedgerError,
    InvalidContentError,
    IpfsError,
    ServiceError,
)

__all__ = [
    "Artifact",
    "BuildError",
    "Chain",
    "ChainError",
    "ChainUnavailableError",
    "ComponentMissingError",
    "ConfigError",
    "ContentMismatchError",
    "ContentTooLargeError",
    "ContractRevertError",
    "EmbeddedChain",
    "FedLedgerError",
    "InvalidContentError",
    "IpfsError",
    "LocalNode",
    "Receipt",
    "RpcChain",
    "ServiceError",
    "check_fresh",
    "connect",
    "load_artifact",
    "load_artifacts",
    "load_keystore",
    "source_hash",
    "strip_metadata",
]
