"""`fedledger bench soak`: a federation as processes under injected faults.

Two arms, the same federation spec, one after the other: without faults,
then with faults injected at random times drawn from ``seed``:

* ``kill9``: SIGKILL a random peer's process group, restart it 5-25 s later;
* ``restart``: SIGTERM a random peer (it must stop by itself), restart it 1-5 s later;
* ``kubo-restart``: SIGKILL a Kubo daemon and start it again on the same
  repository and ports 2-8 s later (swarm re-connected);
* ``chain-pause``: SIGSTOP the chain node for 2-6 s, then SIGCONT.

Each arm reports rounds finalized per minute and what must be zero: rounds
lost (ended FAILED), peers that exited on their own, double commits, reused
keys or seeds, budget charged for sums never released (a charge in a round
that did not finalize and was not refunded). At the end of the faulty arm
the round in flight is driven to its end and ``audit verify --all`` runs as
a subprocess (exit 0 = pass). Peak RSS of the peer processes is sampled.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

FAULTS = ("kill9", "restart", "kubo-restart", "chain-pause")
# Once a quorum committed (halfway from t to every dealer), the others get half
# the round's time so far (FedRounds._quorumGrace): a killed peer stalls a round
# by that much, not by the whole commit window. A quarter dropped honest peers
# whose training was slow on the loaded host (docs/decisions.md "The soak benchmark").
QUORUM_GRACE_BPS = 5000
# The soak measures liveness, not privacy: at the default cap of 8 every peer
# is at cap after 5 rounds (ε 7.35; a sixth is 8.06) and no round can open for
# the rest of a 10-minute arm. Every round is still charged on the ledger.
EPSILON_CAP = 100.0


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _alive(pid: int) -> bool:
    from nodes._federation import _alive as alive

    return alive(pid)


class _Arm:
    def __init__(self, root: Path, spec: Any, faults: tuple[str, ...], every: float,
                 seed: int, log: Any) -> None:
        from nodes._federation import up

        self.root, self.faults, self.every, self.log = root, faults, every, log
        self.rng = random.Random(seed)
        self.info = up(spec, root, log=lambda s: None)
        self.procs = {p["name"]: p for p in self.info["processes"]}
        self.peers = [f"peer{i}" for i in range(spec.peers)]
        self.pids = {n: self.procs[n]["pid"] for n in self.peers}
        self.expected_down: set[str] = set()
        self.pending: list[tuple[float, str, str]] = []  # (when, what, target)
        self.injected: Counter[str] = Counter()
        self.exited_on_own: list[dict[str, Any]] = []
        self.stop_seconds: list[float] = []
        self.peak_rss = 0.0
        self.kubo_names = [n for n in self.procs if n.startswith("kubo-")]

    # -- processes --------------------------------------------------------------
    def _record(self, name: str, pid: int) -> None:
        from coordinator.ops._procs import atomic_write

        path = self.root / "federation.json"
        rec = json.loads(path.read_text())
        rec["processes"].append({"name": name, "pid": pid, "log": ""})
        atomic_write(path, json.dumps(rec, indent=2).encode())

    def _start_peer(self, name: str) -> None:
        from coordinator.ops._procs import ManagedProcess

        p = ManagedProcess(name, [sys.executable, "-m", "coordinator.cli", "node", "run",
                                  "--config", str(self.root / f"{name}.toml")],
                           log_path=self.root / "logs" / f"{name}.log", cwd=self.root)
        self.pids[name] = p.pid
        self._record(f"{name}-restarted", p.pid)
        self.expected_down.discard(name)

    def _kubo_restart(self, name: str) -> None:
        from coordinator.ops._procs import ManagedProcess
        from coordinator.store._store import KuboClient, KuboDaemon

        repo = self.root / "ipfs" / name.removeprefix("kubo-")
        d = KuboDaemon(repo)
        cfg_path = repo / "config"
        cfg = json.loads(cfg_path.read_text())
        api = self._kubo_api[name]
        cfg["Addresses"]["API"] = "/ip4/127.0.0.1/tcp/" + api.replace(":", "/").rsplit("/", 1)[1]
        cfg["Addresses"]["Swarm"] = [self._kubo_swarm[name].split("/p2p/")[0]]
        from coordinator.ops._procs import atomic_write

        atomic_write(cfg_path, json.dumps(cfg, indent=2).encode())
        (repo / "api").unlink(missing_ok=True)
        p = ManagedProcess(name, [str(d.binary), "daemon", "--migrate=false"],
                           log_path=repo / "daemon.log", env=d.env)
        self.procs[name] = {"name": name, "pid": p.pid}
        self._record(name + "-restarted", p.pid)
        client = KuboClient(api)
        p.wait_ready(lambda: bool(client.id()), timeout=60, what="Kubo answering again")
        for other, addr in self._kubo_swarm.items():
            if other != name:
                try:
                    client.swarm_connect(addr)
                except Exception:  # noqa: BLE001 - that one may be down right now
                    pass
        client.close()

    def _snapshot_kubos(self) -> None:
        from coordinator.store._store import KuboClient

        self._kubo_api: dict[str, str] = {}
        self._kubo_swarm: dict[str, str] = {}
        for name in self.kubo_names:
            repo = self.root / "ipfs" / name.removeprefix("kubo-")
            api = (repo / "api").read_text().strip()
            c = KuboClient(api)
            addrs = [a for a in c.id().get("Addresses") or [] if a.startswith("/ip4/127.0.0.1/tcp/")]
            c.close()
            self._kubo_api[name], self._kubo_swarm[name] = api, addrs[0]

    # -- faults -----------------------------------------------------------------
    def _inject(self, now: float) -> None:
        what = self.rng.choice(self.faults)
        up = [n for n in self.peers if n not in self.expected_down]
        if what in ("kill9", "restart") and up:
            name = self.rng.choice(up)
            pid = self.pids[name]
            self.expected_down.add(name)
            if what == "kill9":
                os.killpg(pid, signal.SIGKILL)
                self.pending.append((now + self.rng.uniform(5, 25), "start", name))
            else:
                t0 = time.monotonic()
                os.killpg(pid, signal.SIGTERM)
                while _alive(pid) and time.monotonic() - t0 < 15:
                    time.sleep(0.01)
                self.stop_seconds.append(round(time.monotonic() - t0, 3))
                self.pending.append((now + self.rng.uniform(1, 5), "start", name))
        elif what == "kubo-restart":
            name = self.rng.choice(self.kubo_names)
            if name in self.expected_down:
                return
            self.expected_down.add(name)
            os.killpg(self.procs[name]["pid"], signal.SIGKILL)
            self.pending.append((now + self.rng.uniform(2, 8), "kubo", name))
        elif what == "chain-pause":
            if "chain" in self.expected_down:
                return
            self.expected_down.add("chain")
            os.killpg(self.procs[self._chain_name]["pid"], signal.SIGSTOP)
            self.pending.append((now + self.rng.uniform(2, 6), "cont", "chain"))
        else:
            return
        self.injected[what] += 1
        self.log(f"  t={now:5.0f} s: {what}")

    def _due(self, now: float) -> None:
        keep = []
        for when, what, target in self.pending:
            if when > now:
                keep.append((when, what, target))
                continue
            if what == "start":
                self._start_peer(target)
            elif what == "kubo":
                self._kubo_restart(target)
                self.expected_down.discard(target)
            elif what == "cont":
                os.killpg(self.procs[self._chain_name]["pid"], signal.SIGCONT)
                self.expected_down.discard("chain")
        self.pending = keep

    def _watch(self) -> None:
        for name in self.peers:
            pid = self.pids[name]
            if name in self.expected_down:
                continue
            if not _alive(pid):
                tail = (self.root / "logs" / f"{name}.log").read_text(errors="replace")[-1500:]
                self.exited_on_own.append({"peer": name, "log_tail": tail})
                self.log(f"  {name} exited on its own; restarting it")
                self._start_peer(name)
            else:
                self.peak_rss = max(self.peak_rss, _rss_mb(pid))

    def run(self, minutes: float) -> dict[str, Any]:
        from coordinator import connect
        from coordinator.chain._deploy import DeploymentRecord, attach

        self._chain_name = self.info["processes"][0]["name"]
        self._snapshot_kubos()
        chain = connect(self.info["rpc_url"], dev_accounts=True)
        fed = attach(chain, DeploymentRecord.load(Path(self.info["deployment"])))
        start_round = fed.current_round()
        t0 = time.monotonic()
        next_fault = self.rng.expovariate(1 / self.every) if self.faults else float("inf")
        finals: list[float] = []
        seen_final: set[int] = set()
        while (now := time.monotonic() - t0) < minutes * 60:
            if now >= next_fault:
                self._inject(now)
                next_fault = now + self.rng.expovariate(1 / self.every)
            self._due(now)
            self._watch()
            if "chain" not in self.expected_down:
                try:
                    r = fed.current_round()
                    for k in range(max(1, r - 3), r + 1):
                        if k not in seen_final and fed.round_info(k).phase.name == "FINAL":
                            seen_final.add(k)
                            finals.append(now)
                except Exception:  # noqa: BLE001 - the chain may be paused
                    pass
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        # Faults stop: bring everything back, then let the round in flight end.
        self._due(float("inf"))
        self._watch()
        time.sleep(2)  # let restarted daemons reconnect before the round is ended
        return self._finish(chain, fed, start_round, elapsed, finals)

    def _finish(self, chain: Any, fed: Any, start_round: int, elapsed: float,
                finals: list[float]) -> dict[str, Any]:
        from coordinator.store._store import KuboClient

        # Stop the driver process, then end the round in flight in process
        # (never opening another), so the audit sees only ended rounds.
        drv = self.procs.get("driver")
        if drv:
            try:
                os.killpg(drv["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
            for _ in range(100):
                if not _alive(drv["pid"]):
                    break
                time.sleep(0.1)
        store = KuboClient(self.info["ipfs_api"])
        from coordinator.protocol._driver import RoundDriver

        driver = RoundDriver(fed, store, aggregator=chain.account(1).address, dp_config=1, vector_length=1, rounds=0, mine=True)
        ended_at = time.monotonic()
        r = fed.current_round()
        while r and fed.round_info(r).phase.name not in ("FINAL", "FAILED") \
                and time.monotonic() - ended_at < 300:
            try:
                driver.tick()
            except Exception as exc:  # noqa: BLE001 - report, do not hide
                self.log(f"  ending round {r}: {type(exc).__name__}: {exc}")
            time.sleep(0.25)
        counts = _chain_counts(fed)
        # The round ended: stop the peers before the audit, which otherwise
        # competes with N polling daemons for the cores (at N = 50 it had not
        # finished 20 minutes later).
        for name in self.peers:
            try:
                os.killpg(self.pids[name], signal.SIGTERM)
            except ProcessLookupError:
                pass
        stop_by = time.monotonic() + 15
        while time.monotonic() < stop_by and any(_alive(self.pids[n]) for n in self.peers):
            time.sleep(0.1)
        audit = subprocess.run(
            [sys.executable, "-m", "coordinator.cli", "audit", "verify", "--all", "--rpc-url",
             self.info["rpc_url"], "--deployment", self.info["deployment"], "--ipfs-api",
             self.info["ipfs_api"], "--json"], capture_output=True, text=True, timeout=1800)
        try:
            verdicts = json.loads(audit.stdout).get("verdicts", [])
        except json.JSONDecodeError:
            verdicts = []
        failed = [v for v in verdicts if not v.get("ok", True)]
        store.close()
        chain.close()
        rounds_in_window = len(finals)
        return {
            "minutes": round(elapsed / 60, 2),
            "rounds_finalized": rounds_in_window,
            "rounds_per_minute": round(rounds_in_window / (elapsed / 60), 3),
            "faults_injected": dict(self.injected),
            "sigterm_stop_seconds": self.stop_seconds,
            "peers_exited_on_their_own": len(self.exited_on_own),
            "exits": self.exited_on_own[:5],
            "peak_peer_rss_mb": round(self.peak_rss, 1),
            **counts,
            "audit_verify_exit": audit.returncode,
            "audit_checks": len(verdicts),
            "audit_failed": failed[:10],
        }


def _chain_counts(fed: Any) -> dict[str, Any]:
    """What must be zero, from events alone."""
    from coordinator.chain._contracts import Phase

    last = fed.current_round()
    phases = {r: fed.round_info(r).phase for r in range(1, last + 1)}
    commits = [(e.args["round"], e.args["peer"]) for e in fed.events("FedRounds", "UpdateCommitted", 0)]
    keys = fed.events("FedRounds", "KeysPosted", 0)
    pks = [bytes(e.args["maskPk"]) for e in keys] + [bytes(e.args["encPk"]) for e in keys]
    charged = Counter((e.args["round"], e.args["peer"])
                      for e in fed.events("PrivacyLedger", "BudgetCharged", 0))
    refunded = Counter((e.args["round"], e.args["peer"])
                       for e in fed.events("PrivacyLedger", "BudgetRefunded", 0))
    unreleased = [k for k, c in charged.items()
                  if phases.get(k[0]) != Phase.FINAL and c > refunded.get(k, 0)]
    return {
        "rounds_opened": last,
        "rounds_final": sum(p == Phase.FINAL for p in phases.values()),
        "rounds_lost": sum(p == Phase.FAILED for p in phases.values()),
        "double_commits": len(commits) - len(set(commits)),
        "reused_keys_or_seeds": len(pks) - len(set(pks)),
        "budget_charged_never_released": len(unreleased),
    }


def run(*, peers: int, minutes: float, faults: tuple[str, ...], every: float = 30.0,
        seed: int = 0, synthetic_parameters: int = 0, shared_kubo: bool = False,
        threshold: int | None = None, quorum_grace_bps: int = QUORUM_GRACE_BPS,
        epsilon_cap: float = EPSILON_CAP, workdir: Path, log: Any = print) -> dict[str, Any]:
    from coordinator import ConfigError
    from nodes._federation import MIN_REJOIN_SECONDS, FederationSpec, down

    from ._common import machine

    bad = [f for f in faults if f not in FAULTS]
    if bad:
        raise ConfigError(f"unknown fault(s) {', '.join(bad)}; known: {', '.join(FAULTS)}")
    t = threshold or max(2, peers // 2 + 1)
    spec = FederationSpec(peers=peers, threshold=min(t, peers), synthetic_parameters=synthetic_parameters,
                          shared_kubo=shared_kubo, seed=seed, quorum_grace_bps=quorum_grace_bps,
                          epsilon_cap=epsilon_cap)
    arms: dict[str, Any] = {}
    for name, fs in (("without_faults", ()), ("with_faults", faults)):
        root = workdir / name
        log(f"{name}: {peers} peers for {minutes} min" + (f", faults {','.join(fs)}" if fs else ""))
        arm = None
        try:
            arm = _Arm(root, spec, fs, every, seed, log)
            arms[name] = arm.run(minutes)
        finally:
            if (root / "federation.json").exists():
                down(root)
        log(f"  {json.dumps({k: v for k, v in arms[name].items() if k not in ('exits', 'audit_failed')})}")
    base, hurt = arms["without_faults"], arms["with_faults"]
    zero = ("rounds_lost", "peers_exited_on_their_own", "double_commits", "reused_keys_or_seeds",
            "budget_charged_never_released")
    ratio = (round(hurt["rounds_per_minute"] / base["rounds_per_minute"], 3)
             if base["rounds_per_minute"] else None)
    must_be_zero = {k: hurt[k] + base[k] for k in zero}
    audit_passed = hurt["audit_verify_exit"] == 0 and base["audit_verify_exit"] == 0
    return {
        "benchmark": "soak", "machine": machine(),
        "command": (f"fedledger bench soak --peers {peers} --minutes {minutes} --every {every} "
                    f"--faults {','.join(faults)}"
                    + (f" --synthetic {synthetic_parameters}" if synthetic_parameters else "")
                    + (" --shared-kubo" if shared_kubo else "")
                    + f" --quorum-grace-bps {quorum_grace_bps} --epsilon-cap {epsilon_cap}"),
        "targets": {"throughput_ratio_min": 0.7, "must_be_zero": True, "audit_passes": True,
                    "ok": bool(ratio is not None and ratio >= 0.7
                               and not any(must_be_zero.values()) and audit_passed)},
        "spec": {"peers": peers, "threshold": spec.threshold, "minutes": minutes,
                 "faults": list(faults), "mean_seconds_between_faults": every, "seed": seed,
                 "learner": ("synthetic (a fake, no training)" if synthetic_parameters
                             else f"DP-SGD, {spec.encoder} encoder"),
                 "shared_kubo": shared_kubo, "quorum_grace_bps": quorum_grace_bps,
                 "keys_reveal_window_floor_seconds": MIN_REJOIN_SECONDS if quorum_grace_bps else 0,
                 "epsilon_cap": epsilon_cap},
        "arms": arms,
        "throughput_ratio": ratio,
        "must_be_zero": must_be_zero,
        "audit_passed": audit_passed,
    }
