"""A peer's durable state: SQLite in WAL mode, secrets sealed with SecretBox.

What must survive ``kill -9`` is written *before* the action that depends on
it: a round's X25519 keys and self-mask seed before the keys are posted, the
dealt bundle before it is uploaded, the masked vector before it is uploaded
and committed. On restart the peer reloads them instead of drawing fresh
ones, so it never reuses a seed with different inputs and never publishes two
different masked vectors (or two dealings) for one round; the chain's status
flags say which actions already landed, so nothing is sent twice.

Secrets (keys, seed, received shares, the clear update) are sealed with
PyNaCl's SecretBox under a key derived from the operator's passphrase with
Argon2id (``nacl.pwhash``); the salt and KDF limits live in the database.
Public material (the bundle, the masked vector) is stored in clear.

Each ``put`` is its own transaction with ``synchronous = FULL``: once it
returns, the row is on disk.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from pathlib import Path

from nacl import pwhash
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from coordinator import ConfigError

CHECK = b"fedledger peer state v1"


class StateError(ConfigError):
    """The state database cannot be opened (wrong passphrase, corrupt file)."""


class PeerState:
    """Key/value rows per round; ``secret=True`` rows are sealed."""

    def __init__(self, path: Path, passphrase: bytes, *, kdf: str = "interactive") -> None:
        if not passphrase:
            raise StateError("an empty passphrase cannot protect the peer's keys; set "
                             "FEDLEDGER_PASSPHRASE or [node] passphrase_file")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB)")
            self._db.execute("CREATE TABLE IF NOT EXISTS kv (round INTEGER, name TEXT, sealed INTEGER,"
                             " value BLOB, at REAL, PRIMARY KEY (round, name))")
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{self.path} is not a usable state database: {exc}") from None
        if fresh:
            os.chmod(self.path, 0o600)
        self._box = self._unlock(passphrase, kdf)

    def _meta(self, name: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def _unlock(self, passphrase: bytes, kdf: str) -> SecretBox:
        limits = {"interactive": (pwhash.argon2id.OPSLIMIT_INTERACTIVE,
                                  pwhash.argon2id.MEMLIMIT_INTERACTIVE),
                  "moderate": (pwhash.argon2id.OPSLIMIT_MODERATE,
                               pwhash.argon2id.MEMLIMIT_MODERATE)}
        salt = self._meta("salt")
        if salt is None:
            if kdf not in limits:
                raise StateError(f"kdf {kdf!r} must be 'interactive' or 'moderate'")
            ops, mem = limits[kdf]
            salt = secrets.token_bytes(pwhash.argon2id.SALTBYTES)
            box = SecretBox(pwhash.argon2id.kdf(SecretBox.KEY_SIZE, passphrase, salt,
                                                opslimit=ops, memlimit=mem))
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                for name, value in (("salt", salt), ("ops", str(ops).encode()),
                                    ("mem", str(mem).encode()), ("check", bytes(box.encrypt(CHECK)))):
                    self._db.execute("INSERT INTO meta VALUES (?, ?)", (name, value))
            return box
        ops, mem = int(self._meta("ops") or b"0"), int(self._meta("mem") or b"0")
        box = SecretBox(pwhash.argon2id.kdf(SecretBox.KEY_SIZE, passphrase, salt,
                                            opslimit=ops, memlimit=mem))
        try:
            if box.decrypt(self._meta("check") or b"") != CHECK:
                raise CryptoError
        except CryptoError:
            raise StateError(f"the passphrase does not open {self.path} (wrong passphrase?)") from None
        return box

    def get(self, round_id: int, name: str) -> bytes | None:
        row = self._db.execute("SELECT sealed, value FROM kv WHERE round = ? AND name = ?",
                               (round_id, name)).fetchone()
        if row is None:
            return None
        sealed, value = row
        if sealed:
            try:
                return bytes(self._box.decrypt(bytes(value)))
            except CryptoError:
                raise StateError(f"a sealed record of round {round_id} in {self.path} does not "
                                 "decrypt; the file was altered") from None
        return bytes(value)

    def put(self, round_id: int, name: str, value: bytes, *, secret: bool = False) -> None:
        stored = bytes(self._box.encrypt(value)) if secret else value
        self._db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?, ?)",
                         (round_id, name, int(secret), stored, time.time()))

    def put_new(self, round_id: int, name: str, value: bytes, *, secret: bool = False) -> bytes:
        """Store ``value`` unless a value is already there; return the stored one.
        This is how a fresh secret is drawn at most once per round."""
        stored = bytes(self._box.encrypt(value)) if secret else value
        self._db.execute("INSERT OR IGNORE INTO kv VALUES (?, ?, ?, ?, ?)",
                         (round_id, name, int(secret), stored, time.time()))
        out = self.get(round_id, name)
        assert out is not None
        return out

    def rounds(self) -> list[int]:
        return [int(r) for (r,) in self._db.execute("SELECT DISTINCT round FROM kv ORDER BY round")]

    def names(self, round_id: int) -> list[str]:
        return [str(n) for (n,) in self._db.execute(
            "SELECT name FROM kv WHERE round = ? ORDER BY at", (round_id,))]

    def close(self) -> None:
        self._db.close()

    def __repr__(self) -> str:
        return f"PeerState({self.path})"
