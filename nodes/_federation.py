"""A whole federation as separate processes on 127.0.0.1 (`fedledger federation`).

``up`` starts a local chain node, one Kubo daemon per peer plus one for the
governor/aggregator (all swarm-connected to each other, nothing else), or one
Kubo shared by every process on this host (``shared_kubo``), deploys
the contracts with the initial adapter of the configured model, writes one
``peerN.toml`` per peer and starts N peer daemons and a round driver, each a
process of its own with its log in the federation directory. It records
every process in ``federation.json``; ``down`` stops exactly those.

Phase windows fit the peers (``phase_blocks = 0``, the default): the
governor measures one local DP training of the configured model here (or
takes ``train_seconds``), scales it by the slow-down of ``peers`` trainers
sharing this host's cores and by :data:`COLD_START` (a peer's first
training runs in a fresh process, with the threads of every peer competing:
measured here 1.5 s warm in the governor against 5–6.5 s in each of three
peers on two cores), and sets windows with
:func:`coordinator.protocol._driver.fit_windows` (margin 3) at the driver's
mining interval as the block time, the commit window at least
:data:`MIN_COMMIT_SECONDS` long. Generous windows cost nothing when every
peer is on time: the contract moves a phase on as soon as every participant
has acted.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator import ConfigError, ServiceError
from coordinator.chain._chain import LocalNode
from coordinator.chain._contracts import LedgerPolicy, Policy, deploy_federation
from coordinator.chain._deploy import DeploymentRecord
from coordinator.protocol._driver import fit_windows, initial_adapter_args
from coordinator.privacy._privacy import dp_config
from coordinator.ops._procs import ManagedProcess, atomic_write
from coordinator.store._store import KuboDaemon


RECORD = "federation.json"


@dataclass(frozen=True, kw_only=True)
class FederationSpec:
    peers: int = 3
    threshold: int = 2
    chain: str = "anvil"
    encoder: str = "tiny"
    # A peer's own default (nodes/cli.py): at 96 examples a Poisson batch of
    # ~24 drowns in σ = 1.5 noise and two rounds move AUC by ±0.08 at random;
    # at 256 (batch ~64) AUC rose 0.556 → 0.66–0.70 in six of six trials.
    examples_per_peer: int = 256
    # One round alone is ε 3.5 (δ = 1e-5), five composed 7.69 on the ledger: the
    # cap of 8 ends every peer's training after 5 rounds (docs/decisions.md
    # "Defaults end at ε ≤ 8").
    q: float = 0.25
    sigma: float = 1.5
    steps: int = 10
    # "local" (each peer's own DP-SGD at (q, σ, T)), or a distributed mode:
    # "distributed-record" (one DP-SGD step per round over the union, records
    # Poisson-sampled at q, per-record clip ``clip``) or "distributed-user"
    # (DP-FedAvg, each update clipped to ``clip``; q must be 1). σ is then the
    # noise multiplier of the sum at the floor of threshold − k noisy shares.
    mode: str = "local"
    k: int = 0
    clip: float = 1.0
    lr: float = 1e-2
    epsilon_cap: float = 8.0
    phase_blocks: int = 0  # > 0: every window this many blocks; 0: fit them to training
    # > 0: once a quorum committed (halfway from t to every dealer), the rest get
    # this share (basis points) of the round's time so far
    # (Policy.quorum_grace_bps); 0: wait for everyone until the deadline
    quorum_grace_bps: int = 0
    train_seconds: float = 0.0  # slowest expected local training; 0: measure one here
    shared_kubo: bool = False  # one Kubo daemon for every process on this host
    # Fork every peer daemon from one parent that imported torch once
    # (`node host`); False: one `node run` process each. Synthetic peers import
    # no torch and always run as separate processes.
    fork_peers: bool = True
    rounds: int = 0  # 0 = the driver keeps going
    interval: float = 0.25
    seed: int = 0
    synthetic_parameters: int = 0  # > 0: protocol benchmarks, peers skip training (a fake)
    driver: bool = True  # start `round run` as a process (benchmarks drive in process)

    def __post_init__(self) -> None:
        """Every value is checked here, before a chain or Kubo daemon starts."""
        if self.peers < 2:
            raise ConfigError(f"peers = {self.peers}: a federation needs at least 2 peers")
        if not 2 <= self.threshold <= self.peers:
            raise ConfigError(f"threshold {self.threshold} must be between 2 and peers "
                              f"{self.peers}: a round needs at least t ≥ 2 survivors among the "
                              "peers (peers refuse t = 1: one holder could unmask anyone)",
                              hint="set a threshold of 2 or more" if self.threshold < 2 else
                              f"pass --threshold {self.peers} or less, or more --peers")
        if self.chain not in LocalNode.KINDS:
            raise ConfigError(f"chain {self.chain!r} must be one of {', '.join(LocalNode.KINDS)}")
        if self.encoder not in ("tiny", "minilm"):
            raise ConfigError(f"encoder {self.encoder!r} must be tiny or minilm")
        # TOML has inf: an unbounded σ, lr or clip has no μ or Δ2 to register
        checks = [("q", 0 < self.q <= 1, "in (0, 1]"),
                  ("sigma", 0 < self.sigma < math.inf, "positive and finite"),
                  ("steps", self.steps >= 1, "at least 1"),
                  ("lr", 0 < self.lr < math.inf, "positive and finite"),
                  ("examples_per_peer", self.examples_per_peer >= 2, "at least 2"),
                  ("epsilon_cap", self.epsilon_cap > 0, "positive"),
                  ("phase_blocks", self.phase_blocks >= 0, "0 (fitted) or more"),
                  ("quorum_grace_bps", 0 <= self.quorum_grace_bps < 2**16,
                   "0 (off) to 65535 basis points"),
                  ("train_seconds", self.train_seconds >= 0, "0 (measured) or more"),
                  ("rounds", self.rounds >= 0, "0 (no limit) or more"),
                  ("interval", self.interval > 0, "positive"),
                  ("synthetic_parameters", self.synthetic_parameters >= 0, "0 or more")]
        checks += [("mode", self.mode in MODES, "one of " + ", ".join(MODES)),
                   ("k", 0 <= self.k < self.threshold, f"in 0..threshold − 1 = {self.threshold - 1}"),
                   ("clip", 0 < self.clip < math.inf, "positive and finite")]
        for name, ok, want in checks:
            if not ok:
                raise ConfigError(f"{name} = {getattr(self, name)!r} must be {want}")
        if self.mode == "distributed-user" and self.q != 1:
            raise ConfigError(f"q = {self.q!r}: the distributed user level takes q = 1 (who "
                              "takes part is public on-chain, so selection amplifies nothing)")

    def register(self, fed: Any, dim: int) -> None:
        """Register the federation's DP configuration (id 1) on the ledger."""
        if self.mode == "local":
            fed.register_config(dp_config(config_id=1, q=self.q, sigma=self.sigma,
                                          steps=self.steps))
            return
        from coordinator.privacy import _noise as nz

        record = self.mode == "distributed-record"
        floor = max(1, self.threshold - self.k)
        fed.register_distributed_config(nz.distributed_config(
            config_id=1, mode=nz.DPMode.DISTRIBUTED_RECORD if record else nz.DPMode.DISTRIBUTED_USER,
            q=self.q, clip=self.lr * self.clip if record else self.clip, frac_bits=16, dim=dim,
            sigma=self.sigma, k=self.k, floor_m=floor, max_m=max(floor, self.peers - self.k)))


