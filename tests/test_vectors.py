"""The checked-in encoding vectors are what the Python implementation makes
today (contracts/test/Vectors.t.sol checks the same file in Solidity)."""

from __future__ import annotations

import json

from coordinator.protocol import _vectors


def test_checked_in_vectors_match_python() -> None:
    on_disk = json.loads(_vectors.path().read_text())
    assert on_disk == _vectors.generate(), "regenerate: python -m coordinator.protocol._vectors"
    assert len([k for k in on_disk if k.startswith("x25519_")]) == _vectors.COUNT
