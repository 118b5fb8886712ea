"""Wire formats stored on IPFS, with one codec each (CBOR, canonical)."""

from __future__ import annotations

from dataclasses import dataclass

import cbor2

from .._errors import ConfigError

MAGIC_BUNDLE = "fedledger.share-bundle.v1"
MAGIC_ADAPTER = "fedledger.adapter.v1"


@dataclass(frozen=True, slots=True)
class ShareBundle:
    """A dealer's shares for one round: the share-commitment leaves in clear
    (hashes, which hide the shares) so anyone can build Merkle proofs, and one
    NaCl Box per holder with that holder's two shares."""

    round_id: int
    dealer: int
    leaves: tuple[bytes, ...]
    boxes: tuple[tuple[int, bytes], ...]  # (holder index, box)

    def to_bytes(self) -> bytes:
        return cbor2.dumps({"magic": MAGIC_BUNDLE, "round": self.round_id, "dealer": self.dealer,
                            "leaves": list(self.leaves),
                            "boxes": [[h, b] for h, b in self.boxes]}, canonical=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> ShareBundle:
        try:
            d = cbor2.loads(data)
            if d.get("magic") != MAGIC_BUNDLE:
                raise ValueError("wrong magic")
            leaves = tuple(bytes(x) for x in d["leaves"])
            if any(len(x) != 32 for x in leaves):
                raise ValueError("leaves must be 32 bytes")
            return cls(int(d["round"]), int(d["dealer"]), leaves,
                       tuple((int(h), bytes(b)) for h, b in d["boxes"]))
        except (cbor2.CBORDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"not a share bundle: {exc}") from None

    def box_for(self, holder: int) -> bytes | None:
        for h, b in self.boxes:
            if h == holder:
                return b
        return None


@dataclass(frozen=True, slots=True)
class AdapterBlob:
    """A global adapter: the flat float32 vector (little-endian), its round,
    and the integer aggregate Σ x it was made from (uint32 LE; empty for the
    initial adapter), so auditors can compare the aggregate chunk by chunk."""

    round_id: int
    values: bytes
    aggregate: bytes = b""

    def to_bytes(self) -> bytes:
        return cbor2.dumps({"magic": MAGIC_ADAPTER, "round": self.round_id,
                            "values": self.values, "aggregate": self.aggregate}, canonical=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> AdapterBlob:
        try:
            d = cbor2.loads(data)
            if d.get("magic") != MAGIC_ADAPTER:
                raise ValueError("wrong magic")
            values = bytes(d["values"])
            if len(values) % 4:
                raise ValueError("values are not float32")
            return cls(int(d["round"]), values, bytes(d.get("aggregate", b"")))
        except (cbor2.CBORDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"not an adapter blob: {exc}") from None
