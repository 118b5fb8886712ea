"""A peer's durable state: SQLite in WAL mode, secrets sealed with an AEAD.

What must survive ``kill -9`` is written *before* the action that depends on
it: a round's X25519 keys and self-mask seed before the keys are posted, the
dealt bundle before it is uploaded, the masked vector before it is uploaded
and committed. On restart the peer reloads them instead of drawing fresh
ones, so it never reuses a seed with different inputs and never publishes two
different masked vectors (or two dealings) for one round; the chain's status
flags say which actions already landed, so nothing is sent twice.

Secrets (keys, seeds, received shares, the clear update) are sealed with
XChaCha20-Poly1305 (libsodium's AEAD through PyNaCl) under a key derived
from the operator's passphrase with Argon2id (``nacl.pwhash``); the salt and
KDF limits live in the database.
Public material (the bundle, the masked vector) is stored in clear.

A database belongs to one deployment: the chain id and the rounds
contract's address are written in it when it is created, every row is keyed
by (chain id, contract, round, name), and each sealed row's associated data
is that same key — so a row copied to another round, name or deployment no
longer opens, and a database opened for another deployment is refused.

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
from nacl.bindings import (crypto_aead_xchacha20poly1305_ietf_decrypt,
                           crypto_aead_xchacha20poly1305_ietf_encrypt,
                           crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
from nacl.exceptions import CryptoError

from coordinator import ConfigError

CHECK = b"fedledger peer state v2"
SCHEMA = b"2"
KEY_SIZE = 32


class StateError(ConfigError):
    """The state database cannot be opened (wrong passphrase, corrupt file)."""


class _Sealer:
    """XChaCha20-Poly1305 under one key; random 24-byte nonces, stored first."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "_Sealer(<key>)"

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
        return nonce + crypto_aead_xchacha20poly1305_ietf_encrypt(plain, aad, nonce, self._key)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        n = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
        if len(sealed) < n + 16:
            raise CryptoError("too short")
        return bytes(crypto_aead_xchacha20poly1305_ietf_decrypt(sealed[n:], aad, sealed[:n],
                                                                self._key))


#: Records that hold secrets (keys, seeds, received shares, the clear update):
#: always sealed, and a clear row under one of these names is refused on read.
SEALED = frozenset({"secrets", "dp_seed", "update", "received"})


