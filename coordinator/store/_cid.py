"""CIDs and the UnixFS file layout Kubo produces, computed without a daemon.

This is what lets the embedded store and an auditor with no IPFS daemon name
content exactly as Kubo names it. The add options are pinned
(:class:`AddOptions`): CIDv1, raw leaves, sha2-256, fixed-size chunker, and
Kubo's balanced DAG layout with at most 174 links per node. Tests compare
every CID with real Kubo's.

Encodings (from the multiformats, dag-pb and UnixFS specifications):

* CIDv1 = varint(1) ‖ varint(codec) ‖ multihash; multihash = 0x12 0x20 ‖ sha256.
  Text form: multibase base32 lower-case, no padding, prefix ``b``.
* dag-pb node = PBNode{Links(2)*, Data(1)} with each PBLink{Hash(1), Name(2),
  Tsize(3)}; links are written first, as go-codec-dagpb does.
* UnixFS Data = {Type(1)=File(2), filesize(3), blocksizes(4)* }.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from .._errors import ConfigError

RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12
DEFAULT_CHUNK = 262_144
MAX_LINKS = 174


@dataclass(frozen=True, slots=True)
class AddOptions:
    """The pinned add options recorded in every round configuration."""

    chunk_size: int = DEFAULT_CHUNK
    max_links: int = MAX_LINKS

    def __post_init__(self) -> None:
        if not 1 <= self.chunk_size <= 1_048_576:
            raise ConfigError(f"chunk size {self.chunk_size} must be between 1 and 1048576 bytes")

    @property
    def kubo_params(self) -> dict[str, str]:
        """The matching query parameters of Kubo's /api/v0/add."""
        return {
            "cid-version": "1",
            "raw-leaves": "true",
            "hash": "sha2-256",
            "chunker": f"size-{self.chunk_size}",
            "pin": "true",
        }


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(buf: bytes, pos: int = 0) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


@dataclass(frozen=True, slots=True)
class CID:
    """A CIDv1 with a sha2-256 multihash."""

    codec: int
    digest: bytes

    @classmethod
    def of(cls, codec: int, block: bytes) -> CID:
        return cls(codec, hashlib.sha256(block).digest())

    def to_bytes(self) -> bytes:
        return varint(1) + varint(self.codec) + bytes([SHA2_256, len(self.digest)]) + self.digest

    @classmethod
    def from_bytes(cls, raw: bytes) -> CID:
        version, pos = read_varint(raw)
        if version != 1:
            raise ValueError(f"CID version {version} is not supported (only CIDv1)")
        codec, pos = read_varint(raw, pos)
        code, pos = read_varint(raw, pos)
        size, pos = read_varint(raw, pos)
        if code != SHA2_256 or size != 32 or len(raw) != pos + 32:
            raise ValueError("only sha2-256 CIDs are supported")
        return cls(codec, raw[pos:])

    def __str__(self) -> str:
        return "b" + base64.b32encode(self.to_bytes()).decode().lower().rstrip("=")

    @classmethod
    def parse(cls, text: str) -> CID:
        if not text.startswith("b"):
            raise ConfigError(f"{text!r} is not a base32 CIDv1 (expected a 'b...' string)")
        body = text[1:].upper()
        try:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
            return cls.from_bytes(raw)
        except ValueError as exc:
            raise ConfigError(f"{text!r} is not a valid CID: {exc}") from None

    def verify(self, block: bytes) -> bool:
        return hashlib.sha256(block).digest() == self.digest


# -- protobuf helpers (just what dag-pb and UnixFS need) ----------------------

def _field(num: int, wire: int) -> bytes:
    return varint((num << 3) | wire)


def _bytes_field(num: int, data: bytes) -> bytes:
    return _field(num, 2) + varint(len(data)) + data


def _uint_field(num: int, value: int) -> bytes:
    return _field(num, 0) + varint(value)


def unixfs_file_data(filesize: int, blocksizes: list[int]) -> bytes:
    out = _uint_field(1, 2) + _uint_field(3, filesize)
    for s in blocksizes:
        out += _uint_field(4, s)
    return out


def dagpb_node(links: list[tuple[CID, int]], data: bytes) -> bytes:
    out = b""
    for cid, tsize in links:
        link = _bytes_field(1, cid.to_bytes()) + _bytes_field(2, b"") + _uint_field(3, tsize)
        out += _bytes_field(2, link)
    return out + _bytes_field(1, data)