MODES = ("local", "distributed-record", "distributed-user")


COLD_START = 2.0  # a peer's first training in a fresh, contended process against the governor's
MIN_COMMIT_SECONDS = 60.0  # the fitted commit window's floor
# keys and reveal windows' floor with a quorum grace: a peer killed at random
# is back (restart after 5-25 s in `bench soak`, then the daemon's start)
MIN_REJOIN_SECONDS = 45.0


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "coordinator.cli", *args]


def _toml(d: dict[str, dict[str, Any]]) -> str:
    out = []
    for section, values in d.items():
        out.append(f"[{section}]")
        for k, v in values.items():
            out.append(f"{k} = {json.dumps(v)}")
        out.append("")
    return "\n".join(out)


def up(spec: FederationSpec, root: Path, *, log: Any = print) -> dict[str, Any]:
    root = root.resolve()
    if (root / RECORD).exists():
        raise ConfigError(f"a federation is already recorded in {root}",
                          hint=f"stop it with `fedledger federation down --dir {root}`")
    root.mkdir(parents=True, exist_ok=True)
    procs: list[dict[str, Any]] = []

    def keep(name: str, p: ManagedProcess) -> None:
        record(name, p.pid, p.log_path)

    def record(name: str, pid: int, log_path: Path) -> None:
        procs.append({"name": name, "pid": pid, "log": str(log_path)})
        atomic_write(root / RECORD, json.dumps({"processes": procs}, indent=2).encode())

    try:
        chain = LocalNode(spec.chain, workdir=root / "logs")
        keep(spec.chain, chain.process)
        log(f"{spec.chain} at {chain.url}")
        kubos = []
        for i in range(1 if spec.shared_kubo else spec.peers + 1):
            name = "shared" if spec.shared_kubo else "governor" if i == spec.peers else f"peer{i}"
            d = KuboDaemon(root / "ipfs" / name)
            d.start()
            assert d.process is not None
            keep(f"kubo-{name}", d.process)
            kubos.append(d)
        addrs = [d.swarm_addr for d in kubos]
        for i, d in enumerate(kubos):
            assert d.client is not None
            for j in range(i + 1, len(kubos)):
                d.client.swarm_connect(addrs[j])
        log(f"{len(kubos)} Kubo daemon(s), swarm-connected on 127.0.0.1")
        if spec.shared_kubo:
            kubos = kubos * (spec.peers + 1)
        gov_store = kubos[-1].client
        assert gov_store is not None
        model_cfg = peer_model_config(spec)
        if spec.synthetic_parameters:
            import numpy as np

            start = np.zeros(spec.synthetic_parameters, np.float32)
        else:
            from ._model import ModelConfig, build_model, get_flat

            start = get_flat(build_model(ModelConfig(**model_cfg)))
        if spec.phase_blocks:
            windows = dict.fromkeys(("keys_blocks", "shares_blocks", "commit_blocks",
                                     "reveal_blocks", "aggregate_blocks"), spec.phase_blocks)
            # The other windows end early once everyone acted; availability is
            # always waited out, so it gets what the check, the challenges and
            # the answers need (one transaction per peer), not the long window.
            windows["availability_blocks"] = max(4, min(spec.phase_blocks, spec.peers + 4))
        else:
            train_s = spec.train_seconds or _measure_training(spec)
            slowdown = max(1.0, spec.peers / (os.cpu_count() or 1))
            windows = fit_windows(train_seconds=train_s * slowdown * COLD_START,
                                  block_seconds=spec.interval, participants=spec.peers, margin=3.0)
            # and never under a minute of blocks: a loaded host slows peers more than
            # one measurement shows, and a window that closes early costs nothing
            windows["commit_blocks"] = max(windows["commit_blocks"],
                                           math.ceil(MIN_COMMIT_SECONDS / spec.interval))
            if spec.quorum_grace_bps:
                # With a quorum grace a long window costs nothing once the quorum
                # is in, and lets a restarted peer still post its keys or reveal:
                # a round that opens while peers restart, or whose committer dies
                # before revealing, then stays above t instead of failing.
                for k in ("keys_blocks", "reveal_blocks"):
                    windows[k] = max(windows[k], math.ceil(MIN_REJOIN_SECONDS / spec.interval))
            log(f"phase windows fit a training of {train_s:.1f} s × {slowdown:.1f} "
                f"(peers per core) × {COLD_START:.0f} (cold start): {windows}")
        policy = Policy(participants=spec.peers, threshold=spec.threshold, **windows,
                        challenge_blocks=2, bond=10**17, quorum_grace_bps=spec.quorum_grace_bps)
        chain.ensure_accounts(spec.peers + 1)
        from ._schema import schema_hash

        fed, rec = deploy_federation(chain, policy=policy,
                                     ledger_policy=LedgerPolicy(epsilon_cap=spec.epsilon_cap),
                                     data_schema=schema_hash(None),  # the peers' synthetic data
                                     **initial_adapter_args(gov_store, start,
                                                            policy=(spec.peers, spec.threshold)))
        spec.register(fed, len(start))
        if spec.mode != "local":
            log(f"DP mode {spec.mode}: σ {spec.sigma} at the floor of "
                f"{max(1, spec.threshold - spec.k)} noisy shares (k = {spec.k})")
        DeploymentRecord(**rec).save(root / "deployment.json")
        passfile = root / "passphrase"
        atomic_write(passfile, secrets.token_hex(16).encode() + b"\n")
        os.chmod(passfile, 0o600)
        forked = spec.fork_peers and not spec.synthetic_parameters  # synthetic: no torch
        for i in range(spec.peers):
            assert kubos[i].client is not None
            cfg = {
                "node": {"rpc_url": chain.url, "ipfs_api": kubos[i].client.api,
                         "deployment": "deployment.json", "state": f"peer{i}/state.sqlite",
                         "account": i + 1, "passphrase_file": "passphrase",
                         "poll_seconds": spec.interval, "train_seed": spec.seed,
                         "synthetic_parameters": spec.synthetic_parameters},
                "data": {"source": "synthetic", "peers": spec.peers, "peer": i,
                         "examples_per_peer": spec.examples_per_peer, "seed": spec.seed},
                "model": model_cfg,
                "train": {"lr": spec.lr},
            }
            (root / f"peer{i}.toml").write_text(_toml(cfg))
            if not forked:
                p = ManagedProcess(f"peer{i}", _cli("node", "run", "--config",
                                                    str(root / f"peer{i}.toml")),
                                   log_path=root / "logs" / f"peer{i}.log", cwd=root)
                keep(f"peer{i}", p)
        if forked:
            configs = [root / f"peer{i}.toml" for i in range(spec.peers)]
            pid_file = root / "peer-host.json"
            pid_file.unlink(missing_ok=True)
            argv = _cli("node", "host", "--log-dir", str(root / "logs"), "--pid-file",
                        str(pid_file), *[a for c in configs for a in ("--config", str(c))])
            hp = ManagedProcess("peer-host", argv, log_path=root / "logs" / "peer-host.log",
                                cwd=root)
            keep("peer-host", hp)
            pids = _host_pids(hp, pid_file)["peers"]
            for i, c in enumerate(configs):
                record(f"peer{i}", pids[str(c.resolve())], root / "logs" / f"peer{i}.log")
        # Peer 0 also aggregates (any registered account may); rounds after
        # the first may be opened by anyone, the first by the governor.
        argv = None if not spec.driver else _cli(
            "round", "run", "--rpc-url", chain.url, "--deployment", str(root / "deployment.json"),
            "--ipfs-api", gov_store.api, "--account", "1", "--mine", "--interval",
            str(spec.interval), "--min-peers", str(spec.peers), "--json")
        if argv is not None:
            if spec.rounds:
                argv += ["--rounds", str(spec.rounds)]
            keep("driver", ManagedProcess("driver", argv, log_path=root / "logs" / "driver.log",
                                          cwd=root))
        log(f"{spec.peers} peer daemons and the round driver started; logs in {root / 'logs'}")
        info = {"dir": str(root), "rpc_url": chain.url, "deployment": str(root / "deployment.json"),
                "ipfs_api": gov_store.api, "peer_apis": [k.client.api for k in kubos[:-1] if k.client],
                "processes": procs}
        atomic_write(root / RECORD, json.dumps(info, indent=2).encode())
        return info
    except BaseException:
        if (root / RECORD).exists():  # never mask the real error with "nothing recorded"
            down(root)
        raise


