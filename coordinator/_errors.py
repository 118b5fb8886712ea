"""The one error tree of fedledger.

Every error a user can cause or meet derives from :class:`FedLedgerError`;
only the CLI layer catches the root and turns it into one red line and an
exit code. Subclasses also inherit the builtin that fits, so callers that
think in builtins (``except ValueError``) keep working::

    FedLedgerError
    ├── ConfigError(ValueError)            bad flag, file or value; exit 2
    │   └── InvalidContentError            another party's data (a bundle, a
    │                                      blob, a key, an event field) is malformed
    ├── ComponentMissingError(RuntimeError) a tool is not installed; exit 3
    ├── ServiceError(ConnectionError)       a chain node or Kubo is unreachable
    │   │                                   or failed to start; exit 4
    │   ├── ChainUnavailableError
    │   └── IpfsError
    │       └── ContentMismatchError        bytes do not match their CID
    │           └── ContentTooLargeError    content exceeds its size bound
    ├── BuildError(RuntimeError)            Solidity build missing or stale; exit 5
    ├── AggregationError(RuntimeError)      a round cannot, or must not, be
    │   │                                   unmasked from public data; exit 7
    │   └── DealerFaultError                a dealer's shares are provably
    │                                       wrong (its key shares do not give
    │                                       its posted mask key): prove it
    └── ChainError(RuntimeError)            a transaction failed; exit 6
        └── ContractRevertError             a contract reverted with a custom
                                            error: carries its name and args

Messages name the bad value and say what to do. They never contain keys,
seeds, shares or passphrases.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class FedLedgerError(Exception):
    """Root of every fedledger error. ``exit_code`` is what the CLI returns."""

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class ConfigError(FedLedgerError, ValueError):
    """A flag, file or value supplied by the user is wrong."""

    exit_code = 2


class InvalidContentError(ConfigError):
    """Data written by another party (chain event fields, IPFS content, keys,
    shares) is malformed. The party is skipped; honest roles go on."""


class ComponentMissingError(FedLedgerError, RuntimeError):
    """A required tool (Node 22, Hardhat, solc-js, anvil, Kubo) is not installed."""

    exit_code = 3

    def __init__(self, component: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or "run scripts/setup")
        self.component = component


class ServiceError(FedLedgerError, ConnectionError):
    """A service we need (chain node, IPFS daemon) is unreachable or failed."""

    exit_code = 4


class ChainUnavailableError(ServiceError):
    """The Ethereum JSON-RPC endpoint cannot be reached or failed to start."""


class IpfsError(ServiceError):
    """The Kubo RPC API cannot be reached or answered with an error."""


class ContentMismatchError(IpfsError):
    """Bytes fetched for a CID do not hash to that CID."""


class ContentTooLargeError(ContentMismatchError):
    """Content is, or declares itself, larger than its bound: the fetch stops
    before reading (declared size) or at the bound (streamed bytes)."""


class BuildError(FedLedgerError, RuntimeError):
    """The Solidity build output is missing, stale, or the compiler failed."""

    exit_code = 5


class ChainError(FedLedgerError, RuntimeError):
    """A transaction could not be sent or did not succeed."""

    exit_code = 6


class ContractRevertError(ChainError):
    """A contract call reverted.

    ``name`` is the Solidity custom error's name (``Error`` for a
    ``require``-string revert, ``Panic`` for an assertion, ``""`` when the
    revert carried no data) and ``args`` maps each parameter name to its
    decoded value. The same error surfaces on every chain backend.
    """

    def __init__(
        self,
        name: str,
        args: Mapping[str, object],
        *,
        contract: str | None = None,
        data: bytes = b"",
    ) -> None:
        self.name = name
        self.args_by_name = dict(args)
        self.contract = contract
        self.data = data
        shown = ", ".join(f"{k}={_short(v)}" for k, v in self.args_by_name.items())
        where = f"{contract}: " if contract else ""
        label = name or "revert without data"
        super().__init__(f"{where}{label}({shown})")


def _short(value: object) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return repr(value) if isinstance(value, str) else str(value)


class AggregationError(FedLedgerError, RuntimeError):
    """The round cannot (or must not) be aggregated from public data; the
    message names what is missing."""

    exit_code = 7


class DealerFaultError(AggregationError):
    """Dealer ``dealer``'s verifying shares of kind ``kind`` (1: mask key)
    reconstruct a secret that contradicts what it posted: the round cannot be
    unmasked, the fault is the dealer's, and a dealer-fault proof shows it
    on-chain (``fedledger.protocol._challenge.prove_dealer_fault``)."""

    def __init__(self, message: str, *, dealer: int, kind: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or "prove it on-chain with a dealer-fault proof; "
                         "the dealer is quarantined and the round fails without blaming anyone else")
        self.dealer = dealer
        self.kind = kind