def dagpb_links(node: bytes) -> list[CID]:
    """CIDs linked from a dag-pb node, in order."""
    links: list[CID] = []
    pos = 0
    while pos < len(node):
        key, pos = read_varint(node, pos)
        num, wire = key >> 3, key & 7
        if wire != 2:
            raise ValueError("unexpected wire type in dag-pb node")
        n, pos = read_varint(node, pos)
        body, pos = node[pos:pos + n], pos + n
        if num == 2:
            lp = 0
            while lp < len(body):
                lkey, lp = read_varint(body, lp)
                if lkey & 7 == 2:
                    ln, lp = read_varint(body, lp)
                    if lkey >> 3 == 1:
                        links.append(CID.from_bytes(body[lp:lp + ln]))
                    lp += ln
                else:
                    _, lp = read_varint(body, lp)
    return links


def unixfs_filesize(node: bytes) -> int:
    """The file size a dag-pb UnixFS file node declares (its ``filesize``),
    read before any child is fetched. ValueError if it is not such a node."""
    pos, data = 0, None
    while pos < len(node):
        key, pos = read_varint(node, pos)
        if key & 7 != 2:
            raise ValueError("unexpected wire type in dag-pb node")
        n, pos = read_varint(node, pos)
        if pos + n > len(node):
            raise ValueError("truncated dag-pb field")
        if key >> 3 == 1:
            data = node[pos:pos + n]
        pos += n
    if data is None:
        raise ValueError("dag-pb node without UnixFS data")
    pos, kind, size = 0, None, None
    while pos < len(data):
        key, pos = read_varint(data, pos)
        if key & 7 == 0:
            value, pos = read_varint(data, pos)
            if key >> 3 == 1:
                kind = value
            elif key >> 3 == 3:
                size = value
        elif key & 7 == 2:
            n, pos = read_varint(data, pos)
            pos += n
        else:
            raise ValueError("unexpected wire type in UnixFS data")
    if kind != 2 or size is None:
        raise ValueError("not a UnixFS file node with a size")
    return size


# -- the balanced layout -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Node:
    cid: CID
    filesize: int  # bytes of file data under this node
    tsize: int  # bytes of all blocks under this node, itself included


def layout(data: bytes, opts: AddOptions = AddOptions()) -> tuple[CID, list[tuple[CID, bytes]]]:
    """Root CID and every block (CID, bytes) of ``data`` added with ``opts``.

    Mirrors Kubo's balanced builder: the first leaf is the root if the file
    fits one chunk; otherwise the tree grows one level at a time, the old
    root becoming the first child of the new one, and each level is filled
    depth-first with up to ``max_links`` children.
    """
    blocks: list[tuple[CID, bytes]] = []
    chunks: Iterator[bytes] = (
        data[i:i + opts.chunk_size] for i in range(0, len(data), opts.chunk_size)
    )
    pending = iter(chunks)
    nxt: list[bytes | None] = [next(pending, None)]

    def take_leaf() -> _Node:
        chunk = nxt[0] if nxt[0] is not None else b""
        nxt[0] = next(pending, None)
        cid = CID.of(RAW, chunk)
        blocks.append((cid, chunk))
        return _Node(cid, len(chunk), len(chunk))

    def done() -> bool:
        return nxt[0] is None

    def commit(children: list[_Node]) -> _Node:
        fsize = sum(c.filesize for c in children)
        node = dagpb_node([(c.cid, c.tsize) for c in children],
                          unixfs_file_data(fsize, [c.filesize for c in children]))
        cid = CID.of(DAG_PB, node)
        blocks.append((cid, node))
        return _Node(cid, fsize, len(node) + sum(c.tsize for c in children))

    def fill(children: list[_Node], depth: int) -> _Node:
        while len(children) < opts.max_links and not done():
            children.append(take_leaf() if depth == 1 else fill([], depth - 1))
        return commit(children)

    root = take_leaf()
    depth = 1
    while not done():
        root = fill([root], depth)
        depth += 1
    return root.cid, blocks


def cid_of(data: bytes, opts: AddOptions = AddOptions()) -> CID:
    return layout(data, opts)[0]
