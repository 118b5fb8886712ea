"""The peer daemon behind ``fedledger node run``.

Startup checks each dependency and fails with one clear sentence: the
config, the chain endpoint, the deployment record, the Kubo API, the
account's funds, the state database's passphrase. Then it registers (once)
and loops: look at the current round, let :class:`nodes._peer.PeerNode` do
what is owed, sleep.

What stops it, and what does not:

* Only a configuration error (:class:`coordinator.ConfigError`, which
  includes a state database that does not open) stops ``node run``.
* A reverted or late transaction, a phase it missed, another party's bad
  data: :class:`nodes._peer.PeerNode` logs it once with the decoded revert
  reason and the peer sits out what it can no longer do in that round; it
  takes part in the next one.
* A chain or Kubo that is briefly gone: retried with capped exponential
  backoff, logged once per outage, and once more when it is back.
* Any other error of one round is logged once (with its traceback at DEBUG)
  and the loop goes on.

SIGTERM (and Ctrl-C) stop it within a second at any point: the handler
raises :class:`Stopped` in the main thread, which interrupts a backoff sleep,
a blocking RPC and a training run between two steps alike. That is safe
because everything the peer must not redo differently is durable before it
is used (nodes/_state.py): a stop at any point is no worse than ``kill -9``,
which is survivable, and the state is closed cleanly on the way out.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator import ChainUnavailableError, ConfigError, FedLedgerError, IpfsError
from coordinator.chain._chain import Chain, connect
from coordinator.chain._contracts import Federation
from coordinator.chain._deploy import DeploymentRecord, attach
from coordinator.store._store import KuboClient

from ._peer import Learner, PeerNode
from ._state import PeerState

log = logging.getLogger("fedledger.nodes")


@dataclass(frozen=True)
class NodeSettings:
    rpc_url: str
    ipfs_api: str
    deployment: Path
    state: Path
    account: int
    keystore: str
    passphrase: bytes
    poll_seconds: float
    register: bool
    stake_wei: int
    train_seed: int
    max_rounds: int
    insecure_dp_rng: bool = False
    keystore_passphrase: str = ""
    schema_hash: bytes = bytes(32)  # this peer's data schema (nodes/_schema.py)

    def __repr__(self) -> str:  # the passphrase stays out of logs and tracebacks
        return f"NodeSettings(rpc_url={self.rpc_url!r}, state={str(self.state)!r})"


def settings_from(cfg: dict[str, Any], base: Path, *,
                  schema_hash: bytes = bytes(32)) -> NodeSettings:
    n = cfg["node"]
    passphrase = os.environ.get("FEDLEDGER_PASSPHRASE", "").encode()
    if n["passphrase_file"]:
        path = base / n["passphrase_file"]
        try:
            passphrase = path.read_text().splitlines()[0].encode()
        except (OSError, IndexError):
            raise ConfigError(f"[node] passphrase_file {path} cannot be read or is empty") from None
    if not passphrase:
        raise ConfigError("the peer's state needs a passphrase",
                          hint="set FEDLEDGER_PASSPHRASE or [node] passphrase_file")
    if not n["rpc_url"].startswith(("http://", "https://")):
        raise ConfigError(f"[node] rpc_url={n['rpc_url']!r} must be an http(s):// JSON-RPC URL")
    if not n["ipfs_api"]:
        raise ConfigError("[node] ipfs_api is empty", hint="the peer's Kubo RPC API, e.g. "
                          "http://127.0.0.1:5001")
    if (n["account"] < 0) == (not n["keystore"]):
        raise ConfigError("give exactly one of [node] account (a development account index) "
                          "and [node] keystore (an encrypted keystore file)")
    kpass = ""
    if n["keystore"]:
        kpass = _keystore_passphrase(n, base, passphrase)
    return NodeSettings(n["rpc_url"], n["ipfs_api"], base / n["deployment"], base / n["state"],
                        int(n["account"]), n["keystore"] and str(base / n["keystore"]),
                        passphrase, float(n["poll_seconds"]), bool(n["register"]),
                        int(n["stake_wei"]), int(n["train_seed"]), int(n["max_rounds"]),
                        bool(n.get("insecure_dp_rng", False)), kpass, schema_hash)


def _keystore_passphrase(n: dict[str, Any], base: Path, state_passphrase: bytes) -> str:
    """The keystore's own passphrase: [node] keystore_passphrase_file, else
    FEDLEDGER_KEYSTORE_PASSPHRASE; the state's passphrase only when the
    operator says so (keystore_uses_state_passphrase = true)."""
    if n.get("keystore_uses_state_passphrase"):
        return state_passphrase.decode()
    if n.get("keystore_passphrase_file"):
        path = base / n["keystore_passphrase_file"]
        try:
            return path.read_text().splitlines()[0]
        except (OSError, IndexError):
            raise ConfigError(f"[node] keystore_passphrase_file {path} cannot be read or is "
                              "empty") from None
    kpass = os.environ.get("FEDLEDGER_KEYSTORE_PASSPHRASE", "")
    if not kpass:
        raise ConfigError("the keystore needs its own passphrase",
                          hint="set FEDLEDGER_KEYSTORE_PASSPHRASE or [node] "
                               "keystore_passphrase_file, or [node] "
                               "keystore_uses_state_passphrase = true to reuse the state's")
    return kpass


def check_schema(fed: Federation, mine: bytes) -> bool:
    """Refuse to join a federation whose declared data schema is not ours:
    other columns, normalisation or classes would make the aggregate noise.
    False when the deployment declares none (nothing could be checked)."""
    declared = fed.data_schema()
    if not any(declared):
        return False
    if declared != mine:
        raise ConfigError(f"this peer's data schema hashes to 0x{mine.hex()[:16]}… but the "
                          f"federation declared 0x{declared.hex()[:16]}… on-chain",
                          hint="use the federation's schema.toml in [data] schema "
                               "(`fedledger node schema check` prints a schema's hash)")
    return True


class PeerDaemon:
    def __init__(self, s: NodeSettings, learner: Learner) -> None:
        self.s = s
        self.stop = False
        self._logged: set[tuple[object, ...]] = set()
        self._backoff = s.poll_seconds
        self._outage: float | None = None
        record = DeploymentRecord.load(s.deployment)
        try:
            if s.keystore:
                self.chain: Chain = connect(s.rpc_url, keystores=[Path(s.keystore)],
                                            passphrase=s.keystore_passphrase)
                self.address = self.chain.accounts[0].address
            else:
                self.chain = connect(s.rpc_url, dev_accounts=True)
                self.address = self.chain.account(s.account).address
        except ChainUnavailableError as exc:  # `node run` has no --rpc-url: name the config key
            raise ChainUnavailableError(exc.message, hint="start the chain node, or fix [node] "
                                        "rpc_url in the peer configuration") from None
        self.store: KuboClient | None = None
        self.state: PeerState | None = None
        try:
            self.fed: Federation = attach(self.chain, record)
            schema_declared = check_schema(self.fed, s.schema_hash)
            self.store = KuboClient(s.ipfs_api)
            try:
                self.store.id()
            except IpfsError as exc:
                raise IpfsError(f"no Kubo RPC API answers at {s.ipfs_api}: {exc}",
                                hint="start it with `fedledger ipfs up` or fix [node] "
                                     "ipfs_api") from None
            deployment = (self.chain.chain_id, self.fed.rounds.address)
            self.state = PeerState(s.state, s.passphrase, deployment=deployment,
                                   account=self.address)
            self.node = PeerNode(self.fed, self.store, self.address, self.state, learner,
                                 train_seed=s.train_seed, secret_seed=not s.insecure_dp_rng)
            self._check_model(learner)
            if not schema_declared:  # said once everything else opened
                log.warning("the deployment declares no data schema; cannot check that this "
                            "peer's data matches the federation's")
        except BaseException:  # e.g. a wrong passphrase: release what was opened, quietly
            self._release()
            raise

    def _release(self) -> None:
        if self.state is not None:
            self.state.close()
        if self.store is not None:
            self.store.close()
        self.chain.close()
        provider = getattr(self.chain.w3, "provider", None)
        session_cache = getattr(provider, "_request_session_manager", None)
        cache = getattr(session_cache, "session_cache", None)
        for _, session in list(getattr(cache, "items", lambda: [])()):
            close = getattr(session, "close", None)
            if callable(close):
                close()

    def _check_model(self, learner: Learner) -> None:
        from coordinator.protocol._aggregate import load_adapter

        glob = load_adapter(self.store, self.fed.global_adapter_cid())
        mine = learner.parameters
        if len(glob) != mine:
            raise ConfigError(f"the federation's adapter has {len(glob)} parameters but this "
                              f"peer's model has {mine}: use the federation's [model] section")

    def ensure_registered(self) -> None:
        if self.fed.peer_info(self.address).get("registered"):
            return
        if not self.s.register:
            raise ConfigError(f"{self.address} is not registered and [node] register = false")
        balance = int(self.chain.w3.eth.get_balance(self.address))  # type: ignore[arg-type]
        if balance < self.s.stake_wei + 10**16:
            raise ConfigError(f"account {self.address} has {balance} wei, not enough for the "
                              f"stake of {self.s.stake_wei} wei plus gas",
                              hint="fund the account, or lower [node] stake_wei to the "
                                   "registry's minimum")
        rcpt = self.fed.register(sender=self.address, stake=self.s.stake_wei)
        log.info("registered %s with stake %d wei tx=%s", self.address, self.s.stake_wei,
                 rcpt.tx_hash)

    def _once(self, key: tuple[object, ...], level: int, msg: str, *args: object) -> None:
        """Log ``msg`` the first time ``key`` is seen (one line per distinct problem)."""
        if key in self._logged:
            return
        if len(self._logged) > 10_000:  # a daemon runs for months
            self._logged.clear()
        self._logged.add(key)
        log.log(level, msg, *args)

    def tick(self, seen: set[int]) -> float:
        """One look at the chain; returns how long to sleep before the next.
        Raises only what must stop the daemon (configuration errors, Stopped)."""
        try:
            r = self.fed.current_round()
            if r:
                if r not in seen:
                    seen.add(r)
                    log.info("round %d is open", r)
                self.node.step(r)
            if self._outage is not None:
                log.info("chain and IPFS reachable again after %.1f s",
                         time.monotonic() - self._outage)
                self._outage = None
            self._backoff = self.s.poll_seconds
            return self._backoff
        except ConfigError:
            raise
        except (ChainUnavailableError, IpfsError, OSError) as exc:
            return self._unreachable(exc)
        except FedLedgerError as exc:
            self._once(("error", self.node.last_round, str(exc)), logging.WARNING,
                       "round %s: %s (%s); going on", self.node.last_round, exc,
                       type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - web3/httpx transport errors, bad data
            text = str(exc).lower()
            if any(w in text for w in ("connect", "timed out", "timeout", "refused", "reset")):
                return self._unreachable(exc)
            key = ("bug", self.node.last_round, type(exc).__name__, str(exc))
            if key not in self._logged:
                log.debug("traceback of the error below", exc_info=True)
            self._once(key, logging.ERROR, "round %s: unexpected %s: %s; going on",
                       self.node.last_round, type(exc).__name__, exc)
        self._backoff = min(max(self._backoff, self.s.poll_seconds) * 2, 30.0)
        return self._backoff

    def _unreachable(self, exc: BaseException) -> float:
        self._backoff = min(max(self._backoff, self.s.poll_seconds) * 2, 30.0)
        if self._outage is None:
            self._outage = time.monotonic()
            log.warning("chain or IPFS unreachable (%s: %s); retrying with backoff up to 30 s",
                        type(exc).__name__, exc)
        return self._backoff

    def run(self) -> None:
        """Follow the chain until SIGTERM/Ctrl-C (returns normally then) or a
        configuration error (raised)."""
        def on_term(*_: object) -> None:
            if not self.stop:  # a second signal during the clean-up changes nothing
                self.stop = True
                raise Stopped()

        previous = signal.signal(signal.SIGTERM, on_term)
        try:
            self.ensure_registered()
            log.info("peer %s following %s (deployment %s)", self.address, self.s.rpc_url,
                     self.fed.addresses["FedRounds"])
            seen: set[int] = set()
            while not self.stop:
                pause = self.tick(seen)
                if self.s.max_rounds and len(seen) > self.s.max_rounds:
                    break
                time.sleep(pause)
        except (Stopped, KeyboardInterrupt):
            self.stop = True
            log.info("peer %s stopping on request", self.address)
        finally:
            # Release first: a SIGTERM during it finds on_term, which ignores
            # it once stop is set (whatever ended the loop), not the previous
            # handler (which may end the process).
            self.stop = True
            try:
                self._release()
            finally:
                signal.signal(signal.SIGTERM, previous)


class Stopped(BaseException):
    """Raised in the main thread by SIGTERM so that any blocking wait ends now.
    A BaseException, so that ``except Exception`` on the way does not eat it."""
