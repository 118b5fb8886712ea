"""Wire formats stored on IPFS, with one codec each (CBOR, canonical).

Every ``from_bytes`` reads another party's bytes: it checks each field's
type strictly (no coercion of strings, floats or booleans to integers) and
raises :class:`InvalidContentError` — and nothing else — for anything that
is not a well-formed value. ``max_bytes`` gives the largest encoding a round
can need, the bound of the fetch (issue 11)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cbor2

from .._errors import InvalidContentError

MAGIC_BUNDLE = "fedledger.share-bundle.v1"
MAGIC_ADAPTER = "fedledger.adapter.v2"
BOX_BYTES = 24 + 76 + 16  # NaCl Box: nonce, two 32-byte shares + 12-byte header, MAC


def _uint(value: Any, what: str, below: int = 2**64) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < below:
        raise ValueError(f"{what} must be an integer in [0, {below})")
    return value


def _bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise ValueError(f"{what} must be a byte string")
    return value


def _map(data: bytes, magic: str) -> dict[Any, Any]:
    d = cbor2.loads(data)
    if not isinstance(d, dict) or d.get("magic") != magic:
        raise ValueError("wrong magic")
    return d


@dataclass(frozen=True, slots=True)
class ShareBundle:
    """A dealer's shares for one round: the share-commitment leaves in clear
    (hashes, which hide the shares) so anyone can build Merkle proofs, the
    Feldman commitments of its two polynomials (2t G1 points, bound to the
    share root by the last leaf), and one NaCl Box per holder with that
    holder's two shares."""

    round_id: int
    dealer: int
    leaves: tuple[bytes, ...]
    boxes: tuple[tuple[int, bytes], ...]  # (holder index, box)
    commitments: bytes = b""

    def to_bytes(self) -> bytes:
        return cbor2.dumps({"magic": MAGIC_BUNDLE, "round": self.round_id, "dealer": self.dealer,
                            "leaves": list(self.leaves),
                            "boxes": [[h, b] for h, b in self.boxes],
                            "commitments": self.commitments}, canonical=True)

    @staticmethod
    def max_bytes(n: int) -> int:
        """The largest encoding of a bundle in a round of ``n`` participants
        (threshold ≤ n: at most 2n commitment points)."""
        return 256 + (2 * n + 1) * 35 + n * (BOX_BYTES + 16) + 2 * n * 64 + 16

    @classmethod
    def from_bytes(cls, data: bytes) -> ShareBundle:
        try:
            d = _map(data, MAGIC_BUNDLE)
            leaves, boxes = d["leaves"], d["boxes"]
            if not isinstance(leaves, list) or not isinstance(boxes, list):
                raise ValueError("leaves and boxes must be arrays")
            lv = tuple(_bytes(x, "a leaf") for x in leaves)
            if any(len(x) != 32 for x in lv):
                raise ValueError("leaves must be 32 bytes")
            bx = []
            for item in boxes:
                if not isinstance(item, list) or len(item) != 2:
                    raise ValueError("a box entry must be [holder, box]")
                bx.append((_uint(item[0], "a holder", 2**16), _bytes(item[1], "a box")))
            return cls(_uint(d["round"], "round"), _uint(d["dealer"], "dealer", 2**16), lv,
                       tuple(bx), _bytes(d["commitments"], "the commitments"))
        except InvalidContentError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to decode hostile bytes
            raise InvalidContentError(f"not a share bundle: {type(exc).__name__}: "
                                      f"{str(exc)[:120]}") from None

    def check(self, *, round_id: int, dealer: int, n: int, t: int) -> None:
        """Refuse a bundle that is not this round's dealing by ``dealer``:
        one 32-byte leaf per (holder, kind) of the round's ``n`` participants
        and one for the commitments, 2t commitment points of 64 bytes, at
        most one box of the right size per holder index below ``n``."""
        if self.round_id != round_id or self.dealer != dealer:
            raise InvalidContentError(f"bundle says round {self.round_id}, dealer {self.dealer}; "
                                      f"expected round {round_id}, dealer {dealer}")
        if len(self.leaves) != 2 * n + 1:
            raise InvalidContentError(f"bundle of dealer {dealer} has {len(self.leaves)} "
                                      f"leaves; a round of {n} has {2 * n + 1}")
        if len(self.commitments) != 2 * t * 64:
            raise InvalidContentError(f"bundle of dealer {dealer} has {len(self.commitments)} "
                                      f"bytes of commitments; threshold {t} needs {2 * t * 64}")
        holders = [h for h, _ in self.boxes]
        if len(set(holders)) != len(holders) or any(h >= n for h in holders):
            raise InvalidContentError(f"bundle of dealer {dealer} has repeated or out-of-range "
                                      "holders")
        if any(len(b) != BOX_BYTES for _, b in self.boxes):
            raise InvalidContentError(f"bundle of dealer {dealer} has a box that is not "
                                      f"{BOX_BYTES} bytes")

    def box_for(self, holder: int) -> bytes | None:
        for h, b in self.boxes:
            if h == holder:
                return b
        return None


@dataclass(frozen=True, slots=True)
class AdapterBlob:
    """A global adapter in the federation's fixed point: ``values`` is the
    flat uint32 vector padded to whole chunks (little-endian, two's
    complement, scale 2^``frac_bits``) whose chunk Merkle root the chain
    records; the model uses its first ``length`` elements. Also its round and
    the integer aggregate Σ x it was made from (uint32 LE; empty for the
    initial adapter), so auditors can compare the aggregate chunk by chunk."""

    round_id: int
    values: bytes
    aggregate: bytes = b""
    frac_bits: int = 16
    length: int = -1  # -1: all of values

    @property
    def model_length(self) -> int:
        return len(self.values) // 4 if self.length < 0 else self.length

    def to_bytes(self) -> bytes:
        return cbor2.dumps({"magic": MAGIC_ADAPTER, "round": self.round_id,
                            "values": self.values, "aggregate": self.aggregate,
                            "frac_bits": self.frac_bits, "length": self.model_length},
                           canonical=True)

    @staticmethod
    def max_bytes(vector_length: int, padded_length: int) -> int:
        """The largest encoding of an adapter blob for a round's vector sizes
        (padded fixed-point values and the padded Σx)."""
        return 256 + 8 * max(vector_length, padded_length)

    @classmethod
    def from_bytes(cls, data: bytes) -> AdapterBlob:
        try:
            d = _map(data, MAGIC_ADAPTER)
            values = _bytes(d["values"], "values")
            aggregate = _bytes(d.get("aggregate", b""), "aggregate")
            if len(values) % 4 or len(aggregate) % 4:
                raise ValueError("values or the aggregate are not uint32")
            frac_bits = _uint(d["frac_bits"], "frac_bits", 31)
            length = _uint(d["length"], "length", len(values) // 4 + 1)
            return cls(_uint(d["round"], "round"), values, aggregate, frac_bits, length)
        except Exception as exc:  # noqa: BLE001 - any failure to decode hostile bytes
            raise InvalidContentError(f"not an adapter blob: {type(exc).__name__}: "
                                      f"{str(exc)[:120]}") from None