class PeerState:
    """Key/value rows per round of one deployment; ``secret=True`` rows are sealed.

    ``deployment`` is (chain id, rounds contract address): the database is
    bound to it on creation and refused for any other; so is ``account``
    (the signing address), when given, as the daemon does."""

    def __init__(self, path: Path, passphrase: bytes, *, deployment: tuple[int, str],
                 kdf: str = "interactive", account: str | None = None) -> None:
        if not passphrase:
            raise StateError("an empty passphrase cannot protect the peer's keys; set "
                             "FEDLEDGER_PASSPHRASE or [node] passphrase_file")
        chain_id, contract = deployment
        if not isinstance(chain_id, int) or chain_id < 0 or not str(contract).startswith("0x"):
            raise StateError(f"deployment {deployment!r} must be (chain id, 0x… contract address)")
        self.chain_id, self.contract = int(chain_id), str(contract).lower()
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():
            # Created 0600 before SQLite opens it (never a moment readable by
            # others); SQLite gives its -wal and -shm files the same mode.
            try:
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise StateError(f"cannot create the state database {self.path}: "
                                 f"{exc.strerror}") from None
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB)")
            cols = [r[1] for r in self._db.execute("PRAGMA table_info(kv)")]
            if cols and "chain_id" not in cols:
                raise StateError(f"{self.path} is a state database of an older fedledger (rows "
                                 "not bound to a deployment); move it away and start a fresh "
                                 "state file")
            self._db.execute("CREATE TABLE IF NOT EXISTS kv (chain_id INTEGER, contract TEXT, "
                             "round INTEGER, name TEXT, sealed INTEGER, value BLOB, at REAL, "
                             "PRIMARY KEY (chain_id, contract, round, name))")
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{self.path} is not a usable state database: {exc}") from None
        try:
            self._box = self._unlock(passphrase, kdf)
            if account is not None:
                self._bind_account(account)
        except BaseException:  # a wrong passphrase must not leak the open database
            self._db.close()
            raise

    def _bind_account(self, account: str) -> None:
        """One state file serves one signing account: another account reusing
        it would reuse the first one's keys, shares and DP seeds."""
        mine = account.lower().encode()
        stored = self._meta("account")
        if stored is None:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('account', ?)", (mine,))
            stored = self._meta("account")
        if stored != mine:
            raise StateError(f"{self.path} belongs to account {(stored or b'').decode(errors='replace')}"
                             f", not {account}; use another [node] state file for this account")

    def _meta(self, name: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def _unlock(self, passphrase: bytes, kdf: str) -> _Sealer:
        limits = {"interactive": (pwhash.argon2id.OPSLIMIT_INTERACTIVE,
                                  pwhash.argon2id.MEMLIMIT_INTERACTIVE),
                  "moderate": (pwhash.argon2id.OPSLIMIT_MODERATE,
                               pwhash.argon2id.MEMLIMIT_MODERATE)}
        salt = self._meta("salt")
        where = f"{self.chain_id}:{self.contract}".encode()
        if salt is None:
            if kdf not in limits:
                raise StateError(f"kdf {kdf!r} must be 'interactive' or 'moderate'")
            ops, mem = limits[kdf]
            salt = secrets.token_bytes(pwhash.argon2id.SALTBYTES)
            box = _Sealer(pwhash.argon2id.kdf(KEY_SIZE, passphrase, salt, opslimit=ops,
                                              memlimit=mem))
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                for name, value in (("schema", SCHEMA), ("deployment", where),
                                    ("salt", salt), ("ops", str(ops).encode()),
                                    ("mem", str(mem).encode()),
                                    ("check", box.seal(CHECK, b"check|" + where))):
                    self._db.execute("INSERT INTO meta VALUES (?, ?)", (name, value))
            return box
        if self._meta("schema") != SCHEMA:
            raise StateError(f"{self.path} is a state database of an older fedledger; move it "
                             "away and start a fresh state file")
        stored = self._meta("deployment") or b""
        if stored != where:
            raise StateError(f"{self.path} belongs to deployment {stored.decode(errors='replace')}"
                             f", not {where.decode()}; use another [node] state file for this "
                             "deployment")
        ops, mem = int(self._meta("ops") or b"0"), int(self._meta("mem") or b"0")
        if not (1 <= ops <= 2**32 and 8192 <= mem <= 2**32):
            raise StateError(f"{self.path} has implausible KDF limits; the file was altered")
        box = _Sealer(pwhash.argon2id.kdf(KEY_SIZE, passphrase, salt, opslimit=ops, memlimit=mem))
        try:
            if box.open(self._meta("check") or b"", b"check|" + where) != CHECK:
                raise CryptoError
        except CryptoError:
            raise StateError(f"the passphrase does not open {self.path} (wrong passphrase?)") from None
        return box

    def _aad(self, round_id: int, name: str) -> bytes:
        """Associated data of a sealed row: the row's whole key."""
        return (b"fedledger.state.v2|" + self.chain_id.to_bytes(32, "big") + b"|"
                + self.contract.encode() + b"|" + round_id.to_bytes(8, "big") + b"|"
                + name.encode())

    def _key(self, round_id: int, name: str) -> tuple[int, str, int, str]:
        return (self.chain_id, self.contract, int(round_id), name)

    def get(self, round_id: int, name: str) -> bytes | None:
        row = self._db.execute("SELECT sealed, value FROM kv WHERE chain_id = ? AND contract = ? "
                               "AND round = ? AND name = ?", self._key(round_id, name)).fetchone()
        if row is None:
            return None
        sealed, value = row
        if not sealed and name in SEALED:
            # A clear row where only a sealed one can be: planted by whoever can
            # write the file (its own DP seed, its own keys). Never used.
            raise StateError(f"the record {name!r} of round {round_id} in {self.path} must be "
                             "sealed but is stored in the clear; the file was altered")
        if sealed:
            try:
                return self._box.open(bytes(value), self._aad(round_id, name))
            except CryptoError:
                raise StateError(f"the sealed record {name!r} of round {round_id} in {self.path} "
                                 "does not decrypt; the file was altered") from None
        return bytes(value)

    def _row(self, round_id: int, name: str, value: bytes, secret: bool) -> tuple[object, ...]:
        if name in SEALED and not secret:
            raise ValueError(f"state record {name!r} is a secret: store it with secret=True")
        stored = self._box.seal(value, self._aad(round_id, name)) if secret else value
        return (*self._key(round_id, name), int(secret), stored, time.time())

    def put(self, round_id: int, name: str, value: bytes, *, secret: bool = False) -> None:
        self._db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?, ?, ?, ?)",
                         self._row(round_id, name, value, secret))

    def put_new(self, round_id: int, name: str, value: bytes, *, secret: bool = False) -> bytes:
        """Store ``value`` unless a value is already there; return the stored one.
        This is how a fresh secret is drawn at most once per round."""
        self._db.execute("INSERT OR IGNORE INTO kv VALUES (?, ?, ?, ?, ?, ?, ?)",
                         self._row(round_id, name, value, secret))
        out = self.get(round_id, name)
        assert out is not None
        return out

    def rounds(self) -> list[int]:
        return [int(r) for (r,) in self._db.execute(
            "SELECT DISTINCT round FROM kv WHERE chain_id = ? AND contract = ? ORDER BY round",
            (self.chain_id, self.contract))]

    def names(self, round_id: int) -> list[str]:
        return [str(n) for (n,) in self._db.execute(
            "SELECT name FROM kv WHERE chain_id = ? AND contract = ? AND round = ? ORDER BY at",
            (self.chain_id, self.contract, round_id))]

    def close(self) -> None:
        self._db.close()

    def __repr__(self) -> str:
        return f"PeerState({self.path})"