def _host_pids(hp: ManagedProcess, pid_file: Path, timeout: float = 180.0) -> dict[str, Any]:
    """The forked daemons' pids, once the peer host wrote them (it imports
    torch first); a host that died is a start-up error with its log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_file.exists():
            data: dict[str, Any] = json.loads(pid_file.read_text())
            return data
        if not hp.alive():
            tail = hp.log_path.read_text(errors="replace").strip().splitlines()[-1:]
            raise ServiceError(f"the peer host exited before forking its daemons: "
                               f"{tail[0] if tail else 'no output'}",
                               hint=f"see {hp.log_path}")
        time.sleep(0.1)
    raise ServiceError(f"the peer host forked no daemons within {timeout:.0f} s",
                       hint=f"see {hp.log_path}")


def peer_model_config(spec: FederationSpec) -> dict[str, Any]:
    """The peers' own [model] defaults (the daemon's), so that the published
    start adapter has exactly the parameters each peer's model exchanges."""
    from .cli import DEFAULTS

    return {**DEFAULTS["model"], "encoder": spec.encoder, "seed": spec.seed}


def _measure_training(spec: FederationSpec) -> float:
    """Seconds of one local DP training at the federation's configuration
    (the synthetic learner of protocol benchmarks: none)."""
    if spec.synthetic_parameters:
        return 0.0
    from ._data import partition
    from ._model import ModelConfig, build_model
    from ._train import TrainConfig, train_local

    model = build_model(ModelConfig(**peer_model_config(spec)))
    data = partition(spec.peers, examples_per_peer=spec.examples_per_peer, seed=spec.seed)[0].train
    cfg = TrainConfig(lr=spec.lr, dp=True, sample_rate=spec.q, steps=spec.steps,
                      noise_multiplier=spec.sigma, target_epsilon=None, clipping="flat",
                      config_id=1, seed=spec.seed)
    t0 = time.perf_counter()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the measurement's RNG is not a peer's
        train_local(model, data, cfg=cfg)
    return time.perf_counter() - t0


def down(root: Path, *, timeout: float = 15.0) -> list[str]:
    """Stop every process the federation in ``root`` recorded (SIGTERM, then SIGKILL)."""
    path = root / RECORD
    if not path.exists():
        raise ConfigError(f"no federation is recorded in {root}")
    procs = json.loads(path.read_text()).get("processes", [])
    stopped = []
    for p in reversed(procs):  # driver and peers first, then Kubo, then the chain
        try:
            os.killpg(p["pid"], signal.SIGTERM)
            stopped.append(p["name"])
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + timeout
    for p in procs:
        while time.monotonic() < deadline and _alive(p["pid"]):
            time.sleep(0.1)
        if _alive(p["pid"]):
            try:
                os.killpg(p["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
    path.unlink()
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True
