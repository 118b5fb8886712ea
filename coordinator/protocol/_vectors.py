"""Deterministic test vectors of the shared encodings (DESIGN §4).

`python -m coordinator.protocol._vectors` writes ``contracts/test/vectors/encoding.json``;
the Solidity test ``contracts/test/Vectors.t.sol`` checks every vector with the
contracts' libraries and ``tests/test_vectors.py`` checks that the file is
what the Python implementation produces today.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from nacl.bindings import crypto_scalarmult

from .. import _encoding as enc
from ..ops._paths import project_root

COUNT = 4


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def generate() -> dict[str, Any]:
    rng = random.Random(0xFED1ED6E)
    out: dict[str, Any] = {}
    for i in range(COUNT):
        seed = rng.randbytes(32)
        first, blocks = rng.randrange(1 << 20), 1 + rng.randrange(4)
        out[f"prg_{i}"] = {"seed": _hex(seed), "first": first, "blocks": blocks,
                           "out": _hex(enc.to_bytes(enc.prg(seed, 8 * blocks, start=8 * first)))}
        chunks = [rng.randbytes(64) for _ in range(1 + rng.randrange(5))]
        leaves = [enc.leaf(j, c) for j, c in enumerate(chunks)]
        j = rng.randrange(len(chunks))
        out[f"merkle_{i}"] = {"index": j, "chunk": _hex(chunks[j]), "leaf": _hex(leaves[j]),
                              "root": _hex(enc.merkle_root(leaves)),
                              "proof": [_hex(p) for p in enc.merkle_proof(leaves, j)]}
        k, u_sk = rng.randbytes(32), rng.randbytes(32)
        u = crypto_scalarmult(u_sk, (9).to_bytes(32, "little"))
        out[f"x25519_{i}"] = {"k": _hex(k), "u": _hex(u), "out": _hex(crypto_scalarmult(k, u))}
    return out


def path() -> Path:
    return project_root() / "contracts" / "test" / "vectors" / "encoding.json"


def main() -> None:
    path().write_text(json.dumps(generate(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {path()}")


if __name__ == "__main__":
    main()
